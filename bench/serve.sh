#!/usr/bin/env bash
# serve.sh: starts `citadel serve` on a free loopback port with one model,
# runs bench/serve_load.mjs against it, stops the server (SIGTERM).
#
# usage: bench/serve.sh MODEL.gguf [--slots N] [-t THREADS] [-c CTX] [-- serve_load options]
#   e.g. bench/serve.sh ../shared/models/stories260K.gguf --slots 16 -- --concurrency 1,2,4,8,16 --max-tokens 128
# CITADEL_BIN overrides the binary (default: build/citadel).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,8p' "$0"; exit 2; }
model=$1; shift
serve_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do serve_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
bin=${CITADEL_BIN:-build/citadel}
log=$(mktemp)
"$bin" serve -m "$model" --host 127.0.0.1 --port 0 "${serve_args[@]}" 2>"$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
url=""
for _ in $(seq 1 600); do
  url=$(grep -o 'listening on http://[^ ]*' "$log" | head -1 | sed 's/listening on //') || true
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "serve.sh: server did not start" >&2; cat "$log" >&2; exit 1; }
until curl -fsS "$url/health" >/dev/null 2>&1; do
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
node bench/serve_load.mjs --url "$url" "$@"
