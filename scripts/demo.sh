#!/usr/bin/env bash
# The main job on a default model: build qforge, then quantize every matrix of
# the model several ways and print a quality/size table; with stories260K's
# text beside it, end with an interactive report (qforge report) comparing
# int4 RTN, int4 GPTQ and a 3.5-bit mixed-precision model with the fp32 one.
# Usage: scripts/demo.sh [MODEL]   (MODEL: safetensors file, model folder or llama2.c .bin;
#                                  default ../shared/data/stories260K/stories260K.bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(realpath -m "${1:-$root/../shared/data/stories260K/stories260K.bin}")
if [ ! -e "$model" ]; then
  echo "demo: model '$model' not found; pass one: scripts/demo.sh path/to/model.safetensors" >&2
  exit 1
fi
cd "$root"  # CMake finds its presets in the current folder
cmake --preset release >/dev/null
cmake --build --preset release
schemes=int8:channel,int8:tensor,int4:g32:f16scale,int4:g32:asym,int4:g128:f16scale,nf4:g64,fp4:g32,fp8e4m3,int3:g32,int2:g16:asym,ternary:channel
echo "== round-to-nearest error of every matrix, per scheme"
"$root/build/release/tools/qforge/qforge" inspect "$model" --brief --scheme "$schemes"
# With the model's evaluation text beside it: real quantization (calibrated on
# the first half of the text) and its quality on the second half.
dir=$(dirname "$model")
if [ -f "$dir/stories260K.bin" ] && [ -f "$dir/tinystories_valid_sample_30KB.txt" ]; then
  echo
  echo "== quantized models against the fp32 model (KLD and top-1 on held-out text)"
  bash "$root/scripts/quantize_table.sh" --short "$dir"
  echo
  echo "== interactive report (qforge report): per-layer error, histograms, outliers, text colored by KLD"
  models=$root/build/demo
  rm -rf "$models"
  mkdir -p "$models"
  # Calibrated on the first half of the lines, compared on the second (as above).
  n=$(wc -l < "$dir/tinystories_valid_sample_30KB.txt")
  head -n $((n / 2)) "$dir/tinystories_valid_sample_30KB.txt" > "$models/calib.txt"
  tail -n +$((n / 2 + 1)) "$dir/tinystories_valid_sample_30KB.txt" > "$models/eval.txt"
  text=$models/eval.txt
  calib="--calib $models/calib.txt --calib-samples 16 --calib-seqlen 128 --seed 1 -t 2"
  Q=$root/build/release/tools/qforge/qforge
  "$Q" quantize "$model" -o "$models/int4-rtn" --method rtn --weights int4:g32 > /dev/null
  "$Q" quantize "$model" -o "$models/int4-gptq" --method gptq --weights int4:g32 $calib > /dev/null
  "$Q" quantize "$model" -o "$models/mixed-3.5bpw-gptq" --method gptq --budget-bpw 3.5 --mp-samples 2 $calib > /dev/null
  "$Q" report "$model" --compare "$models/int4-rtn,$models/int4-gptq,$models/mixed-3.5bpw-gptq" --text "$text" \
    -o "$models/report.html" --json "$models/report.json" -t 2
  echo "open $models/report.html in a browser (one self-contained file)"
fi
