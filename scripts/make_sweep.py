#!/usr/bin/env python3
"""The dense H200 calibration sweep: writes its shape files and estimates how long they take.

  make_sweep.py [gen] [options]        write scripts/sweep_h200_*.toml (see --help for the knobs)
  make_sweep.py estimate STEP [...]    count the shapes of each step and estimate its time

Every file is ordered by priority, so a step cut short by its time limit keeps a spread-out
subset: the projections of a 4096-wide model first, then the grid from coarse to fine, each
level cheapest first. Files (read by `gpucost bench --shapes FILE` and by
`reference_torch.py --shapes FILE`):

  sweep_h200_gemm.toml       [[matmul]]  bf16, fp16, tf32 (cuBLAS) and fp8-e4m3 (cuBLASLt):
                                         M 1..16384 (powers of two) x N, K 256..32768 (every
                                         other power of two, and 32768), plus QKV (GQA),
                                         attention-out, gate+up, down and the 128k-vocab LM head
                                         of hidden 2048..16384 at M in {1, 8, 64, 512, 4096,
                                         16384}; cuBLASLt fp8 wants M, N, K multiples of 16, and
                                         `gpucost bench --variant cublaslt` skips the others
  sweep_h200_attention.toml  [[attention]] PyTorch SDPA (flash and cuDNN backends): prefill
                                         512..32k tokens, head dim 64/128/256, MHA and GQA,
                                         causal and not, one sequence and a 64k-token batch;
                                         decode (q_len 1) over 1k..128k contexts at batch 1..256
  sweep_h200_memory.toml     [[memory]]  RMSNorm, SwiGLU, residual add, rotary at real widths
  sweep_h200_ours.toml       [[matmul]] + [[attention]]: a thin grid for our own kernels

The time model (used by `estimate` and to cap the grid): `gpucost bench` spends a large part of
a shape's time on the host making its random inputs and packing them for upload (about 3 ns
per input element, 4 ns in fp8, as measured on a 2-vCPU VM with the inputs made on every core;
a many-core GPU host is faster, so this is an upper bound; the H100 runs, before inputs were
made in parallel, spent 13 ns and 85 ns), then checking the output (assumed 3 ns per output
element); a timed sample costs the kernel (a roofline at the efficiencies below), the L2 flush
(2 x 60 MiB) and a launch and sync. The device check passes `--input-sets 1`, so bench makes
one input set per shape (the CUDA backend flushes the L2 before every sample, which is what
rotating sets guards against on backends that cannot). See ASSUMPTIONS for every constant.

STEP is KIND:DTYPE:LIMIT_S:FILE[:VARIANTS], KIND one of gemm, attention (our kernels),
memory, scan (our chunked CUDA scan), torchscan (the plain-PyTorch scan reference), sdpa, e2e
(FILE then names model configs, comma-separated, and DTYPE is ignored).
"""
import argparse
import json
import math
import os
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))

# Every constant of the time model, in one place (seconds, bytes, FLOP/s).
ASSUMPTIONS = {
    "process_start_s": 1.5,        # gpucost bench: CUDA context, NVRTC compile, cuBLAS handles
    "python_start_s": 8.0,         # python3 + import torch + CUDA context
    "shape_fixed_s": 0.03,         # per shape: allocation, upload, the first launches
    "gen_ns_per_input": {"fp32": 3, "tf32": 3, "fp16": 3, "bf16": 3, "int8": 3,
                         "fp8-e4m3": 4},
    "check_ns_per_output": 3,      # poison, download, decode, NaN scan, per variant
    "memory_ref_ns_per_output": 10,  # memory ops: the f64 reference and compare, per output checked
    "full_reference_max_outputs": 2 ** 22,  # above: 66 sampled rows are checked
    "sdpa_variants": 2,            # PyTorch SDPA's flash and cuDNN backends, on the same inputs
    "attn_ref_ns_per_mac": 1.0,    # our attention: 66 sampled rows x kv x d on the host
    "flush_s": 40e-6,              # memset of 2 x L2 before every sample
    "sample_overhead_s": 15e-6,    # event record, launch, sync (gpucost); torch adds 30 us
    "torch_sample_overhead_s": 45e-6,
    "noisy_below_s": 15e-6,        # kernels shorter than this rarely reach the CV target
    "warmup_runs": 2, "min_samples": 5, "max_samples": 200,
    "peak_flops": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12, "bf16": 989.4e12,
                   "fp8-e4m3": 1978.9e12, "int8": 1978.9e12},
    "bandwidth": 4.8e12,
    "efficiency": {"vendor_matmul": 0.75, "ours_matmul": 0.25, "sdpa": 0.55, "ours_attention": 0.3,
                   "memory": 0.8},
    "bytes": {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8-e4m3": 1, "int8": 1},
}
A = ASSUMPTIONS

# ---------------------------------------------------------------------------------------------
# The grids


def pow2(lo, hi, step=1):
    """Powers of two from lo to hi (inclusive), every `step`-th exponent, hi always included."""
    e0, e1 = int(math.log2(lo)), int(math.log2(hi))
    out = [2 ** e for e in range(e0, e1 + 1, step)]
    if out[-1] != hi:
        out.append(hi)
    return out


def ffn_width(hidden, ratio):
    """The MLP width: ratio x hidden rounded up to a multiple of 256."""
    return int(math.ceil(ratio * hidden / 256) * 256)


def projections(hidden, head_dim, kv_heads, ratio, vocab):
    """(n, k, name) of one layer's GEMMs (Y[M,N] = X[M,K] W[K,N]) and the LM head."""
    ffn = ffn_width(hidden, ratio)
    kv = kv_heads * head_dim
    return [
        (hidden + 2 * kv, hidden, "qkv"),
        (hidden, hidden, "attn-out"),
        (2 * ffn, hidden, "gate-up"),
        (hidden, ffn, "down"),
        (vocab, hidden, "lm-head"),
    ]


def matmul_cost(m, n, k, dtype, variants=1, ours=False, budget_s=0.1):
    """Estimated seconds `gpucost bench` spends on one matmul shape."""
    ein, eout = m * k + k * n, m * n
    host = A["shape_fixed_s"] + A["gen_ns_per_input"][dtype] * 1e-9 * ein \
        + A["check_ns_per_output"] * 1e-9 * eout * variants
    eff = A["efficiency"]["ours_matmul" if ours else "vendor_matmul"]
    out_bytes = 2 if dtype == "fp8-e4m3" else A["bytes"][dtype]
    nbytes = ein * A["bytes"][dtype] + eout * out_bytes
    t = max(2 * m * n * k / (eff * A["peak_flops"][dtype]), nbytes / (0.8 * A["bandwidth"])) + 4e-6
    return host + variants * sampling(t, A["sample_overhead_s"], budget_s)


def sampling(t, overhead, budget_s):
    """Warm-up, the correctness run and the timed samples of one variant."""
    per = t + A["flush_s"] + overhead
    n = A["min_samples"]
    if t < A["noisy_below_s"]:  # sampled until the budget or the sample cap
        n = max(n, min(A["max_samples"], int(budget_s / per)))
    return (A["warmup_runs"] + 1) * (t + overhead) + n * per


def gemm_shapes(args):
    """The priority-ordered GEMM grid, capped by estimated host cost and device memory."""
    dtype = "bf16"
    cap, proj_cap = args.max_shape_s, args.proj_max_shape_s
    ms = [m for m in pow2(1, args.m_max)]
    nks = pow2(args.nk_min, args.nk_max, args.nk_step)
    proj_ms = [int(x) for x in args.proj_m.split(",")]
    hiddens = [int(x) for x in args.hidden.split(",")]

    def ok(m, n, k, proj):
        elems = m * k + k * n + m * n
        limit = proj_cap if proj else cap
        return matmul_cost(m, n, k, dtype) <= limit and elems * 4 <= args.max_device_bytes

    levels = []  # (shapes, whether they are projections)

    def proj_level(hs):
        lv = []
        for h in hs:
            for n, k, _ in projections(h, 128, args.kv_heads, args.mlp_ratio, args.vocab):
                for m in proj_ms:
                    lv.append((m, n, k))
        return lv, True

    first = [h for h in hiddens if h == 4096] or hiddens[:1]
    levels.append(proj_level(first))
    mi = list(range(len(ms)))
    ki = list(range(len(nks)))
    coarse = [(ms[i], nks[a], nks[b]) for i in mi[::4] for a in ki[::2] for b in ki[::2]]
    levels.append((coarse, False))
    levels.append(proj_level([h for h in hiddens if h not in first]))
    levels.append(([(ms[i], nks[a], nks[b]) for i in mi[::2] for a in ki for b in ki], False))
    levels.append(([(m, n, k) for m in ms for n in nks for k in nks], False))
    seen, out, dropped = set(), [], 0
    for lv, proj in levels:
        fresh = []
        for s in lv:
            if s in seen:
                continue
            seen.add(s)
            if ok(*s, proj):
                fresh.append(s)
            else:
                dropped += 1
        fresh.sort(key=lambda s: matmul_cost(*s, dtype))
        out.extend(fresh)
    return out, dropped


def attention_shapes(args):
    """SDPA grid: (batch, heads, kv_heads, seq_q, seq_kv, head_dim, causal), priority-ordered."""
    heads = {64: [(32, 32), (32, 8)], 128: [(32, 32), (32, 8), (64, 8)], 256: [(16, 16), (16, 8)]}
    seqs = pow2(512, 32768)
    prefill, decode = [], []
    cap = args.attn_max_bytes
    for d in (128, 64, 256):
        for hq, hkv in heads[d]:
            for s in seqs:
                for b in sorted({1, max(1, 65536 // s)}):
                    for causal in (True, False):
                        prefill.append((b, hq, hkv, s, s, d, causal))
            for ctx in pow2(1024, 131072):
                for b in (1, 4, 16, 64, 256):
                    decode.append((b, hq, hkv, 1, ctx, d, False))

    def nbytes(s):
        b, hq, hkv, q, kv, d, _ = s
        return 2 * b * d * (2 * hq * q + 2 * hkv * kv)

    def level(s):
        b, hq, hkv, q, kv, d, causal = s
        length = q if q > 1 else kv
        coarse = int(math.log2(length)) % 2 == 1  # 512, 2k, 8k, 32k; decode 2k, 8k, 32k, 128k
        # The commonest configuration (head dim 128, 32 q heads over 8 kv heads) first.
        return (0 if (d, hq, hkv) == (128, 32, 8) else 1 if d == 128 else 2) * 2 + (not coarse)

    kept = [s for s in prefill + decode if nbytes(s) <= cap]
    dropped = len(prefill) + len(decode) - len(kept)
    out = []
    for lv in range(6):
        out.extend(sorted((s for s in kept if level(s) == lv), key=lambda s: sdpa_cost(s, "bf16")))
    return out, dropped


def cublaslt_takes(m, n, k):
    """Whether cuBLASLt fp8 runs a shape (as kernels/cuda/specs.rs accepts it)."""
    return m % 16 == 0 and n % 16 == 0 and k % 16 == 0


def sdpa_cost(s, dtype, ours=False, budget_s=0.1):
    b, hq, hkv, q, kv, d, causal = s
    pairs = q * kv if not causal else (kv * (kv + 1)) // 2 - ((kv - q) * (kv - q + 1)) // 2
    flops = b * hq * pairs * 4 * d
    nbytes = 2 * b * d * (2 * hq * q + 2 * hkv * kv)
    eff = A["efficiency"]["ours_attention" if ours else "sdpa"]
    t = max(flops / (eff * A["peak_flops"]["bf16"]), nbytes / (0.8 * A["bandwidth"])) + 8e-6
    if ours:
        host = A["shape_fixed_s"] + A["gen_ns_per_input"][dtype] * 1e-9 * nbytes / 2 \
            + A["attn_ref_ns_per_mac"] * 1e-9 * 66 * kv * d + A["check_ns_per_output"] * 1e-9 * b * hq * q * d
        return host + sampling(t, A["sample_overhead_s"], budget_s)
    # torch: inputs made on the GPU; the f64 check of 66 rows costs ~0.5 ms each plus the copy,
    # computed once and compared with each backend's output.
    host = 0.04 + 66 * (0.5e-3 + kv * d * 16 / 1e12)
    return host + A["sdpa_variants"] * sampling(t, A["torch_sample_overhead_s"], budget_s)


MEMORY_KINDS = ("rmsnorm", "gated-silu", "residual-add", "rotary")


def memory_shapes(args):
    """(kind, rows, cols) at the widths real models use; rows x cols capped (bandwidth has long
    saturated by then, and the host makes every input)."""
    widths = {
        "rmsnorm": [2048, 4096, 8192, 16384],
        "residual-add": [2048, 4096, 8192, 16384],
        "gated-silu": [7168, 11008, 14336, 28672],
        "rotary": [3072, 5120, 8192, 10240],  # q + kv widths
    }
    rows = pow2(1, 32768)
    out, dropped = [], 0
    levels = [rows[::4], rows[::2], rows]
    seen = set()
    for lv in levels:
        fresh = []
        for r in lv:
            for kind in MEMORY_KINDS:
                for c in widths[kind]:
                    s = (kind, r, c)
                    if s in seen:
                        continue
                    seen.add(s)
                    if r * c <= args.memory_max_elems:
                        fresh.append(s)
                    else:
                        dropped += 1
        fresh.sort(key=lambda s: memory_cost(*s, "bf16"))
        out.extend(fresh)
    return out, dropped


def memory_cost(kind, rows, cols, dtype, budget_s=0.1):
    e = rows * cols
    inputs = {"rmsnorm": e + cols, "gated-silu": 2 * e, "residual-add": 2 * e, "rotary": e}[kind]
    reads = {"rmsnorm": 1, "gated-silu": 2, "residual-add": 2, "rotary": 1}[kind]
    checked = e if e <= A["full_reference_max_outputs"] else 66 * cols
    host = A["shape_fixed_s"] + A["gen_ns_per_input"][dtype] * 1e-9 * inputs \
        + A["memory_ref_ns_per_output"] * 1e-9 * checked + A["check_ns_per_output"] * 1e-9 * e
    t = (reads + 1) * e * A["bytes"][dtype] / (A["efficiency"]["memory"] * A["bandwidth"]) + 3e-6
    return host + sampling(t, A["sample_overhead_s"], budget_s)


def ours_shapes(args):
    """A thin grid for our own kernels: matmuls and attention (prefill and decode)."""
    mm = []
    for n, k, _ in projections(4096, 128, args.kv_heads, args.mlp_ratio, args.vocab)[:4]:
        for m in (1, 64, 4096):
            mm.append((m, n, k))
    for m in (1, 16, 256, 4096):
        for n in (1024, 8192):
            for k in (1024, 8192):
                mm.append((m, n, k))
    mm = sorted(dict.fromkeys(mm), key=lambda s: matmul_cost(*s, "bf16", variants=2, ours=True))
    at = []
    for d, hq, hkv in ((128, 32, 8), (128, 32, 32), (64, 32, 8)):
        for s in (1024, 4096):
            for causal in (True, False):
                at.append((4096 // s, hq, hkv, s, s, d, causal))
        for b, ctx in ((1, 4096), (16, 4096), (1, 32768)):
            at.append((b, hq, hkv, 1, ctx, d, True))
    at.sort(key=lambda s: sdpa_cost(s, "bf16", ours=True))
    return mm, at


# ---------------------------------------------------------------------------------------------
# Writing


def header(title, lines):
    return "".join(f"# {l}\n" if l else "#\n" for l in [title, *lines]) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path)}")


def toml_matmul(shapes):
    return "".join(f"[[matmul]]\nm = {m}\nn = {n}\nk = {k}\n\n" for m, n, k in shapes)


def toml_attention(shapes):
    out = []
    for b, hq, hkv, q, kv, d, causal in shapes:
        out.append(f"[[attention]]\nbatch = {b}\nheads = {hq}\nkv_heads = {hkv}\nseq_q = {q}\n"
                   f"seq_kv = {kv}\nhead_dim = {d}\ncausal = {str(causal).lower()}\n\n")
    return "".join(out)


def toml_memory(shapes):
    return "".join(f'[[memory]]\nkind = "{k}"\nrows = {r}\ncols = {c}\n\n' for k, r, c in shapes)


def gen(args):
    cmd = "scripts/make_sweep.py " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "scripts/make_sweep.py"
    gemm, gd = gemm_shapes(args)
    attn, ad = attention_shapes(args)
    mem, md = memory_shapes(args)
    mm, at = ours_shapes(args)
    fp8 = [s for s in gemm if cublaslt_takes(*s)]
    note = f"Written by `{cmd}`; regenerate rather than edit. Priority-ordered: a cut keeps a spread."

    def est(shapes, f):
        return sum(f(s) for s in shapes)

    write(os.path.join(args.out_dir, "sweep_h200_gemm.toml"), header(
        "Dense GEMM calibration grid for cuBLAS (bf16, fp16, tf32) and cuBLASLt (fp8-e4m3) on an H200.",
        [note, f"{len(gemm)} shapes ({gd} over {args.max_shape_s:g} s, projections over {args.proj_max_shape_s:g} s, left out);",
         f"estimated {est(gemm, lambda s: matmul_cost(*s, 'bf16')):.0f} s in bf16, "
         f"{est(gemm, lambda s: matmul_cost(*s, 'tf32')):.0f} s in tf32 with the vendor variant, "
         f"{est(fp8, lambda s: matmul_cost(*s, 'fp8-e4m3')):.0f} s in fp8-e4m3 over the {len(fp8)} "
         "shapes cuBLASLt takes (M, N, K multiples of 16) (make_sweep.py's time model)."]) + toml_matmul(gemm))
    write(os.path.join(args.out_dir, "sweep_h200_attention.toml"), header(
        "Attention calibration grid for PyTorch SDPA (flash, cuDNN) on an H200: prefill and decode (seq_q 1).",
        [note, f"{len(attn)} shapes ({ad} over {args.attn_max_bytes:.3g} bytes of Q, K, V, O left out);",
         f"estimated {est(attn, lambda s: sdpa_cost(s, 'bf16')):.0f} s in bf16 "
         "(scripts/reference_torch.py --shapes)."]) + toml_attention(attn))
    write(os.path.join(args.out_dir, "sweep_h200_memory.toml"), header(
        "Memory-bound op grid (our CUDA kernels) on an H200.",
        [note, f"{len(mem)} shapes ({md} over {args.memory_max_elems:.3g} elements left out);",
         f"estimated {est(mem, lambda s: memory_cost(*s, 'bf16')):.0f} s in bf16."]) + toml_memory(mem))
    write(os.path.join(args.out_dir, "sweep_h200_ours.toml"), header(
        "A thin grid for our own kernels (mma matmul beside cuBLAS, flash and decode attention).",
        [note, f"{len(mm)} matmuls, estimated {est(mm, lambda s: matmul_cost(*s, 'bf16', 2, True)):.0f} s; "
         f"{len(at)} attention shapes, estimated {est(at, lambda s: sdpa_cost(s, 'bf16', True)):.0f} s (bf16)."])
        + toml_matmul(mm) + toml_attention(at))


# ---------------------------------------------------------------------------------------------
# Estimating


def read_shapes(path, section):
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return data.get(section, [])


def e2e_cost(configs, batches=(1, 8, 32), prompts=(128, 1024, 4096), gen_tokens=16):
    """Rough seconds for scripts/e2e_torch.py over the given configs."""
    total = A["python_start_s"]
    for path in configs:
        with open(path) as f:
            c = json.load(f)
        h, L, v = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
        ffn = c["intermediate_size"]
        hq = c["num_attention_heads"]
        hkv = c.get("num_key_value_heads", hq)
        d = c.get("head_dim", h // hq)
        params = L * (h * (hq * d + 2 * hkv * d) + hq * d * h + 3 * h * ffn) + 2 * v * h
        total += 3.0  # weights
        for b in batches:
            for p in prompts:
                tok = b * p
                t_pre = 2 * (params - v * h) * tok / (0.6 * 989e12) \
                    + L * 2 * b * hq * p * p * d / (0.4 * 989e12) + L * 0.2e-3
                n = max(3, min(10, int(1.0 / max(t_pre, 1e-6))))
                ctx = p + gen_tokens
                kv = L * b * ctx * 2 * hkv * d * 2
                t_dec = (2 * params + kv) / (0.8 * 4.8e12)
                eager = max(t_dec, L * 16 * 12e-6)
                total += (n + 1) * t_pre + 15 * eager + 0.6 + 15 * t_dec + 0.3
    return total


def scan_cost(s, dtype, torch_ref=False, budget_s=0.1):
    """Rough seconds for one gated-delta scan shape (batch, heads, seq, dk): a guess of the time
    model, not a measurement. Ours: the chunk products at a low SIMT efficiency, and the host
    reference on ten sampled heads; the PyTorch reference: ~15 launches per 64-token chunk, and
    its float64 check token by token (~6 launches per token)."""
    b, h, seq, d = s
    c = 64
    flops = b * h * (seq / c) * (4 * c * c * d + c ** 3 / 3 + 6 * c * d * d)
    t = flops / (0.05 * A["peak_flops"]["fp32"]) + b * h * seq * 4 * d * 2 / A["bandwidth"]
    if torch_ref:
        t = max(t, (seq / c) * 15 * 8e-6)
        return 6 * seq * 8e-6 + sampling(t, A["torch_sample_overhead_s"], budget_s)
    host = 10 * seq * d * d * 3 * 1e-9 / 16
    return host + sampling(t, A["sample_overhead_s"], budget_s)


def estimate(steps, budget, reserve=0.0, setup=0.0):
    """Prints each step's shape count, estimated time and how much of it its limit allows, the
    steps run in order from `setup` seconds on; a limit of "rest" is an equal share of what is
    left of budget - reserve, as scripts/device-check.sh gives it."""
    rows, clock = [], setup
    rest_left = sum(1 for s in steps if s.split(":")[2] == "rest")
    for step in steps:
        parts = step.split(":")
        kind, dtype, limit, path = parts[0], parts[1], parts[2], parts[3]
        variants = parts[4] if len(parts) > 4 else ""
        nvar = max(1, len([v for v in variants.split(",") if v]))
        left = budget - reserve - clock
        if limit == "rest":
            limit = left / rest_left
            rest_left -= 1
        limit = min(float(limit), left)
        if kind == "e2e":
            t, n = e2e_cost(path.split(",")), len(path.split(",")) * 9
            done = n if t <= limit else int(n * limit / t)
            rows.append((step, n, t, limit, done))
            clock += max(0.0, min(t, limit))
            continue
        ours = False
        if kind == "gemm":
            # Without --variant, bench runs every variant: ours (mma) beside the vendor.
            ours = not variants
            nvar = nvar if variants else 2
            sh = [(s["m"], s["n"], s["k"]) for s in read_shapes(path, "matmul")
                  if s.get("batch", 1) == 1 or variants != "cublaslt"]
            if variants == "cublaslt":  # bench skips the shapes cuBLASLt does not take
                sh = [s for s in sh if cublaslt_takes(*s)]
            costs = [matmul_cost(*s, dtype, nvar, ours) for s in sh]
            start = A["process_start_s"]
        elif kind == "attention":
            sh = [(s.get("batch", 1), s["heads"], s.get("kv_heads", s["heads"]), s["seq_q"],
                   s.get("seq_kv", s["seq_q"]), s["head_dim"], s.get("causal", False))
                  for s in read_shapes(path, "attention")]
            sh = [s for s in sh if s[5] in (64, 128)]  # our kernels' head dims
            # flash, and the split-KV decode kernel too where seq_q is 1
            costs = [sdpa_cost(s, dtype, ours=True) * (2 if s[3] == 1 else 1) for s in sh]
            start = A["process_start_s"]
        elif kind == "sdpa":
            sh = [(s.get("batch", 1), s["heads"], s.get("kv_heads", s["heads"]), s["seq_q"],
                   s.get("seq_kv", s["seq_q"]), s["head_dim"], s.get("causal", False))
                  for s in read_shapes(path, "attention")]
            costs = [sdpa_cost(s, dtype) for s in sh]
            start = A["python_start_s"]
        elif kind in ("scan", "torchscan"):
            sh = [(s.get("batch", 1), s["heads"], s["seq"], s["key_dim"])
                  for s in read_shapes(path, "scan")]
            costs = [scan_cost(x, dtype, torch_ref=kind == "torchscan") for x in sh]
            start = A["python_start_s" if kind == "torchscan" else "process_start_s"]
        elif kind == "memory":
            sh = [(s["kind"], s["rows"], s["cols"]) for s in read_shapes(path, "memory")]
            costs = [memory_cost(*s, dtype) for s in sh]
            start = A["process_start_s"]
        else:
            sys.exit(f"unknown step kind {kind!r}")
        t, done = start, 0
        for c in costs:
            if t + c > limit:
                break
            t += c
            done += 1
        total = start + sum(costs)
        rows.append((step, len(sh), total, limit, done))
        clock += max(0.0, min(total, limit))
    w = max(len(r[0]) for r in rows)
    print(f"{'step (kind:dtype:limit:file:variants)':<{w}}  {'shapes':>6}  {'est. all':>8}  "
          f"{'limit':>6}  {'done in limit':>13}")
    for step, n, t, limit, done in rows:
        print(f"{step:<{w}}  {n:>6}  {t:>7.0f}s  {max(limit, 0):>5.0f}s  {done:>6} ({100 * done / max(n, 1):3.0f}%)")
    print(f"estimated wall time: {clock + reserve:.0f} s of the {budget:.0f} s budget, with {setup:.0f} s "
          f"of setup and {reserve:.0f} s for the report and archive (a step ends at its estimate or "
          f"its limit, whichever is first)")
    print("time model: " + json.dumps({k: v for k, v in A.items() if k not in ("peak_flops", "bytes")}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("what", nargs="?", default="gen", choices=["gen", "estimate"])
    ap.add_argument("steps", nargs="*", help="estimate: KIND:DTYPE:LIMIT_S:FILE[:VARIANTS]")
    ap.add_argument("--budget-s", type=float, default=420, help="estimate: the whole sweep's budget")
    ap.add_argument("--reserve-s", type=float, default=15, help="estimate: seconds kept for the end")
    ap.add_argument("--setup-s", type=float, default=10, help="estimate: seconds before the first step")
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--m-max", type=int, default=16384, help="GEMM grid: M over powers of two 1..this")
    ap.add_argument("--nk-min", type=int, default=256)
    ap.add_argument("--nk-max", type=int, default=32768)
    ap.add_argument("--nk-step", type=int, default=2, help="every N-th power of two for N and K")
    ap.add_argument("--hidden", default="2048,4096,5120,8192,16384", help="projection hidden sizes")
    ap.add_argument("--proj-m", default="1,8,64,512,4096,16384", help="projection M values")
    ap.add_argument("--kv-heads", type=int, default=8, help="GQA kv heads of the projections (head dim 128)")
    ap.add_argument("--mlp-ratio", type=float, default=3.5)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--max-shape-s", type=float, default=1.0,
                    help="GEMM grid cap: a shape's estimated seconds in bf16")
    ap.add_argument("--proj-max-shape-s", type=float, default=2.5,
                    help="the same cap for the projection shapes")
    ap.add_argument("--max-device-bytes", type=float, default=32e9)
    ap.add_argument("--attn-max-bytes", type=float, default=16e9, help="SDPA cap: bytes of Q, K, V, O")
    ap.add_argument("--memory-max-elems", type=float, default=2 ** 25, help="memory ops: rows*cols cap")
    args = ap.parse_intermixed_args()
    if args.what == "estimate":
        estimate(args.steps, args.budget_s, args.reserve_s, args.setup_s)
    else:
        gen(args)


if __name__ == "__main__":
    main()
