#!/usr/bin/env bash
# The device check: everything worth running on a borrowed H100/H200, in one call.
#
#   scripts/device-check.sh prepare   # here: build, stage binaries in .device/ and the Vulkan
#                                     # loader in .gl/ (both git-ignored, carried to the device)
#   scripts/device-check.sh run       # there (no Rust, no network): devices, correctness and
#                                     # timing of every CUDA and wgpu kernel next to cuBLAS /
#                                     # cuBLASLt / PyTorch SDPA, the memory-bound kernels, the
#                                     # composition check (a transformer block against the sum of
#                                     # its op predictions), the gated-delta scans (CUDA chunked and
#                                     # WGSL recurrent beside a plain-PyTorch chunked reference),
#                                     # the criterion matmul bench; writes
#                                     # $OUT/{device-check.log,report.txt,results/,...}
#
# Each step runs under its own timeout, so the whole stays within about 9 minutes; an interrupted
# step keeps every record written before the cut. QUICK=1: smoke and target shapes only.
# MLA=1: the absorbed MLA decode kernel alone: smoke shapes in bf16 and fp16, then the targets
# beside PyTorch SDPA over the same latent, within about 3.5 minutes (the full run checks its
# smoke shapes only).
# HOPPER=1: the sm_90a kernels alone: the GEMM (cuda:wgmma, cuda:wgmma-m64) in bf16, fp16 and
# fp8 on the smoke shapes and on the ragged aligned shapes of scripts/hopper_smoke.toml, and the
# attention (cuda:flash-wgmma) in bf16 and fp16 on the smoke shapes and
# scripts/hopper_attention_smoke.toml, correctness first; then scripts/hopper_targets.toml
# (4096³, 8192³, a small m) beside mma and cuBLAS / cuBLASLt, and
# scripts/hopper_attention_targets.toml (bf16 d128 s4096, causal and not) beside flash and
# PyTorch SDPA, within about 7 minutes. QUICK=1 checks the new variants the same way before timing anything,
# the full run on the smoke shapes only.
# SGEMM=1: the fp32 SIMT GEMM alone (cuda:simt, cuda:simt-64): correctness of every fp32
# variant on the smoke shapes and of regblock, the simt variants and cuBLAS on the ragged shapes
# of scripts/sgemm_smoke.toml first, then scripts/sgemm_targets.toml (4096³, 1024³, a small m)
# beside regblock and cuBLAS sgemm, within about 2 minutes. The full run checks the simt
# variants on the smoke shapes before its fp32 targets, which time them beside cuBLAS (both
# steps together add at most 25 s to it).
# SUSTAINED=1: the sustained compute fraction (scripts/sustained_torch.py): an 8192³ bf16 matmul
# timed as the calibration times it, then back to back for 60 s at the power limit, with the SM
# clock and power; writes $OUT/sustained-bf16-8192x8192x8192.json, about 1.5 minutes.
# CALIBRATION=1: correctness on the smoke shapes, the composition check, then the bf16 and fp16
# calibration sweeps with long limits (no wgpu, no criterion), within about 6.5 minutes.
# SWEEP=1: the dense calibration sweep within 7 minutes (SWEEP_BUDGET_S), vendors first: cuBLAS /
# cuBLASLt GEMMs in bf16, fp16, fp8-e4m3 and tf32, PyTorch SDPA (flash and cuDNN) prefill and
# decode, the memory-bound kernels, PyTorch Llama models end to end beside `gpucost predict`, the
# gated-delta scans (the plain-PyTorch chunked reference, then our chunked CUDA kernel),
# then our own kernels on a thin grid in the time left; everything is packed into
# $OUT/sweep.tar.gz at the end (SWEEP_KEEP=1 keeps the loose files too). SWEEP_DRY=1: count the
# sweep's shapes and estimate each step's time, here or there, no GPU needed. The shape files
# and the time model: scripts/make_sweep.py.
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
  git rev-parse --short=12 HEAD > .device/revision 2>/dev/null || true
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

# The sweep's steps, one per line: KIND DTYPE LIMIT_S FILE VARIANTS ("-": none; LIMIT "rest": an
# equal share of the time left). The sweep and its dry run both read this table.
sweep_plan() {
  cat <<'PLAN'
gemm bf16 90 scripts/sweep_h200_gemm.toml cublas
gemm fp16 25 scripts/sweep_h200_gemm.toml cublas
gemm fp8-e4m3 30 scripts/sweep_h200_gemm.toml cublaslt
gemm tf32 25 scripts/sweep_h200_gemm.toml cublas-tf32
sdpa bf16 75 scripts/sweep_h200_attention.toml -
memory bf16 25 scripts/sweep_h200_memory.toml -
e2e - 100 models/Meta-Llama-3-8B.json,models/Llama-2-7b-hf.json -
torchscan bf16 25 scripts/sweep_h200_scan.toml -
scan bf16 20 scripts/sweep_h200_scan.toml -
gemm bf16 rest scripts/sweep_h200_ours.toml -
attention bf16 rest scripts/sweep_h200_ours.toml -
PLAN
}
SWEEP_BUDGET_S=${SWEEP_BUDGET_S:-420}
# Seconds kept for the report and the archive at the end, and assumed for the setup before the
# first step.
SWEEP_RESERVE_S=15
SWEEP_SETUP_S=10

sweep_dry() {
  local args=() kind dtype limit file variants
  while read -r kind dtype limit file variants; do
    [ "$variants" = - ] && variants=
    args+=("$kind:$dtype:$limit:$file${variants:+:$variants}")
  done < <(sweep_plan)
  python3 scripts/make_sweep.py estimate --budget-s "$SWEEP_BUDGET_S" --reserve-s "$SWEEP_RESERVE_S" \
    --setup-s "$SWEEP_SETUP_S" "${args[@]}"
}

sweep() {
  local res=$1 bin=$2 deadline=$((SWEEP_BUDGET_S - SWEEP_RESERVE_S))
  echo "=== sweep: ${SWEEP_BUDGET_S} s in all; the dry run's estimate:"
  sweep_dry
  # One input set per shape: the CUDA backend flushes the L2 before every sample, and making
  # inputs is host time.
  local opts=(--budget-s 0.1 --target-cv 0.03 --input-sets 1 --out "$res")
  GPUCOST_GIT_REVISION=$(cat .device/revision 2>/dev/null || echo unknown)
  export GPUCOST_GIT_REVISION PYTHONUNBUFFERED=1
  local kind dtype limit file variants left rest var cfgs
  rest=$(sweep_plan | grep -c ' rest ')
  while read -r kind dtype limit file variants; do
    left=$((deadline - SECONDS))
    if [ "$limit" = rest ]; then
      limit=$((left / rest))
      rest=$((rest - 1))
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
      echo "=== skipped, ${left} s left: $kind $dtype $file"
      continue
    fi
    var=()
    [ "$variants" != - ] && var=(--variant "$variants")
    case "$kind" in
      gemm | attention | memory | scan)
        local op=$kind
        [ "$kind" = gemm ] && op=matmul
        step "$limit" $bin/gpucost bench --backend cuda --op "$op" --dtype "$dtype" --shapes "$file" \
          "${var[@]}" --baseline-max-flops 0 "${opts[@]}" ;;
      sdpa | torchscan)
        step "$limit" python3 scripts/reference_torch.py --shapes "$file" --dtype "$dtype" --out "$res" \
          --budget-s 0.1 --target-cv 0.03 ;;
      e2e)
        IFS=, read -ra cfgs <<< "$file"
        step "$limit" python3 scripts/e2e_torch.py "${cfgs[@]/#/--config=}" --out "$OUT/e2e" \
          --gpucost $bin/gpucost --deadline-s $((limit - 5)) ;;
    esac
  done < <(sweep_plan)
  timeout 30 $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
  echo "=== sweep done after ${SECONDS} s; records (lines) per file:"
  find "$res" "$OUT/e2e" -name '*.jsonl' -exec wc -l {} + 2>/dev/null
  # One archive holds every record, so the run's results travel as one file.
  local packed=()
  for d in results e2e; do [ -d "$OUT/$d" ] && packed+=("$d"); done
  if tar -czf "$OUT/sweep.tar.gz" -C "$OUT" "${packed[@]}"; then
    [ -n "${SWEEP_KEEP:-}" ] || rm -rf "$res" "$OUT/e2e"
  fi
  ls -la "$OUT"
}

run() {
  if [ -n "${SWEEP_DRY:-}" ]; then
    sweep_dry
    return
  fi
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
  step() {
    local t=$1 t0=$SECONDS rc
    shift
    echo "=== [$(date +%T)] $*"
    timeout -k 5 "$t" "$@"
    rc=$?
    echo "=== exit $rc after $((SECONDS - t0)) s"
  }
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv
  step 15 $bin/gpucost devices
  local fast=(--budget-s 0.25 --target-cv 0.03 --out "$res")
  local quick=(--budget-s 0.05 --target-cv 0.03 --out "$res")
  # Correctness of the memory-bound kernels and the composition check: a transformer block of
  # the tiny model, of a Llama-3-8B and a Llama-2-7B layer and of small Qwen3 and Gemma 3
  # layers, measured against the sum of the calibrated op predictions.
  memory_and_compose() {
    for dt in bf16 fp16; do
      step 15 $bin/gpucost bench --backend cuda --op memory --dtype "$dt" --shapes smoke "${quick[@]}"
    done
    step 20 $bin/gpucost compose --backend cuda --hw h100-sxm --model examples/tiny-block.toml --dtype bf16 --tokens 512 --out "$res"
    step 30 $bin/gpucost compose --backend cuda --hw h100-sxm --model llama-3-8b --dtype bf16 --tokens 2048 --out "$res"
    step 30 $bin/gpucost compose --backend cuda --hw h100-sxm --model models/Llama-2-7b-hf.json --dtype fp16 --tokens 4096 --out "$res"
    # The families' layers the CUDA block runs: Qwen3's QK-norm, Gemma 3's local layer (GeGLU).
    step 20 $bin/gpucost compose --backend cuda --hw h100-sxm --model examples/compose/qwen3-layer.toml --dtype bf16 --tokens 512 --out "$res"
    step 20 $bin/gpucost compose --backend cuda --hw h100-sxm --model examples/compose/gemma3-layer.toml --layer local --dtype bf16 --tokens 512 --out "$res"
  }
  # The gated-delta scans: correctness on the smoke shapes first, then the targets, then the
  # plain-PyTorch chunked reference on the same shapes, appended to the same results files.
  scans() {
    for dt in bf16 fp16; do
      step 10 $bin/gpucost bench --backend cuda --op scan --dtype "$dt" --shapes smoke "${quick[@]}"
    done
    for dt in bf16 fp16; do
      step 20 $bin/gpucost bench --backend cuda --op scan --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
    done
    step 30 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-scan-*.jsonl 2>/dev/null)
  }
  # Absorbed MLA decode (DeepSeek-V3's latent attention): correctness on odd small shapes in
  # both dtypes, then the targets (batch 1-64, 128 heads, contexts 1k-32k) beside PyTorch SDPA
  # over the same latent. Run after the general SDPA step, which reads every cuda-attention file.
  mla_decode() {
    for dt in bf16 fp16; do
      step 20 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes scripts/mla_smoke.toml "${quick[@]}"
    done
    step 90 $bin/gpucost bench --backend cuda --op attention --dtype bf16 --shapes scripts/mla_targets.toml "${fast[@]}"
    step 60 python3 scripts/reference_torch.py --shapes scripts/mla_targets.toml --dtype bf16 --out "$res" --budget-s 0.25
  }
  # The sm_90a GEMM's correctness, before any timing: the smoke shapes it takes, and with
  # `ragged` the aligned ragged shapes of scripts/hopper_smoke.toml (the new variants only; the
  # others keep their own smoke steps).
  hopper_smoke() {
    local dt shapes
    for dt in bf16 fp16 fp8-e4m3; do
      for shapes in smoke ${1:+scripts/hopper_smoke.toml}; do
        step 20 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes "$shapes" --variant wgmma,wgmma-m64 "${quick[@]}"
      done
    done
  }
  # The sm_90a attention's correctness, before any timing: the smoke shapes it takes, and with
  # `ragged` the shapes of scripts/hopper_attention_smoke.toml (the new variant only).
  hopper_attention_smoke() {
    local dt shapes
    for dt in bf16 fp16; do
      for shapes in smoke ${1:+scripts/hopper_attention_smoke.toml}; do
        step 20 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes "$shapes" --variant flash-wgmma "${quick[@]}"
      done
    done
  }
  if [ -n "${HOPPER:-}" ]; then
    hopper_smoke ragged
    hopper_attention_smoke ragged
    for dt in bf16 fp16 fp8-e4m3; do
      step 50 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes scripts/hopper_targets.toml "${fast[@]}"
    done
    # The sm_90a attention beside flash, then PyTorch SDPA on the same shapes.
    step 40 $bin/gpucost bench --backend cuda --op attention --dtype bf16 --shapes scripts/hopper_attention_targets.toml --variant flash,flash-wgmma "${fast[@]}"
    step 40 python3 scripts/reference_torch.py --shapes scripts/hopper_attention_targets.toml --dtype bf16 --out "$res" --budget-s 0.25
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  # The fp32 SIMT GEMM's correctness on the smoke shapes, before any timing.
  sgemm_smoke() {
    step 15 $bin/gpucost bench --backend cuda --op matmul --dtype fp32 --shapes smoke --variant simt,simt-64 "${quick[@]}"
  }
  if [ -n "${SGEMM:-}" ]; then
    step 15 $bin/gpucost bench --backend cuda --op matmul --dtype fp32 --shapes smoke "${quick[@]}"
    step 30 $bin/gpucost bench --backend cuda --op matmul --dtype fp32 --shapes scripts/sgemm_smoke.toml \
      --variant regblock,simt,simt-64,cublas "${quick[@]}"
    step 60 $bin/gpucost bench --backend cuda --op matmul --dtype fp32 --shapes scripts/sgemm_targets.toml \
      --variant regblock,simt,simt-64,cublas "${fast[@]}"
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  if [ -n "${SUSTAINED:-}" ]; then
    step 100 python3 scripts/sustained_torch.py --out "$OUT" --seconds 60
    return
  fi
  if [ -n "${MLA:-}" ]; then
    mla_decode
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  if [ -n "${SWEEP:-}" ]; then
    sweep "$res" "$bin"
    return
  fi
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
    step 30 $bin/gpucost bench --backend cuda --op scan --dtype bf16 --shapes sweep "${fast[@]}"
    step 30 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-attention-*.jsonl "$res"/*/cuda-scan-*.jsonl 2>/dev/null)
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  if [ -n "${QUICK:-}" ]; then
    # A short rerun after a fix: every matmul dtype on the smoke shapes and the target, the
    # attention smoke and targets, with the vendor attention beside them.
    hopper_smoke ragged
    hopper_attention_smoke ragged
    for dt in fp32 tf32 fp16 bf16 fp8-e4m3 int8; do
      step 10 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes smoke "${quick[@]}"
      step 20 $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
    done
    for dt in bf16 fp16; do
      step 15 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes smoke "${quick[@]}"
      step 25 $bin/gpucost bench --backend cuda --op attention --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
    done
    step 45 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-attention-*.jsonl 2>/dev/null)
    scans
    $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
    return
  fi
  # The new sm_90a and SIMT kernels' correctness before anything is timed, then the issue's
  # target shapes, every dtype, next to the vendor.
  hopper_smoke
  hopper_attention_smoke
  sgemm_smoke
  for dt in fp32 tf32 fp16 bf16 fp8-e4m3 int8; do
    # fp32 times six variants at 4096³ (naive to simt-64, then cuBLAS sgemm): a longer limit.
    step "$([ "$dt" = fp32 ] && echo 30 || echo 20)" $bin/gpucost bench --backend cuda --op matmul --dtype "$dt" --shapes scripts/targets.toml "${fast[@]}"
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
  scans
  # wgpu on the GPU: the WGSL kernels at 4096³, and the recurrent WGSL scan on the scan targets.
  step 25 $bin/gpucost bench --backend wgpu --op matmul --dtype f32 --shapes scripts/targets.toml "${fast[@]}" --baseline-max-flops 1e12
  step 25 $bin/gpucost bench --backend wgpu --op matmul --dtype f16 --shapes scripts/targets.toml "${fast[@]}" --baseline-max-flops 1e12
  step 20 $bin/gpucost bench --backend wgpu --op scan --dtype f16 --shapes scripts/targets.toml "${fast[@]}"
  # PyTorch SDPA beside our attention, appended to the same results files.
  step 45 python3 scripts/reference_torch.py $(ls "$res"/*/cuda-attention-*.jsonl 2>/dev/null)
  # The MLA decode kernel's correctness only (MLA=1 runs its targets beside SDPA).
  step 20 $bin/gpucost bench --backend cuda --op attention --dtype bf16 --shapes scripts/mla_smoke.toml "${quick[@]}"
  step 30 $bin/bench-matmul --bench --warm-up-time 0.2 --measurement-time 0.5 > "$OUT/criterion-matmul.txt" 2>&1
  $bin/gpucost report --results "$res" > "$OUT/report.txt" 2>&1
  ls -la "$OUT"
}

case "$mode" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
