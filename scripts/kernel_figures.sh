#!/usr/bin/env bash
# The integer-kernel figures of docs/results.md (issue 5), each a ratio against a
# baseline measured in the same run, on 2 threads:
#   1. decode/prefill of synthetic llama-1b per weight type against the STREAM
#      triad bound and the fp32 path (float activations, then --int8-acts);
#   2. int8 GEMM M=512, K=N=4096 against OpenBLAS sgemm (Google Benchmark);
#   3. peak RSS of the 7B int4 benchmark (quantized layer by layer, never fp32);
#   4. the decode matrices alone, streamed from memory, against the triad.
# Run it on an otherwise idle machine: the bound and the speeds share the cores.
#   bash scripts/kernel_figures.sh [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t=${1:-2}
Q=$root/build/release/tools/qforge/qforge
B=$root/build/release/bench/kernels_bench
S=$root/build/release/bench/decode_stream_bench
echo "== 1. synthetic llama-1b, $t threads, float activations"
"$Q" bench --synthetic llama-1b --types f32,int8,int4:g128,int4:g128:asym,int3:g128,int2:g64:asym -t "$t" -r 2
echo
echo "== 1b. the same with int8 activations (W8A8 / W4A8 ...)"
"$Q" bench --synthetic llama-1b --types int8,int4:g128,int3:g128,int2:g64:asym -t "$t" -r 2 --int8-acts
echo
echo "== 2. GEMM M=512, K=N=4096 against OpenBLAS sgemm ($t threads)"
"$B" --benchmark_filter="(sgemm_f32|w8a8/avx512vnni|w8a8/avxvnni|w4a8_g128/avx512vnni|w4a32_g128/avx512vnni)/M:512/K:4096/N:4096/threads:$t" \
  --benchmark_min_time=1
echo
echo "== 3. peak RSS of llama-7b int4:g128 (limit 5 GB)"
/usr/bin/time -f "peak RSS %M KiB, %e s wall" "$Q" bench --synthetic llama-7b --types int4:g128 -t "$t" -r 1
echo
echo "== 4. Llama-1B decode matrices alone, from memory, against the triad ($t threads)"
"$S" --benchmark_filter="(w8a8|w4a8_g128|w4a32_g128)/avx512vnni/threads:$t"
