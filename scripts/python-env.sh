#!/usr/bin/env bash
# Creates build/venv with the test suite's Python judges (transformers on CPU
# torch, numpy), pinned by hash in tests/judges/requirements.txt. Downloads are
# cached in build/pip-cache; a venv already made from the same requirements is
# kept. Prints the venv's python. Fails (non-zero) when the install fails: the
# judges must not pass by being absent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
req=$root/tests/judges/requirements.txt
venv=$root/build/venv
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
mkdir -p "$root/build"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --cache-dir "$root/build/pip-cache" \
  --require-hashes --only-binary=:all: -r "$req" >&2
"$venv/bin/python" -c "import numpy, torch, transformers" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
