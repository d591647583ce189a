"""The gated-delta-rule scan in plain PyTorch: a reference beside gpucost's scan kernels, not a
vendor kernel. `reference_torch.py` measures it for the scan ops of a results file or the
[[scan]] entries of a shape file and records it as variant "torch-naive-chunked" (vendor_library
true, as the attention references are, so `gpucost report` puts it beside our kernels).

The convention is gpucost's (src/model/ops/scan.rs): per (sequence, head), the state S (dk × dv)
starts at zero and S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, o_t = S_tᵀ q_t, keys
L2-normalized by the caller. `chunked` is the chunked algorithm (WY representation, the UT
transform as a triangular solve, the state passed between chunks; "Parallelizing Linear
Transformers with the Delta Rule over Sequence Length", Yang et al. 2024, with the gates of
"Gated Delta Networks: Improving Mamba2 with Delta Rule") written with batched matmuls over
(batch, heads) in fp32 and a Python loop over chunks; `recurrence` is the token-by-token
definition in float64 that checks it.
"""
import math
import time

import torch


def chunked(q, k, v, alpha, beta, chunk=64):
    """o [B, H, S, dv] and the final state [B, H, dk, dv], in fp32."""
    b_, h_, s_, dk = q.shape
    dv = v.shape[-1]
    q, k, v = q.float(), k.float(), v.float()
    log_a, beta = alpha.float().log(), beta.float()
    state = q.new_zeros(b_, h_, dk, dv)
    out = q.new_empty(b_, h_, s_, dv)
    for s0 in range(0, s_, chunk):
        n = min(chunk, s_ - s0)
        qc, kc, vc = q[:, :, s0:s0 + n], k[:, :, s0:s0 + n], v[:, :, s0:s0 + n]
        g = log_a[:, :, s0:s0 + n].cumsum(-1)  # log γ_r
        bc = beta[:, :, s0:s0 + n]
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        decay = (g[..., :, None] - g[..., None, :]).masked_fill(~causal, float("-inf")).exp()
        eye = torch.eye(n, device=q.device)
        a = (bc[..., :, None] * decay * (kc @ kc.transpose(-1, -2))).tril(-1)
        t = torch.linalg.solve_triangular(eye + a, eye.expand_as(a), upper=False,
                                          unitriangular=True)
        r = bc[..., None] * (vc - g.exp()[..., None] * (kc @ state))
        u = t @ r
        out[:, :, s0:s0 + n] = g.exp()[..., None] * (qc @ state) + (decay * (qc @ kc.transpose(-1, -2))) @ u
        last = g[..., -1:]
        state = last.exp()[..., None] * state + ((last - g).exp()[..., None] * kc).transpose(-1, -2) @ u
    return out, state


def recurrence(q, k, v, alpha, beta):
    """The definition, token by token, in float64 (heads vectorized)."""
    q, k, v, alpha, beta = (x.double() for x in (q, k, v, alpha, beta))
    b_, h_, s_, dk = q.shape
    state = q.new_zeros(b_, h_, dk, v.shape[-1])
    out = []
    for t in range(s_):
        kt, a, bt = k[:, :, t], alpha[:, :, t, None, None], beta[:, :, t, None, None]
        ks = (kt[..., None] * state).sum(-2)  # kᵀS
        state = a * (state - bt * kt[..., None] * ks[..., None, :]) + bt * kt[..., None] * v[:, :, t, None, :]
        out.append((q[:, :, t, :, None] * state).sum(-2))
    return torch.stack(out, 2), state


def flops_bytes(op):
    """gpucost's counting (Scan::flops, Scan::min_bytes)."""
    def per_chunk(c):
        kd, vd = op["key_dim"], op["value_dim"]
        return 2 * c * c * (kd + vd) + c * (c - 1) * (c - 2) / 3 + 6 * c * kd * vd
    rows = op["batch"] * op["heads"]
    whole, rest = divmod(op["seq"], op["chunk"])
    flops = rows * (whole * per_chunk(op["chunk"]) + (per_chunk(rest) if rest else 0))
    tokens = rows * op["seq"]
    elems = tokens * (2 * op["key_dim"] + 2 * op["value_dim"] + 2) + rows * op["key_dim"] * op["value_dim"]
    return float(flops), float(elems * 2)


def inputs(op, dt):
    """Seeded inputs as gpucost draws them: q, v uniform in [−1, 1); keys L2-normalized before
    rounding; α in [0.9, 1); β in [0.05, 0.95)."""
    g = torch.Generator(device="cuda").manual_seed(42)
    shape = (op["batch"], op["heads"], op["seq"])
    u = lambda *s: torch.empty(*s, device="cuda").uniform_(-1, 1, generator=g)
    q = u(*shape, op["key_dim"]).to(dt)
    k = torch.nn.functional.normalize(u(*shape, op["key_dim"]), dim=-1).to(dt)
    v = u(*shape, op["value_dim"]).to(dt)
    alpha = (0.95 + 0.05 * u(*shape)).to(dt)
    beta = (0.5 + 0.45 * u(*shape)).to(dt)
    return q, k, v, alpha, beta


def tolerance(op, dt):
    """gpucost's op_tolerance for a scan: fp32 accumulation over seq × max(dk, dv) (a random walk:
    the transition has norm at most 1) plus one rounding to the dtype, doubled."""
    eps = 2 ** -10 if dt == torch.float16 else 2 ** -7
    k = op["seq"] * max(op["key_dim"], op["value_dim"])
    return 2 * (2 ** -23 * math.sqrt(k) * 4 + 2 * eps)


def measure(op, budget_s, flush, summary, target_cv=0.03, check_heads=2):
    """Checks then times the chunked reference on op: (record fields, None) or (None, why)."""
    dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[op["dtype"]]
    q, k, v, alpha, beta = inputs(op, dt)

    def run():
        o, s = chunked(q, k, v, alpha, beta, op["chunk"])
        return o.to(dt), s.to(dt)

    o, s = run()
    torch.cuda.synchronize()
    # The first and last (sequence, head), flattened, against the float64 recurrence.
    b_, h_ = op["batch"], op["heads"]
    picks = sorted({0, b_ * h_ - 1})[:check_heads]
    flat = lambda x: x.reshape(b_ * h_, *x.shape[2:])[picks][None]
    ro, rs = recurrence(*(flat(x) for x in (q, k, v, alpha, beta)))
    got = torch.cat([flat(o).double().flatten(), flat(s).double().flatten()])
    ref = torch.cat([ro.flatten(), rs.flatten()])
    scale = ref.abs().max().item() or 1e-30
    err = (got - ref).abs().max().item() / scale
    tol = tolerance(op, dt)
    ok = bool(err <= tol and torch.isfinite(got).all())
    correct = {"max_rel_error": err, "tolerance": tol, "pass": ok, "error": None}
    if not ok:
        return {"variant": "torch-naive-chunked", "correctness": correct, "timing": None}, None
    for _ in range(2):
        run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples, t0 = [], time.time()
    while len(samples) < 200:
        flush.zero_()
        start.record()
        run()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e-3)
        if len(samples) >= 5 and (summary(samples)["cv"] <= target_cv or time.time() - t0 > budget_s):
            break
    sm = summary(samples)
    flops, nbytes = flops_bytes(op)
    timing = {"clock": "device_timestamp", "warmup_runs": 2, "summary": sm, "samples_s": samples,
              "flops_per_s": flops / sm["median_s"], "bytes_per_s": nbytes / sm["median_s"],
              "roofline_fraction": None}
    return {"variant": "torch-naive-chunked", "correctness": correct, "timing": timing}, None


def shape_file_ops(path, dtypes):
    """gpucost's op records for the [[scan]] entries of a shape file, for each dtype."""
    import tomllib
    with open(path, "rb") as f:
        entries = tomllib.load(f).get("scan", [])
    return [{"op": "scan", "batch": e.get("batch", 1), "heads": e["heads"], "seq": e["seq"],
             "key_dim": e["key_dim"], "value_dim": e.get("value_dim", e["key_dim"]),
             "chunk": e.get("chunk", 64), "dtype": dt, "pass": "forward"}
            for dt in dtypes for e in entries]
