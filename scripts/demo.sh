#!/usr/bin/env bash
# The main job on a default model: build qforge, then quantize every matrix of
# the model several ways and print a quality/size table.
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
fi
