#!/usr/bin/env bash
# The quantization results table of docs/results.md: stories260K calibrated on
# the first half of the lines of tinystories_valid_sample_30KB.txt, evaluated
# (--protocol lines) on the second half against the fp32 model.
#   bash scripts/quantize_table.sh [--short] [MODEL_DIR]    (default ../shared/data/stories260K)
# --short: one row per method (what scripts/demo.sh shows).
# --qat: only the quantization-aware training rows and the GPTQ rows they are compared with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
short=0
qat=0
if [ "${1:-}" = "--short" ]; then short=1; shift; fi
if [ "${1:-}" = "--qat" ]; then qat=1; shift; fi
data=${1:-$root/../shared/data/stories260K}
Q=$root/build/release/tools/qforge/qforge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text=$data/tinystories_valid_sample_30KB.txt
n=$(wc -l < "$text")
head -n $((n / 2)) "$text" > "$work/calib.txt"
tail -n +$((n / 2 + 1)) "$text" > "$work/eval.txt"
calib="--calib $work/calib.txt --calib-samples 32 --calib-seqlen 128 --seed 1 -t 2"

echo "| method | flags | bits/weight | PPL | mean KLD | top-1 | quantize s |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
row() {  # row METHOD "FLAGS"
  local out=$work/m
  rm -rf "$out"
  local start end
  start=$(date +%s.%N)
  local log
  log=$("$Q" quantize "$data/stories260K.bin" -o "$out" --method "$1" $2 $calib)
  end=$(date +%s.%N)
  local bpw
  bpw=$(sed -n 's/.* \([0-9.]*\) bits per weight.*/\1/p' <<< "$log")
  "$Q" eval "$out" --text "$work/eval.txt" --protocol lines --baseline "$data/stories260K.bin" --json -t 2 |
    python3 -c "import json,sys; j=json.load(sys.stdin); b=j['baseline']; print('| $1 | \`$2\` | $bpw | %.4f | %.5f | %.2f %% | %.2f |' % (j['perplexity'], b['kld_mean'], 100*b['top1_agreement'], $end-$start))"
}
# qat_row "FLAGS": quantization-aware training (qforge train-qat) on the same calibration half.
qat_row() {
  local out=$work/m
  rm -rf "$out"
  local start end log bpw
  start=$(date +%s.%N)
  log=$("$Q" train-qat "$data/stories260K.bin" -o "$out" $1 --calib "$work/calib.txt" --seed 1 -t 2)
  end=$(date +%s.%N)
  bpw=$(sed -n 's/.* \([0-9.]*\) bits per weight.*/\1/p' <<< "$log")
  "$Q" eval "$out" --text "$work/eval.txt" --protocol lines --baseline "$data/stories260K.bin" --json -t 2 |
    python3 -c "import json,sys; j=json.load(sys.stdin); b=j['baseline']; print('| qat | \`$1\` | $bpw | %.4f | %.5f | %.2f %% | %.2f |' % (j['perplexity'], b['kld_mean'], 100*b['top1_agreement'], $end-$start))"
}
qat_rows() {
  qat_row "--weights int4:g32 --steps 300 --lr 3e-4"
  qat_row "--weights int3:g32:asym --steps 300 --lr 5e-4"
  qat_row "--weights int2:g16:asym --steps 300 --lr 1e-3"
  qat_row "--weights int2:g16:asym --blockwise --steps 100 --e2e-steps 200 --lr 1e-3"
  qat_row "--weights int4:g32 --acts int8 --steps 300 --lr 3e-4"
}
if [ "$qat" = 1 ]; then
  for s in int4:g32 int3:g32:asym int2:g16:asym; do row gptq "--weights $s"; done
  qat_rows
  exit 0
fi
row rtn "--weights int8:channel"
for m in rtn gptq awq; do row $m "--weights int4:g32"; done
if [ "$short" = 1 ]; then
  row gptq "--weights int3:g32:asym"
  row gptq "--budget-bpw 3.5 --mp-samples 2"
  row smoothquant "--weights int8:channel --acts int8 --act-mode static-tensor"
  exit 0
fi
row gptq "--weights int4:g32 --act-order"
row gptq "--weights int4:g32 --bias-correction"
for s in int3:g32 int3:g32:asym int2:g16 int2:g16:asym; do for m in rtn gptq; do row $m "--weights $s"; done; done
row rtn "--weights int3:g32:f16scale"
row gptq "--weights int3:g32:f16scale"
row rtn "--budget-bpw 3.5"
row gptq "--budget-bpw 3.5"
for mode in dynamic-token static-tensor; do for m in rtn smoothquant; do row $m "--weights int8:channel --acts int8 --act-mode $mode"; done; done
for obs in ema percentile kl mse; do for m in rtn smoothquant; do
  row $m "--weights int8:channel --acts int8 --act-mode static-tensor --observer $obs"; done; done
row smoothquant "--weights int8:channel --acts int8 --act-mode static-tensor --alpha auto"
qat_rows
# Rotations (--rotate hadamard: residual stream, online o_proj and down_proj
# input transforms; algo/rotation.h), weight-only and W4A4 / W4A8.
for s in int3:g32:asym int4:g32; do for r in hadamard hadamard-offline; do
  row gptq "--weights $s --rotate $r"; done; done
row rtn "--weights int3:g32:asym --rotate hadamard"
row awq "--weights int4:g32 --rotate hadamard"
for a in int4 int8; do for m in rtn gptq; do
  row $m "--weights int4:g32 --acts $a"
  row $m "--weights int4:g32 --acts $a --rotate hadamard"; done; done
row gptq "--weights int4:g32 --acts int4 --rotate hadamard --rotate-odd dense"
# Learned rotations (--rotate-steps: Cayley SGD on the modelled quantization
# noise, algo/rotation_learning.h) on top of the same random rotation.
learn="--rotate-steps 100 --rotate-lr 0.2"
for s in int3:g32:asym int4:g32; do
  row gptq "--weights $s --rotate hadamard $learn"; done
row gptq "--weights int3:g32:asym --rotate hadamard-offline $learn"
for a in int4 int8; do
  row gptq "--weights int4:g32 --acts $a --rotate hadamard $learn"; done
row rtn "--weights int4:g32 --acts int4 --rotate hadamard $learn"
row gptq "--weights int4:g32 --acts int4 --rotate hadamard --rotate-steps 300 --rotate-lr 0.3"
