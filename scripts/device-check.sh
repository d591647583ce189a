#!/usr/bin/env bash
# The device check: everything worth running on a borrowed H100/H200, in one call.
#
#   scripts/device-check.sh prepare   # here: build, stage binaries in .device/ and the Vulkan
#                                     # loader in .gl/ (both git-ignored, carried to the device)
#   scripts/device-check.sh run       # there (no Rust, no network): devices, correctness and
#                                     # timing of every CUDA and wgpu kernel next to cuBLAS /
#                                     # cuBLASLt / PyTorch SDPA, the memory-bound kernels, the
#                                     # composition check (a transformer block against the sum of
#                                     # its op predictions), the criterion matmul bench; writes
#                                     # $OUT/{device-check.log,report.txt,results/,...}
#
# Each step runs under its own timeout, so the whole stays within about 9 minutes; an interrupted
# step keeps every record written before the cut. QUICK=1: smoke and target shapes only.
# CALIBRATION=1: correctness on the smoke shapes, the composition check, then the bf16 and fp16
# calibration sweeps with long limits (no wgpu, no criterion), within about 6.5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

prepare() {
  set -e
  cargo build --release
  mkdir -p .device/bin
  cp target/release/gpucost .device/bin/
  # The criterion bench executables, as `cargo bench --no-run` builds them.
  cargo bench --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["kind"] == ["bench"] and m.get("executable"):
        print(m["target"]["name"], m["executable"])' \
    | while read -r name exe; do cp "$exe" ".device/bin/bench-$name"; done
  strip .device/bin/* 2>/dev/null || true
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
  # Vulkan loader for wgpu on the device (see the device tool's README).
  if [ ! -d .gl ]; then
    grep -qx '/.gl/' .git/info/exclude || echo '/.gl/' >> .git/info/exclude
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  du -sh .device .gl
}

run() {
  : "${OUT:?OUT must name the folder results go to}"
  # Records go straight under $OUT, so a run cut short still brings back what it measured.
  local log="$OUT/device-check.log" res="$OUT/results" bin=.device/bin
  mkdir -p "$res"
  exec > >(tee -a "$log") 2>&1
  for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
  ldconfig
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  pylib=$(python3 -c 'import nvidia, os; print(next(os.path.join(p, "cu13", "lib") for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "cu13", "lib"))))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$CUDA_HOME/lib64:${pylib}:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null
  if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  step() { local t=$1; shift; echo "=== [$(date +%T)] $*"; timeout "$t" "$@"; echo "=== exit $?"; }
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv
  step 15 $bin/gpucost devices
  local fast=(--budget-s 0.25 --target-cv 0.03 --out "$res")
  local quick=(--budget-s 0.05 --target-cv 0.03 --out "$res")
  # Correctness of the memory-bound kernels and the composition check: a transformer block of
  # the tiny model and of a Llama-3-8B and a Llama-2-7B layer, measured against the sum of the
  # calibrated op predictions.
  memory_and_compose() {
    for dt in bf16 fp16; do
      step 15 $bin/gpucost bench --backend cuda --op memory --dtype "$dt" --shapes smoke "${quick[@]}"
    done
    step 20 $bin/gpucost compose --backend cuda --hw h100-sxm --model examples/tiny-block.toml --dtype bf16 --tokens 512 --out "$res"
    step 30 $bin/gpucost compose --backend cuda --hw h100-sxm --model llama-3-8b --dtype bf16 --tokens 2048 --out "$res"
    step 30 $bin/gpucost compose --backend cuda --hw h100-sxm --model models/Llama-2-7b-hf.json --dtype fp16 --tokens 4096 --out "$res"
  }
  if [ -n "${CALIBRATION:-}" ]; then
    for dt in bf16 fp16; do
      step 15 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes smoke "${quick[@]}"
      step 10 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes smoke "${quick[@]}"
    done
    memory_and_compose
    # About 6.5 minutes in all when every step runs to its limit.
    step 90 $bin/gpucost bench --backend cuda --op matmul --dtype bf16 --shapes sweep "${fast[@]}"
    step 45 $bin/gpucost bench --backend cuda --op attention --dtype bf16 --shapes sweep "${fast[@]}"
    step 30 $bin/gpucost bench --backend cuda --op memory --dtype bf16 --shapes sweep "${fast[@]}"
    step 30 $bin/gpucost bench --backend cuda --op matmul --dtype fp16 --shapes sweep "${fast[@]}"
    step 30 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-attention-*.jsonl 2>/dev/null)
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  if [ -n "${QUICK:-}" ]; then
    # A short rerun after a fix: every matmul dtype on the smoke shapes and the target, the
    # attention smoke and targets, with the vendor attention beside them.
    for dt in fp32 tf32 fp16 bf16 fp8-e4m3 int8; do
      step 10 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes smoke "${quick[@]}"
      step 20 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
    done
    for dt in bf16 fp16; do
      step 15 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes smoke "${quick[@]}"
      step 25 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
    done
    step 45 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-attention-*.jsonl 2>/dev/null)
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  # The issue's target shapes first, every dtype, next to the vendor.
  for dt in fp32 tf32 fp16 bf16 fp8-e4m3 int8; do
    step 20 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
  done
  for dt in bf16 fp16; do
    step 25 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
  done
  # Correctness of every variant on the odd small shapes.
  for dt in fp32 tf32 fp16 bf16 fp8-e4m3 int8; do
    step 10 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes smoke "${quick[@]}"
  done
  for dt in bf16 fp16; do
    step 10 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes smoke "${quick[@]}"
  done
  memory_and_compose
  # wgpu on the GPU: the WGSL kernels at 4096³.
  step 25 $bin/gpucost bench --backend wgpu --op matmul --dtype f32 --shapes scripts/targets.toml "${fast[@]}" --baseline-max-flops 1e12
  step 25 $bin/gpucost bench --backend wgpu --op matmul --dtype f16 --shapes scripts/targets.toml "${fast[@]}" --baseline-max-flops 1e12
  # PyTorch SDPA beside our attention, appended to the same results files.
  step 45 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-attention-*.jsonl 2>/dev/null)
  step 30 $bin/bench-matmul --bench --warm-up-time 0.2 --measurement-time 0.5 > "$OUT/criterion-matmul.txt" 2>&1
  $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
  ls -la "$OUT"
}

case "$mode" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
