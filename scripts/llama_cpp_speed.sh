#!/usr/bin/env bash
# Decode speed of qforge against real llama.cpp (node-llama-cpp's prebuilt
# CPU build) on the same GGUF files, measured alternately in one run:
# a synthetic Llama-1B (TinyLlama shapes, random weights, Llama-2 vocabulary)
# written as Q4_0, Q4_K_M and Q8_0, 128 decoded tokens after a 16-token
# prompt, on THREADS threads, best of REPS alternations per side.
#   bash scripts/llama_cpp_speed.sh [THREADS=2] [REPS=3] [WORKDIR=build/llama_cpp_speed]
# Needs the release build and `npm ci --ignore-scripts --prefix tests/llama_cpp`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-2}
reps=${2:-3}
work=${3:-build/llama_cpp_speed}
qforge=build/release/tools/qforge/qforge
tokenizer=../shared/data/tokenizers/llama2
mkdir -p "$work"
[ -x "$qforge" ] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
[ -d tests/llama_cpp/node_modules/node-llama-cpp ] ||
  { echo "install the judge first: npm ci --ignore-scripts --prefix tests/llama_cpp" >&2; exit 1; }

for type in q4_0 q4_k_m q8_0; do
  file="$work/llama1b_$type.gguf"
  [ -f "$file" ] || "$qforge" quantize --synthetic llama-1b --tokenizer "$tokenizer" -o "$file" \
    --format gguf --weights "$type" -t "$threads" > /dev/null
done

best() { sort -g | tail -n 1; }
qforge_tg() {  # $1 file, $2 extra flags
  "$qforge" bench "$1" --pp 16 --tg 128 -t "$threads" --json $2 2> /dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).results[0].tg_tokens_per_s))'
}
llama_tg() {
  node tests/llama_cpp/bench_decode.mjs "$1" 128 "$threads" 16 |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s);console.log(d.tokens_per_s,d.cpu_backend)})'
}

printf '%-8s %10s %12s %14s %12s %14s %8s\n' type MB "llama.cpp" "qforge f32-a" ratio "qforge int8-a" ratio
for type in q4_0 q4_k_m q8_0; do
  file="$work/llama1b_$type.gguf"
  l=() q=() q8=()
  for _ in $(seq "$reps"); do  # alternate so that both sides see the same machine state
    read -r tps backend < <(llama_tg "$file")
    l+=("$tps")
    q+=("$(qforge_tg "$file" "")")
    q8+=("$(qforge_tg "$file" --int8-acts)")
  done
  lb=$(printf '%s\n' "${l[@]}" | best)
  qb=$(printf '%s\n' "${q[@]}" | best)
  q8b=$(printf '%s\n' "${q8[@]}" | best)
  mb=$(( $(stat -c %s "$file") / 1000000 ))
  awk -v t="$type" -v mb="$mb" -v l="$lb" -v q="$qb" -v q8="$q8b" \
    'BEGIN { printf "%-8s %10s %12.2f %14.2f %11.2fx %14.2f %7.2fx\n", t, mb, l, q, q / l, q8, q8 / l }'
done
echo "tokens/s of 128 decoded tokens, best of $reps alternated runs, $threads threads; llama.cpp CPU backend: ${backend:-?}"
