#!/usr/bin/env python3
"""Vendor reference for attention: PyTorch's scaled_dot_product_attention with the flash backend,
timed the way gpucost times its own kernels (CUDA events, L2 flushed before every sample,
warm-up, median of samples until the spread settles) and checked against an f64 reference on
sampled rows. For every attention shape in a gpucost results file it appends a record in the same
schema (variant "torch-sdpa-flash", vendor_library true), so `gpucost report` puts each of our
kernels beside the vendor on the same shape.

usage: reference_torch.py RESULTS.jsonl [RESULTS.jsonl ...] [--budget-s 0.3]
"""
import argparse
import json
import math
import os
import socket
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def visible_pairs(q, kv, causal):
    """Unmasked (query, key) pairs per head, queries at the last q positions (gpucost's rule)."""
    if not causal:
        return q * kv
    first = kv - q
    return (kv * (kv + 1)) // 2 - (first * (first + 1)) // 2


def op_flops_bytes(op):
    pairs = visible_pairs(op["q_len"], op["kv_len"], op["causal"])
    flops = op["batch"] * op["q_heads"] * pairs * 2 * (op["qk_head_dim"] + op["v_head_dim"])
    e = 2
    b = op["batch"]
    q = b * op["q_heads"] * op["q_len"] * op["qk_head_dim"]
    o = b * op["q_heads"] * op["q_len"] * op["v_head_dim"]
    k = b * op["kv_heads"] * op["kv_len"] * (op["qk_head_dim"] + op["v_head_dim"])
    return float(flops), float((q + o + k) * e)


def summary(samples):
    s = sorted(samples)

    def pct(p):
        pos = p * (len(s) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    mean = sum(s) / len(s)
    sd = statistics.stdev(s) if len(s) > 1 else 0.0
    return {"n": len(s), "median_s": pct(0.5), "p10_s": pct(0.1), "p90_s": pct(0.9),
            "min_s": s[0], "mean_s": mean, "cv": sd / mean if mean > 0 else 0.0}


def reference_rows(q, k, v, causal, rows, scale):
    """f64 attention output for selected flattened rows (b·hq + h)·sq + i."""
    b_, hq, sq, d = q.shape
    hkv, skv = k.shape[1], k.shape[2]
    out = []
    for row in rows:
        bh, i = divmod(row, sq)
        b, h = divmod(bh, hq)
        hk = h // (hq // hkv)
        qr = q[b, h, i].double()
        kk = k[b, hk].double()
        s = (kk @ qr) * scale
        if causal:
            pos = skv - sq + i
            s[pos + 1:] = float("-inf")
        p = torch.softmax(s, dim=0)
        out.append(p @ v[b, hk].double())
    return torch.stack(out)


def measure(op, budget_s, flush):
    dt = DTYPES[op["dtype"]]
    b, hq, hkv = op["batch"], op["q_heads"], op["kv_heads"]
    sq, skv, d = op["q_len"], op["kv_len"], op["qk_head_dim"]
    g = torch.Generator(device="cuda").manual_seed(42)
    q = (torch.rand(b, hq, sq, d, device="cuda", generator=g) * 2 - 1).to(dt)
    k = (torch.rand(b, hkv, skv, d, device="cuda", generator=g) * 2 - 1).to(dt)
    v = (torch.rand(b, hkv, skv, op["v_head_dim"], device="cuda", generator=g) * 2 - 1).to(dt)
    # PyTorch aligns a causal mask top-left; gpucost puts queries at the end of the context.
    # They agree when q_len == kv_len, and a single query sees everything either way.
    if op["causal"] and sq not in (1, skv):
        return None, "causal with q_len < kv_len > 1 has no SDPA flash equivalent"
    causal = op["causal"] and sq == skv
    variant = "torch-sdpa-flash"
    kwargs = {}
    if hq != hkv:
        kwargs["enable_gqa"] = True

    def run():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **kwargs)

    try:
        out = run()
    except Exception as e:  # flash may refuse GQA on some versions: expand K/V instead
        if not kwargs:
            return None, f"flash backend refused: {e}"
        rep = hq // hkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        kwargs = {}
        variant = "torch-sdpa-flash-expanded-kv"
        out = run()
    torch.cuda.synchronize()
    rows = sorted(set([0, b * hq * sq - 1] + torch.randint(0, b * hq * sq, (62,)).tolist()))
    ref = reference_rows(q, k, v, causal, rows, 1.0 / math.sqrt(d))
    got = out.reshape(b * hq * sq, -1)[rows].double()
    scale = ref.abs().max().item() or 1e-30
    err = (got - ref).abs().max().item() / scale
    tol = 2 * (2 ** -23 * math.sqrt(max(d, skv)) * 4 + 2 * (2 ** -10 if dt == torch.float16 else 2 ** -7))
    correct = {"max_rel_error": err, "tolerance": tol, "pass": bool(err <= tol and torch.isfinite(out).all()),
               "error": None}
    if not correct["pass"]:
        return {"variant": variant, "correctness": correct, "timing": None}, None
    for _ in range(2):
        run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    t0 = time.time()
    while len(samples) < 200:
        flush.zero_()
        start.record()
        run()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e-3)
        if len(samples) >= 5 and (summary(samples)["cv"] <= 0.03 or time.time() - t0 > budget_s):
            break
    s = summary(samples)
    flops, nbytes = op_flops_bytes(op)
    timing = {"clock": "device_timestamp", "warmup_runs": 2, "summary": s, "samples_s": samples,
              "flops_per_s": flops / s["median_s"], "bytes_per_s": nbytes / s["median_s"],
              "roofline_fraction": None}
    return {"variant": variant, "correctness": correct, "timing": timing}, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--budget-s", type=float, default=0.3)
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    flush = torch.empty(2 * max(props.L2_cache_size, 1 << 20), dtype=torch.uint8, device="cuda")
    device = {"backend": "torch", "name": props.name, "vendor": "nvidia",
              "driver": f"torch {torch.__version__}, CUDA {torch.version.cuda}",
              "device_type": f"sm_{props.major}{props.minor}", "memory_bytes": props.total_memory,
              "compute_units": props.multi_processor_count, "timer_resolution_ns": 500.0,
              "clock": "device_timestamp", "supports_f16": True}
    for path in args.results:
        with open(path) as f:
            records = [json.loads(l) for l in f if l.strip()]
        ops, seen = [], set()
        for r in records:
            op = r["op"]
            key = json.dumps(op, sort_keys=True)
            if op.get("op") == "attention" and op["dtype"] in DTYPES and op.get("window") is None and key not in seen:
                seen.add(key)
                ops.append((op, r))
        with open(path, "a") as f:
            for op, src in ops:
                try:
                    rec, why = measure(op, args.budget_s, flush)
                except torch.OutOfMemoryError as e:
                    rec, why = None, f"out of memory: {e}"
                if rec is None:
                    print(f"skipped {op}: {why}")
                    continue
                record = {"schema_version": 1, "unix_time_s": time.time(),
                          "git_revision": src.get("git_revision", "unknown"), "host": socket.gethostname(),
                          "device": device, "op": op, "vendor_library": True, "telemetry": None, **rec}
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
                t = rec["timing"]
                print(f"{rec['variant']} {op['dtype']} b{op['batch']} h{op['q_heads']}/{op['kv_heads']} "
                      f"q{op['q_len']} kv{op['kv_len']} d{op['qk_head_dim']} causal={op['causal']}: "
                      + (f"{t['summary']['median_s'] * 1e3:.3f} ms, {t['flops_per_s'] / 1e12:.1f} TFLOP/s"
                         if t else f"FAILED {rec['correctness']}"))


if __name__ == "__main__":
    main()
