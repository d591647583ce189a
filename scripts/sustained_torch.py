#!/usr/bin/env python3
"""A GPU's sustained compute fraction, measured: the share of its short-run matmul rate it keeps
when held at its power limit for a minute, as a training step holds it.

Kernel benchmarks, and so gpucost's calibrations, time milliseconds of work at the boost clock. A
training step keeps the GPU busy for seconds, at the clock the board's power limit allows. This
script times one large bf16 matmul (cuBLAS through torch.matmul, random data) two ways:

  short run   after the GPU has idled (--rest-s), --short-runs back-to-back products timed one by
              one with CUDA events after two warm-up runs: the calibration's conditions
  sustained   back-to-back products for --seconds, timed in windows of about --window-s each
              (CUDA events around the window), with the SM clock, power and temperature read from
              nvidia-smi at the end of every window

fraction = the median rate of the windows in the last third / the short run's median rate. Back-to-
back matmuls draw the most power a training step can, and a step's memory-bound kernels between
them draw less, so the figure is a lower bound on what a step keeps. It goes into the profile as
`sustained_compute_fraction` with this file as its source (docs/clusters.md).

Writes OUT/sustained-<dtype>-<m>x<n>x<k>.json (schema gpucost-sustained-1).

usage: sustained_torch.py --out DIR [--seconds 60] [--shape 8192,8192,8192] [--dtype bf16]
       sustained_torch.py --self-test     (the arithmetic alone, no GPU)
"""
import argparse
import json
import os
import statistics
import subprocess
import time

SCHEMA = "gpucost-sustained-1"


def summarize(short_run_s, windows, flops):
    """The figures from the timings: `short_run_s` the seconds of each short-run product,
    `windows` a list of (products, seconds) for the sustained windows in order."""
    if not short_run_s or not windows:
        raise ValueError("no timings")
    short = flops / statistics.median(short_run_s)
    rates = [n * flops / s for n, s in windows]
    last = rates[len(rates) - max(1, len(rates) // 3):]
    sustained = statistics.median(last)
    return {
        "short_run_flops_per_s": short,
        "window_flops_per_s": rates,
        "sustained_flops_per_s": sustained,
        "fraction": sustained / short,
    }


def self_test():
    # 1 TFLOP a product: 10 ms short, then windows slowing from 10 to 12.5 ms a product.
    windows = [(100, 1.0), (100, 1.1), (100, 1.2), (100, 1.25), (100, 1.25), (100, 1.25)]
    s = summarize([0.010, 0.010, 0.011], windows, 1e12)
    assert abs(s["short_run_flops_per_s"] - 1e14) < 1, s
    assert abs(s["sustained_flops_per_s"] - 8e13) < 1, s
    assert abs(s["fraction"] - 0.8) < 1e-12, s
    for bad in (([], windows), ([0.01], [])):
        try:
            summarize(*bad, 1e12)
        except ValueError:
            continue
        raise AssertionError("empty timings accepted")
    print("sustained_torch.py self-test: ok")


def smi(gpu):
    """SM clock (MHz), power (W), temperature (C) and throttle reasons from nvidia-smi, or {}."""
    fields = "clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={gpu}", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        clock, power, temp, reasons = [x.strip() for x in out.split(",")]
        return {"sm_clock_mhz": float(clock), "power_w": float(power),
                "temperature_c": float(temp), "throttle_reasons": reasons}
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window-s", type=float, default=2.0)
    ap.add_argument("--rest-s", type=float, default=10.0)
    ap.add_argument("--short-runs", type=int, default=50)
    ap.add_argument("--shape", default="8192,8192,8192")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.out:
        ap.error("--out DIR is required")
    import torch

    m, n, k = (int(x) for x in a.shape.split(","))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(m, k, device="cuda", dtype=dtype, generator=gen)
    w = torch.randn(k, n, device="cuda", dtype=dtype, generator=gen)
    y = torch.empty(m, n, device="cuda", dtype=dtype)
    flops = 2.0 * m * n * k
    gpu = torch.cuda.current_device()

    def timed(products):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(products):
            torch.matmul(x, w, out=y)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    # Short run: the calibration's conditions, after the GPU has idled.
    torch.cuda.synchronize()
    time.sleep(a.rest_s)
    before = smi(gpu)
    timed(2)
    short = [timed(1) for _ in range(a.short_runs)]
    # Sustained: windows of about window_s, the products per window from the short run's rate.
    per_window = max(1, int(a.window_s / statistics.median(short)))
    windows, telemetry = [], []
    begin = time.monotonic()
    while time.monotonic() - begin < a.seconds:
        windows.append((per_window, timed(per_window)))
        telemetry.append(dict(smi(gpu), t_s=round(time.monotonic() - begin, 3)))
    figures = summarize(short, windows, flops)
    doc = {
        "schema": SCHEMA,
        "unix_time_s": time.time(),
        "device": torch.cuda.get_device_name(gpu),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "op": {"op": "matmul", "m": m, "n": n, "k": k, "dtype": a.dtype},
        "short_run": {"products": a.short_runs, "median_s": statistics.median(short),
                      "telemetry_before": before},
        "sustained": {"seconds": a.seconds, "products_per_window": per_window,
                      "window_s": [s for _, s in windows], "telemetry": telemetry},
        **figures,
    }
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"sustained-{a.dtype}-{m}x{n}x{k}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"{doc['device']}: short run {figures['short_run_flops_per_s'] / 1e12:.0f} TFLOP/s, "
          f"sustained {figures['sustained_flops_per_s'] / 1e12:.0f} TFLOP/s over {a.seconds:.0f} s: "
          f"fraction {figures['fraction']:.3f} -> {path}")


if __name__ == "__main__":
    main()
