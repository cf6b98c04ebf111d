#!/usr/bin/env bash
# The table llama.cpp users know, for stories260K: every GGUF type qforge
# writes, its size, and its quality against the F32 file under
# llama-perplexity's protocol (whole text, windows of 128, second halves
# scored), measured twice on the same file: by `qforge eval --baseline` and by
# llama.cpp itself (node-llama-cpp's prebuilt build, tests/llama_cpp).
#   bash scripts/gguf_quality_table.sh [MODEL] [TEXT] [WORKDIR=build/gguf_quality]
# Needs the release build and `npm ci --ignore-scripts --prefix tests/llama_cpp`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${1:-../shared/data/stories260K/stories260K.bin}
text=${2:-../shared/data/stories260K/tinystories_valid_sample_30KB.txt}
work=${3:-build/gguf_quality}
qforge=build/release/tools/qforge/qforge
mkdir -p "$work"
[ -x "$qforge" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
judge=1
[ -d tests/llama_cpp/node_modules/node-llama-cpp ] || { judge=0; echo "(llama.cpp columns skipped: npm ci --ignore-scripts --prefix tests/llama_cpp)"; }

field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v[k];console.log(v)})' "$1"; }

base="$work/f32.gguf"
"$qforge" convert "$model" "$base" > /dev/null 2>&1
printf '%-8s %9s %7s | %9s %9s %7s | %9s %9s %7s\n' type KB bpw "qforge PPL" KLD top-1 "llama PPL" KLD top-1
params=$("$qforge" eval "$base" --text "$text" --protocol chunks --ctx 128 --json -t 2 2> /dev/null | field tokens)
for type in f32 f16 q8_0 q6_k q5_k_m q5_k_s q5_1 q5_0 q4_k_m q4_k_s q4_1 q4_0 q3_k_l q3_k_m q3_k_s q2_k; do
  file="$work/$type.gguf"
  case $type in
    f32) file=$base ;;
    f16) "$qforge" convert "$model" "$file" --dtype f16 > /dev/null 2>&1 ;;
    *) "$qforge" quantize "$model" -o "$file" --format gguf --weights "$type" > /dev/null 2>&1 ;;
  esac
  ours=$("$qforge" eval "$file" --text "$text" --protocol chunks --ctx 128 --baseline "$base" --json -t 2 2> /dev/null)
  qp=$(echo "$ours" | field perplexity)
  qk=$(echo "$ours" | field baseline.kld_mean)
  qt=$(echo "$ours" | field baseline.top1_agreement)
  lp=- lk=- lt=-
  if [ "$judge" = 1 ]; then
    theirs=$(node tests/llama_cpp/llama_perplexity.mjs "$file" "$text" 128 "$base" 2)
    lp=$(echo "$theirs" | field ppl); lk=$(echo "$theirs" | field kld_mean); lt=$(echo "$theirs" | field top1)
    backend=$(echo "$theirs" | field cpu_backend)
  fi
  bytes=$(stat -c %s "$file")
  awk -v t="$type" -v b="$bytes" -v n=260032 -v qp="$qp" -v qk="$qk" -v qt="$qt" -v lp="$lp" -v lk="$lk" -v lt="$lt" \
    'BEGIN { printf "%-8s %9.1f %7.2f | %9.4f %9.5f %6.2f%% | %9.4f %9.5f %6.2f%%\n", t, b / 1000, 8 * b / n, qp, qk, 100 * qt, lp, lk, 100 * lt }'
done
echo "bpw: file bytes * 8 / 260,032 parameters (metadata and vocabulary included); $params scored tokens; llama.cpp CPU backend: ${backend:-n/a}"
