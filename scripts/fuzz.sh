#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and runs each for a
# bounded time, seeded from the reference data in ../shared.
#   scripts/fuzz.sh [SECONDS_PER_HARNESS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
scripts/deps.sh --fuzz
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCITADEL_FUZZ=ON >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build build-fuzz -j"$(nproc)" --target $targets
export CITADEL_SHARED="${CITADEL_SHARED:-$(cd .. && pwd)/shared}"
shared="$CITADEL_SHARED"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for name in $targets; do
  h="build-fuzz/$name"
  corpus="$work/$name"
  mkdir -p "$corpus"
  # Seeds from the reference data, by what the harness reads.
  case "$name" in
    fuzz_template) seeds=("$shared"/templates/*.jinja) ;;
    fuzz_tokenizer) seeds=("$shared"/vocab/*.inp) ;;
    *) seeds=("$shared"/models/*.gguf "$shared"/vocab/*.gguf) ;;
  esac
  for f in "${seeds[@]}"; do
    [ -f "$f" ] && head -c 16384 "$f" > "$corpus/$(basename "$f").seed"
  done
  echo "fuzzing $name for ${secs}s"
  "$h" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/" "$corpus" 2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' || true
  if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $name found a failing input" >&2
    mkdir -p fuzz-artifacts && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* fuzz-artifacts/ 2>/dev/null || true
    exit 1
  fi
done
echo "fuzz: no findings"
