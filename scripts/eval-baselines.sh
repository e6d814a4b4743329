#!/usr/bin/env bash
# KL-divergence baselines of the reference-quantized siblings of the micro
# models against their f32 source (see docs/eval.md): for each family and
# quant type, `citadel eval --base f32` on a seeded random-token sequence and
# on a fixed text, printed as a Markdown table row. Our own quantizer's
# files are measured the same way and must land within 1.1x of these.
#   scripts/eval-baselines.sh [CITADEL_BIN] [OUT_DIR]
# Environment: WINDOWS (default 32) windows of CTX (default 128) positions on
# each input: the random sequence has WINDOWS x (CTX-1) tokens (seed 1) and
# the text is cut to WINDOWS windows. A result already in OUT_DIR is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-build/citadel}"
out="${2:-$(mktemp -d)}"
models="${CITADEL_SHARED:-$(cd .. && pwd)/shared}/models"
ctx="${CTX:-128}"
win="${WINDOWS:-32}"
mkdir -p "$out"
text="$out/eval-text.txt"
cat README.md docs/engine.md docs/planner.md docs/templates.md > "$text"
echo "| family | type | random: KL mean ± se | random: top-1 % | text: KL mean ± se | text: top-1 % |"
echo "|---|---|---|---|---|---|"
for fam in micro-llama micro-qwen2; do
  for q in F16 Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0; do
    [ -s "$out/$fam-$q-random.json" ] ||
      "$bin" eval -m "$models/$fam-$q.gguf" --base "$models/$fam-f32.gguf" \
        --random-tokens $((win * (ctx - 1))) --seed 1 -c "$ctx" -o json > "$out/$fam-$q-random.json"
    [ -s "$out/$fam-$q-text.json" ] ||
      "$bin" eval -m "$models/$fam-$q.gguf" --base "$models/$fam-f32.gguf" \
        -f "$text" --chunks "$win" -c "$ctx" -o json > "$out/$fam-$q-text.json"
    python3 - "$out/$fam-$q-random.json" "$out/$fam-$q-text.json" "$fam" "$q" <<'PY'
import json, sys
r, t = (json.load(open(p)) for p in sys.argv[1:3])
cell = lambda j: "%.3e ± %.1e | %.2f" % (j["kl"]["mean"], j["kl"]["se"], 100 * j["top1"])
print("| %s | %s | %s | %s |" % (sys.argv[3], sys.argv[4], cell(r), cell(t)))
PY
  done
done
echo "(json in $out)" >&2
