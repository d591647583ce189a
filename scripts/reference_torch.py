#!/usr/bin/env python3
"""Vendor reference for attention: PyTorch's scaled_dot_product_attention with the flash backend
and, where this PyTorch has it and it takes the shape, the cuDNN backend, each timed the way
gpucost times its own kernels (CUDA events, L2 flushed before every sample, warm-up, median of
samples until the spread settles) and checked against an f64 reference on sampled rows (the same
inputs and rows for both). For every attention shape in a gpucost results file it appends a
record per backend in the same schema (variants "torch-sdpa-flash" and "torch-sdpa-cudnn",
vendor_library true), so `gpucost report` puts each of our kernels beside the vendor on the same
shape, and the production stack can take the faster vendor kernel. Absorbed MLA decode (attention with
shared_kv: the values are the first v_head_dim columns of the keys) runs SDPA's memory-efficient
and math backends instead, over the latent with K and V expanded to the query heads as views
(variants "torch-sdpa-efficient" and "torch-sdpa-math"). With --shapes it reads the shapes from a gpucost
shape file instead (its [[attention]] entries) and writes the records, in the same schema, to
OUT/<device>/torch-attention-<dtype>-<ms>.jsonl, each flushed as it is measured; gpucost need
not have run first.

Scan ops (the gated delta rule) are measured the same way with a plain-PyTorch chunked
implementation, variant "torch-naive-chunked": a reference written with batched matmuls, not a
vendor kernel (scripts/torch_scan.py); with --shapes its records go to
OUT/<device>/torch-scan-<dtype>-<ms>.jsonl.

usage: reference_torch.py RESULTS.jsonl [RESULTS.jsonl ...] [--budget-s 0.3] [--target-cv 0.03]
       reference_torch.py --shapes FILE.toml [--dtype bf16,fp16] [--out results] [--budget-s 0.3]
"""
import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import time
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import torch_scan

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
    # Shared keys and values (absorbed MLA's latent) are one cached tensor, read once.
    kv_width = op["qk_head_dim"] + (0 if op.get("shared_kv") else op["v_head_dim"])
    k = b * op["kv_heads"] * op["kv_len"] * kv_width
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


# The SDPA backends measured, each as its own vendor variant; a backend this PyTorch lacks (cuDNN
# attention arrived in 2.5) or that refuses a shape is skipped for it.
BACKENDS = [("torch-sdpa-flash", "FLASH_ATTENTION"), ("torch-sdpa-cudnn", "CUDNN_ATTENTION")]
# Absorbed MLA decode (shared_kv, head dim 576, values 512) is beyond the flash backend's head
# dims: SDPA's memory-efficient and math backends take it, over K and V views expanded to the
# query heads (no copies), the latent read as both.
SHARED_KV_BACKENDS = [("torch-sdpa-efficient", "EFFICIENT_ATTENTION"), ("torch-sdpa-math", "MATH")]


def measure(op, budget_s, flush, target_cv=0.03):
    """Measures op on every SDPA backend: a list of (record fields or None, why skipped)."""
    dt = DTYPES[op["dtype"]]
    b, hq, hkv = op["batch"], op["q_heads"], op["kv_heads"]
    sq, skv, d = op["q_len"], op["kv_len"], op["qk_head_dim"]
    # PyTorch aligns a causal mask top-left; gpucost puts queries at the end of the context.
    # They agree when q_len == kv_len, and a single query sees everything either way.
    if op["causal"] and sq not in (1, skv):
        return [(None, "causal with q_len < kv_len > 1 has no SDPA equivalent")]
    causal = op["causal"] and sq == skv
    g = torch.Generator(device="cuda").manual_seed(42)
    q = torch.empty(b, hq, sq, d, device="cuda", dtype=dt).uniform_(-1, 1, generator=g)
    k = torch.empty(b, hkv, skv, d, device="cuda", dtype=dt).uniform_(-1, 1, generator=g)
    shared = bool(op.get("shared_kv"))
    if shared:
        v = k[..., :op["v_head_dim"]]  # the values are the keys' first columns: a view
    else:
        v = torch.empty(b, hkv, skv, op["v_head_dim"], device="cuda", dtype=dt).uniform_(-1, 1, generator=g)
    rows = sorted(set([0, b * hq * sq - 1] + torch.randint(0, b * hq * sq, (62,)).tolist()))
    ref = reference_rows(q, k, v, causal, rows, 1.0 / math.sqrt(d))
    out = []
    for name, attr in (SHARED_KV_BACKENDS if shared else BACKENDS):
        backend = getattr(SDPBackend, attr, None)
        if backend is None:
            out.append((None, f"{name}: this PyTorch has no SDPBackend.{attr}"))
            continue
        try:
            out.append(measure_backend(op, q, k, v, causal, rows, ref, name, backend, budget_s,
                                       flush, target_cv))
        except Exception as e:  # a refusal or out of memory costs only this backend's record
            first = str(e).splitlines()[0] if str(e) else ""
            out.append((None, f"{name}: {type(e).__name__}: {first}"))
            torch.cuda.empty_cache()
    return out


def measure_backend(op, q, k, v, causal, rows, ref, variant, backend, budget_s, flush, target_cv):
    """Checks then times one SDPA backend on prepared inputs: (record fields, None)."""
    dt = q.dtype
    b, hq, hkv = op["batch"], op["q_heads"], op["kv_heads"]
    sq, skv, d = op["q_len"], op["kv_len"], op["qk_head_dim"]
    kwargs = {"scale": 1.0 / math.sqrt(d)}
    if op.get("shared_kv"):
        # One latent head serves every query head: expanded views, no copies.
        k, v = (t.unsqueeze(2).expand(b, hkv, hq // hkv, skv, t.shape[-1]).reshape(b, hq, skv, t.shape[-1])
                if hkv > 1 else t.expand(b, hq, skv, t.shape[-1]) for t in (k, v))
    elif hq != hkv:
        kwargs["enable_gqa"] = True

    def run():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **kwargs)

    try:
        with warnings.catch_warnings():  # a refusal also warns, once per reason
            warnings.simplefilter("ignore")
            out = run()
    except Exception:  # a backend may refuse GQA on some versions: expand K/V instead
        if "enable_gqa" not in kwargs:
            raise
        rep = hq // hkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        del kwargs["enable_gqa"]
        variant += "-expanded-kv"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run()
    torch.cuda.synchronize()
    got = out.reshape(b * hq * sq, -1)[rows].double()
    scale = ref.abs().max().item() or 1e-30
    err = (got - ref).abs().max().item() / scale
    tol = 2 * (2 ** -23 * math.sqrt(max(d, skv)) * 4 + 2 * (2 ** -10 if dt == torch.float16 else 2 ** -7))
    correct = {"max_rel_error": err, "tolerance": tol, "pass": bool(err <= tol and torch.isfinite(out).all()),
               "error": None}
    del out
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
        if len(samples) >= 5 and (summary(samples)["cv"] <= target_cv or time.time() - t0 > budget_s):
            break
    s = summary(samples)
    flops, nbytes = op_flops_bytes(op)
    timing = {"clock": "device_timestamp", "warmup_runs": 2, "summary": s, "samples_s": samples,
              "flops_per_s": flops / s["median_s"], "bytes_per_s": nbytes / s["median_s"],
              "roofline_fraction": None}
    return {"variant": variant, "correctness": correct, "timing": timing}, None


def device_info():
    props = torch.cuda.get_device_properties(0)
    return {"backend": "torch", "name": props.name, "vendor": "nvidia",
            "driver": f"torch {torch.__version__}, CUDA {torch.version.cuda}",
            "device_type": f"sm_{props.major}{props.minor}", "memory_bytes": props.total_memory,
            "compute_units": props.multi_processor_count, "timer_resolution_ns": 500.0,
            "clock": "device_timestamp", "supports_f16": True}


def slug(name):
    """The results folder gpucost uses for a device name."""
    s = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower())
    while "--" in s:
        s = s.replace("--", "-")
    return s.strip("-")


def shape_file_ops(path, dtypes):
    """gpucost's op records for the [[attention]] entries of a shape file, for each dtype."""
    import tomllib
    with open(path, "rb") as f:
        entries = tomllib.load(f).get("attention", [])
    ops = []
    for dt in dtypes:
        for e in entries:
            q = e["seq_q"]
            ops.append({"op": "attention", "batch": e.get("batch", 1), "q_heads": e["heads"],
                        "kv_heads": e.get("kv_heads", e["heads"]), "q_len": q,
                        "kv_len": e.get("seq_kv", q), "qk_head_dim": e["head_dim"],
                        "v_head_dim": e.get("v_head_dim", e["head_dim"]),
                        "causal": bool(e.get("causal", False)),
                        "window": e.get("window"), "dtype": dt, "kv_dtype": dt, "fused": True,
                        "pass": "forward", "shared_kv": bool(e.get("shared_kv", False))})
    return ops


def git_revision():
    if os.environ.get("GPUCOST_GIT_REVISION"):
        return os.environ["GPUCOST_GIT_REVISION"]
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def measure_and_write(f, op, src_revision, device, args, flush):
    """Measures one op on every SDPA backend (a scan: on the plain-PyTorch chunked reference)
    and appends a record per backend that ran to the open file f; returns how many it wrote."""
    try:
        if op.get("op") == "scan":
            results = [torch_scan.measure(op, args.budget_s, flush, summary, args.target_cv)]
        else:
            results = measure(op, args.budget_s, flush, args.target_cv)
    except torch.OutOfMemoryError as e:
        results = [(None, f"out of memory: {str(e).splitlines()[0]}")]
    except Exception as e:  # one bad shape must not end the sweep
        results = [(None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")]
    torch.cuda.empty_cache()
    written = 0
    for rec, why in results:
        if rec is None:
            print(f"skipped {op}: {why}")
            continue
        record = {"schema_version": 1, "unix_time_s": time.time(),
                  "git_revision": src_revision, "host": socket.gethostname(),
                  "device": device, "op": op,
                  # The plain-PyTorch scan is a reference, not what frameworks run (they run
                  # fused linear-attention kernels): it must never price the production stack.
                  "vendor_library": op.get("op") != "scan", "telemetry": None, **rec}
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
        written += 1
        t = rec["timing"]
        shape = (f"b{op['batch']} h{op['heads']} s{op['seq']} dk{op['key_dim']} dv{op['value_dim']}"
                 if op.get("op") == "scan" else
                 f"b{op['batch']} h{op['q_heads']}/{op['kv_heads']} q{op['q_len']} kv{op['kv_len']} "
                 f"d{op['qk_head_dim']} causal={op['causal']}")
        print(f"{rec['variant']} {op['dtype']} {shape}: "
              + (f"{t['summary']['median_s'] * 1e3:.3f} ms, {t['flops_per_s'] / 1e12:.1f} TFLOP/s"
                 if t else f"FAILED {rec['correctness']}"), flush=True)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", help="gpucost results files to append SDPA records to")
    ap.add_argument("--shapes", help="a gpucost shape file: measure its [[attention]] and [[scan]] entries")
    ap.add_argument("--dtype", default="bf16", help="with --shapes: fp16 and/or bf16, comma-separated")
    ap.add_argument("--out", default="results", help="with --shapes: the results folder")
    ap.add_argument("--budget-s", type=float, default=0.3, help="seconds of sampling per shape at most")
    ap.add_argument("--target-cv", type=float, default=0.03, help="stop sampling below this spread")
    args = ap.parse_args()
    if not args.results and not args.shapes:
        ap.error("give results files or --shapes FILE")
    props = torch.cuda.get_device_properties(0)
    flush = torch.empty(2 * max(props.L2_cache_size, 1 << 20), dtype=torch.uint8, device="cuda")
    device = device_info()
    if args.shapes:
        dtypes = [d for d in args.dtype.split(",") if d]
        bad = [d for d in dtypes if d not in DTYPES]
        if bad:
            ap.error(f"--dtype: {bad} (have {sorted(DTYPES)})")
        ops = shape_file_ops(args.shapes, dtypes) + torch_scan.shape_file_ops(args.shapes, dtypes)
        folder = os.path.join(args.out, slug(device["name"]))
        os.makedirs(folder, exist_ok=True)
        rev = git_revision()
        files = {}
        written = 0
        try:
            for op in ops:
                key = (op["op"], op["dtype"])
                if key not in files:
                    stem = f"torch-{op['op']}-{op['dtype']}-{int(time.time() * 1000)}"
                    files[key] = open(os.path.join(folder, stem + ".jsonl"), "x")
                    print(f"writing {files[key].name}")
                if op.get("window") is not None:
                    print(f"skipped {op}: SDPA has no sliding window")
                    continue
                written += measure_and_write(files[key], op, rev, device, args, flush)
        finally:
            for f in files.values():
                f.close()
        print(f"wrote {written} records for {len(ops)} shapes (a record per SDPA backend for attention)")
        return
    for path in args.results:
        with open(path) as f:
            records = [json.loads(l) for l in f if l.strip()]
        ops, seen = [], set()
        for r in records:
            op = r["op"]
            key = json.dumps(op, sort_keys=True)
            wanted = (op.get("op") == "attention" and op.get("window") is None) or op.get("op") == "scan"
            if wanted and op["dtype"] in DTYPES and key not in seen:
                seen.add(key)
                ops.append((op, r))
        with open(path, "a") as f:
            for op, src in ops:
                measure_and_write(f, op, src.get("git_revision", "unknown"), device, args, flush)


if __name__ == "__main__":
    main()
