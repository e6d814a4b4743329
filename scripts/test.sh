#!/usr/bin/env bash
# Builds Citadel and runs every test (unit, golden, tokenizer conformance).
#   scripts/test.sh              release build in build/, all tests
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/, all tests
# Reference data is read from ../shared (override with CITADEL_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
dir=build
opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  opts=(-DCMAKE_BUILD_TYPE=Debug -DCITADEL_SANITIZE=ON)
fi
shared="${CITADEL_SHARED:-$(cd .. && pwd)/shared}"
cmake -S . -B "$dir" "${opts[@]}" -DCITADEL_SHARED="$shared" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
