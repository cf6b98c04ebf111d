#!/usr/bin/env bash
# The per-model table of docs/results.md for a real trained model (a GGUF
# from scripts/fetch-models.sh): calibrated on the first 600 KB of the shared
# Austen text, scored (--protocol chunks, 512-token windows) on its last 20 KB
# against the model as fetched, dequantized to f32 (the reference: its weights
# already sit on that file's 4-bit grid, which flatters int4 round-to-nearest).
# Every row: bits per weight, size, perplexity, KLD and top-1 vs the
# reference, quantize wall time and peak RSS (GNU time), 2 threads.
#   bash scripts/real_model_table.sh MODEL.gguf [CALIB_SAMPLES]   (default 32 x 512 tokens)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(realpath "$1")
samples=${2:-32}
Q=$root/build/release/tools/qforge/qforge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
austen=$root/../shared/data/text/austen_pride_and_prejudice.txt
head -c 600000 "$austen" > "$work/calib.txt"
tail -c 20000 "$austen" > "$work/eval.txt"
calib="--calib $work/calib.txt --calib-samples $samples --calib-seqlen 512 --seed 1"
score() {  # score OUT LABEL FLAGS SECONDS RSS_KB
  "$Q" eval "$1" --text "$work/eval.txt" --protocol chunks --ctx 512 --baseline "$model" --json -t 2 |
    python3 -c "
import json, os, sys
j = json.load(sys.stdin); b = j['baseline']
path = '$1'
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else os.path.getsize(path)
print('| $2 | \`$3\` | %.1f MB | %.3f | %.4f | %.2f %% | %.0f s | %.2f GB |' % (size / 1e6, j['perplexity'], b['kld_mean'], 100 * b['top1_agreement'], $4, $5 / 1048576))"
}
row() {  # row LABEL OUT "QUANTIZE FLAGS"
  local out=$work/$2
  rm -rf "$out"
  /usr/bin/time -f "%e %M" -o "$work/time" "$Q" quantize "$model" -o "$out" $3 -t 2 > "$work/log" 2>&1 ||
    { echo "| $1 | \`$3\` | failed: $(tail -n 1 "$work/log") |"; return; }
  read -r secs rss < "$work/time"
  score "$out" "$1" "$3" "$secs" "$rss"
  rm -rf "$out"
}
echo "| method | flags | size | PPL | mean KLD | top-1 | quantize | peak RSS |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
/usr/bin/time -f "%e %M" -o "$work/time" "$Q" convert "$model" "$work/f32.gguf" > /dev/null 2>&1
read -r secs rss < "$work/time"
score "$work/f32.gguf" "f32 reference" "convert" "$secs" "$rss"
rm -f "$work/f32.gguf"
row "RTN int4 g128" rtn4 "--method rtn --weights int4:g128"
row "GPTQ int4 g128" gptq4 "--method gptq --weights int4:g128 $calib"
row "AWQ int4 g128" awq4 "--method awq --weights int4:g128 $calib"
row "RTN int3 g128" rtn3 "--method rtn --weights int3:g128"
row "GPTQ int3 g128" gptq3 "--method gptq --weights int3:g128 $calib"
row "GPTQ mixed 3 bpw" mixed3 "--method gptq --budget-bpw 3.0 $calib"
row "SmoothQuant W8A8" w8a8 "--method smoothquant --weights int8:channel --acts int8 $calib"
row "llama.cpp Q4_K_M (our writer)" q4km.gguf "--format gguf --weights q4_k_m"
row "Q4_K_M + imatrix (--calib)" q4kmi.gguf "--format gguf --weights q4_k_m $calib"
