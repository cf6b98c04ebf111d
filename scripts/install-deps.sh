#!/usr/bin/env bash
# Installs every Debian (bookworm) package QuantForge builds, tests or fuzzes with.
# Idempotent: packages already present are skipped; works as root (CI) or with sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  ccache                            # rebuilds of the three build trees reuse objects
  clang libclang-rt-14-dev          # libFuzzer target and sanitizer runtime
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libcpp-httplib-dev                # qforge serve (HTTP server, header-only)
  libopenblas-dev liblapacke-dev libomp-dev
  libsentencepiece-dev              # reads SentencePiece .model files (tokenizers)
  python3 python3-venv python3-numpy  # independent references used by tests only; the venv of
                                      # scripts/python-env.sh (transformers judges) needs python3-venv
  nodejs                            # @huggingface/gguf checks our GGUF files (tests/gguf_js)
  chromium                          # the real browser that checks qforge report's HTML (tests)
  curl                              # the HTTP client of the qforge serve tests
)
# Debian's nodejs comes without npm; NodeSource's bundles it (and conflicts
# with Debian's npm package), so npm is asked for only when the command is missing.
command -v npm > /dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
