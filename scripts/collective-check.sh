#!/usr/bin/env bash
# The interconnect's measurement, on a machine with two or more GPUs (a DGX/HGX node), in one
# call: NCCL all-reduce, all-gather and reduce-scatter checked against their f64 reference on
# small buffers, then timed from 4 KiB to 1 GiB, then fitted by `calibrate` to the alpha–beta
# model (bus efficiency and fixed cost) beside the kernel groups (docs/clusters.md).
#
#   scripts/collective-check.sh [OUT]      # default OUT: gpucost-results/collective-<host>
#
# GPUCOST: the binary (default target/release/gpucost, else gpucost on PATH). NCCL must load
# (`pip install nvidia-nccl-cu13` and its lib folder on LD_LIBRARY_PATH). On one GPU, `bench`
# says so and this exits 2 before anything else runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${GPUCOST:-target/release/gpucost}
[ -x "$bin" ] || bin=gpucost
out=${1:-gpucost-results/collective-$(hostname -s)}
mkdir -p "$out"
"$bin" devices | tee "$out/devices.txt"
# Correctness first: a wrong collective is never timed into the fit.
"$bin" bench --backend cuda --op collective --shapes smoke --out "$out"
"$bin" bench --backend cuda --op collective --shapes sweep --out "$out"
"$bin" report --results "$out" | tee "$out/report.txt"
# The fit; its `interconnect` section replaces the profile's assumed figures for this GPU.
"$bin" calibrate --results "$out" --out "$out" | tee "$out/calibration.txt"
echo "results and calibration in $out"
