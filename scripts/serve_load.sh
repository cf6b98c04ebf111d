#!/usr/bin/env bash
# Load test of `qforge serve`: for each model and each --parallel value, start
# the server, run CLIENTS concurrent streaming clients for SECONDS
# (scripts/serve_load_client.mjs), then SIGTERM it and check it exits 0.
# Prints one markdown table row per run: requests/s, tokens/s, p50/p99 time
# to first token and inter-token latency, errors (failed requests, a crash or
# a non-zero exit after SIGTERM), and the server's RSS after one warm-up
# request and after the run (it should stay flat: KV caches are allocated
# once per slot, mapped weights are paged in by the warm-up).
#   scripts/serve_load.sh [-c CLIENTS] [-s SECONDS] [-n MAX_TOKENS] [-t THREADS] [-p "1 8"] [-x "SERVE ARGS"] MODEL...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qforge=${QFORGE:-$root/build/release/tools/qforge/qforge}
clients=64 seconds=60 max_tokens=32 threads=2 parallels="1 8" extra=""
while getopts c:s:n:t:p:x: o; do
  case $o in
    c) clients=$OPTARG ;; s) seconds=$OPTARG ;; n) max_tokens=$OPTARG ;; t) threads=$OPTARG ;; p) parallels=$OPTARG ;; x) extra=$OPTARG ;;
    *) echo "usage: $0 [-c CLIENTS] [-s SECONDS] [-n MAX_TOKENS] [-t THREADS] [-p \"1 8\"] MODEL..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "$0: give at least one MODEL" >&2; exit 2; }
[ -x "$qforge" ] || { echo "$0: $qforge is missing; build it first" >&2; exit 1; }

rss_mb() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "| model | --parallel | clients x s | requests/s | tokens/s | TTFT p50 / p99 ms | ITL p50 / p99 ms | errors | RSS MB warm -> after |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in "$@"; do
  for parallel in $parallels; do
    log=$(mktemp)
    # shellcheck disable=SC2086 # $extra is a list of flags
    "$qforge" serve "$model" --port 0 --threads "$threads" --parallel "$parallel" --max-queue 4096 $extra > "$log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do grep -q 'listening on' "$log" && break; sleep 0.1; done
    base=$(grep -o 'http://[^ ]*' "$log" | head -1)
    [ -n "$base" ] || { echo "$0: the server did not start:" >&2; cat "$log" >&2; kill "$pid" 2>/dev/null; exit 1; }
    curl -sf "$base/v1/completions" -d "{\"prompt\": \"Once\", \"max_tokens\": 4}" > /dev/null
    rss0=$(rss_mb "$pid")
    result=$(node "$root/scripts/serve_load_client.mjs" "$base" "$clients" "$seconds" "$max_tokens")
    rss1=$(rss_mb "$pid")
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 0 ] || echo "$0: the server exited with $status after SIGTERM" >&2
    rm -f "$log"
    node -e '
      const r = JSON.parse(process.argv[1]);
      const [model, parallel, rss0, rss1, status] = process.argv.slice(2);
      const errs = r.errors + (status === "0" ? 0 : 1);
      console.log(`| ${model} | ${parallel} | ${r.clients} x ${r.seconds} | ${r.requests_per_s} | ${r.tokens_per_s} | ` +
        `${r.ttft_ms_p50} / ${r.ttft_ms_p99} | ${r.itl_ms_p50} / ${r.itl_ms_p99} | ${errs}` +
        `${Object.keys(r.error_kinds).length ? " " + JSON.stringify(r.error_kinds) : ""} | ${rss0} -> ${rss1} |`);
    ' "$result" "$(basename "$model")${extra:+ $extra}" "$parallel" "$rss0" "$rss1" "$status"
  done
done
