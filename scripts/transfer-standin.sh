#!/usr/bin/env bash
# The CPU stand-in for transferring a calibration to a GPU never measured: lavapipe's kernels
# timed with one thread (LP_NUM_THREADS=1) on the shapes its embedded two-thread calibration
# measured (fp32), then `gpucost validate --transfer-from lavapipe` predicts them from the
# two-thread calibration carried over by the datasheet ratios (half the compute units and peak,
# the same bandwidth). About 20 minutes on the 2-vCPU development machine.
#
# usage: scripts/transfer-standin.sh [measure|check]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=data/transfer-standin/lavapipe-1-thread
profile=$dir/lavapipe-1-thread.toml
gpucost=${GPUCOST:-target/release/gpucost}

shapes() {
  python3 - "$1" <<'PY'
import json, sys
kinds = {"rms_norm": "rmsnorm", "residual_add": "residual-add", "rotary": "rotary"}
cal = json.load(open("hw_profiles/lavapipe.calibration.json"))
out, seen = [], set()
for g in cal["groups"]:
    if g["key"]["dtype"] != "fp32":
        continue
    for p in g["points"]:
        op = p["op"]
        if op["op"] == "matmul":
            line = f"[[matmul]]\nbatch = {op['batch']}\nm = {op['m']}\nn = {op['n']}\nk = {op['k']}"
        elif op["op"] == "attention":
            line = (f"[[attention]]\nbatch = {op['batch']}\nheads = {op['q_heads']}\n"
                    f"kv_heads = {op['kv_heads']}\nseq_q = {op['q_len']}\nseq_kv = {op['kv_len']}\n"
                    f"head_dim = {op['qk_head_dim']}\ncausal = {str(op['causal']).lower()}")
        else:
            k = op["kind"]["kind"]
            name = "gated-silu" if k == "gated_activation" else kinds[k]
            line = f"[[memory]]\nkind = \"{name}\"\nrows = {op['rows']}\ncols = {op['cols']}"
        if line not in seen:
            seen.add(line)
            out.append(line)
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
}

measure() {
  local tmp
  tmp=$(mktemp -d)
  shapes "$tmp/shapes.toml"
  export LP_NUM_THREADS=1
  "$gpucost" bench --op matmul --dtype f32 --shapes "$tmp/shapes.toml" --budget-s 0.5 --out "$tmp/out"
  "$gpucost" bench --op attention --dtype f32 --shapes "$tmp/shapes.toml" --budget-s 0.5 --out "$tmp/out"
  "$gpucost" bench --op memory --dtype f32 --shapes "$tmp/shapes.toml" --budget-s 0.3 --out "$tmp/out"
  mkdir -p "$dir"
  # New files only: committed records are never overwritten.
  cp -n "$tmp"/out/*/*.jsonl "$dir"/
  rm -rf "$tmp"
}

check() {
  "$gpucost" validate --results "$dir" --hw "$profile" --allow-hw-mismatch --transfer-from lavapipe
}

case "${1:-all}" in
  measure) measure ;;
  check) check ;;
  all) measure; check ;;
  *) echo "usage: $0 [measure|check]" >&2; exit 2 ;;
esac
