#!/usr/bin/env bash
# bench/cpu.sh: the CPU benchmark of docs/benchmarks.md, reproducible on any
# machine: writes TinyLlama-1.1B-shaped models with random weights (speed
# does not depend on the values) at Q4_0, Q8_0 and Q4_K_M, then runs
# `citadel bench` on them (pp512, tg128, 3 repetitions) with the machine
# limit probes. Usage: bench/cpu.sh [THREADS] [OUTDIR]
#   THREADS  thread counts for -t (default: physical cores)
#   OUTDIR   where the models go (default /tmp/citadel-bench; about 2.5 GB)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${CITADEL_BIN:-$here/build/citadel}
shared=${CITADEL_SHARED:-$here/../shared}
threads=${1:-}
out=${2:-/tmp/citadel-bench}
mkdir -p "$out"
models=()
for q in Q4_0 Q8_0 Q4_K_M; do
  f="$out/tinyllama-1.1b-$q.gguf"
  [ -s "$f" ] || "$bin" synth -m tinyllama-1.1b -v "$shared/models/stories260K.gguf" -q "$q" -o "$f"
  models+=(-m "$f")
done
args=(-p 512 -n 128 -r 3)
[ -n "$threads" ] && args+=(-t "$threads")
"$bin" bench "${models[@]}" "${args[@]}"
