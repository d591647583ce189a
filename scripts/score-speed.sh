#!/usr/bin/env bash
# The speed check of the score stream (docs/frontier.md, Speed): 300,000 seeded random candidates of
# examples/space-million.toml through `gpucost score`, timed. Usage: scripts/score-speed.sh [GPUCOST]
set -euo pipefail
cd "$(dirname "$0")/.."
gpucost=${1:-target/release/gpucost}
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
python3 - "$lines" <<'PY'
import json, random, sys
random.seed(1)
choices = {
    "layers": list(range(8, 72, 2)),
    "hidden_size": list(range(1024, 9216, 512)),
    "heads": [8, 16, 32, 64],
    "kv_heads": [1, 2, 4, 8],
    "mlp_ratio": [2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0],
}
with open(sys.argv[1], "w") as f:
    for _ in range(300_000):
        f.write(json.dumps({k: random.choice(v) for k, v in choices.items()}) + "\n")
PY
for model in --roofline ""; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  n=$("$gpucost" score --space examples/space-million.toml $model < "$lines" | wc -l)
  end=$(date +%s.%N)
  python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f'score ${model:-(calibrated)}: {n} lines in {s:.2f} s, {n / s:,.0f} lines/s')" "$n" "$start" "$end"
done
