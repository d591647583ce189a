#!/usr/bin/env python3
"""End-to-end truth for gpucost's serving predictions: a random-weight Llama-style decoder in plain
PyTorch, timed with CUDA events, next to `gpucost predict` for the same settings.

For each Hugging Face config.json given (llama, mistral or qwen2 style: RMSNorm, rotary, GQA
attention through scaled_dot_product_attention, SwiGLU MLP, a tied or untied LM head as the
config says; QKV and gate+up fused into one matmul each, as gpucost's plan counts them), it builds
the model with random weights (nothing is downloaded), then for every batch x prompt length:

  prefill   the whole prompt through every layer, KV cache written, logits and the next token for
            the last position only (time to first token); eager
  decode    one step (one token per sequence, KV cache read and appended) at context
            prompt + gen/2, the mean context of `gen` generated tokens (time per output token);
            eager, and replayed from a CUDA graph (torch.cuda.graph) captured for that step

Each measurement is one JSON line in OUT/e2e-<model>.jsonl (config, layers run, batch, lengths,
phase, mode, median and p10/p90 seconds and the samples, device, driver, torch version), flushed
as it is measured. Before measuring, `gpucost predict --model CONFIG --hw HW --batch B --prompt P
--gen G --format json` (calibrated and --roofline) runs for the same settings and its JSON goes to
OUT/e2e-predict-<model>.jsonl, so an overhead term can be fitted later. If the largest setting
does not fit in the GPU's memory with every layer, layers are dropped until it does; the JSON
records both counts, and the predictions use a copy of the config with the layers run.

usage: e2e_torch.py --config models/Meta-Llama-3-8B.json [--config ...] --out DIR
                    [--batch 1,8,32] [--prompt 128,1024,4096] [--gen 16] [--deadline-s 110]
                    [--gpucost .device/bin/gpucost] [--hw auto]
"""
import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

SCHEMA = "gpucost-e2e-1"


# ---------------------------------------------------------------------------------------------
# The model


class Config:
    def __init__(self, path, layers=None):
        with open(path) as f:
            c = json.load(f)
        self.path, self.raw = path, c
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.model_type = c.get("model_type", "llama")
        if c.get("num_local_experts") or c.get("n_routed_experts"):
            raise SystemExit(f"{path}: mixture-of-experts configs are not supported here")
        act = c.get("hidden_act", c.get("hidden_activation", "silu"))
        if act not in ("silu", "swish"):
            raise SystemExit(f"{path}: hidden_act {act!r} (only SwiGLU models)")
        self.hidden = c["hidden_size"]
        self.layers_config = c["num_hidden_layers"]
        self.layers = layers or self.layers_config
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.ffn = c["intermediate_size"]
        self.vocab = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-5)
        self.theta = c.get("rope_theta", 10000.0)
        # LlamaConfig's default is untied; a config that says nothing is taken as untied.
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.qkv_bias = bool(c.get("attention_bias", self.model_type == "qwen2"))

    def layer_params(self):
        h, d = self.hidden, self.head_dim
        qkv = h * (self.heads + 2 * self.kv_heads) * d
        return qkv + self.heads * d * h + 3 * h * self.ffn + 2 * h

    def params(self, layers=None):
        layers = self.layers if layers is None else layers
        return layers * self.layer_params() + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden


class Model:
    """Weights as plain tensors and the forward pass in torch.nn.functional calls."""

    def __init__(self, cfg, max_batch, max_len, device, dtype, seed=0):
        self.cfg, self.device, self.dtype = cfg, device, dtype
        g = torch.Generator(device=device).manual_seed(seed)
        h, d = cfg.hidden, cfg.head_dim

        def w(*shape, std=0.02):
            return torch.empty(*shape, device=device, dtype=dtype).normal_(0.0, std, generator=g)

        def ones(n):
            return torch.ones(n, device=device, dtype=dtype)

        self.embed = w(cfg.vocab, h)
        self.lm_head = self.embed if cfg.tied else w(cfg.vocab, h)
        self.final_norm = ones(h)
        qkv_out = (cfg.heads + 2 * cfg.kv_heads) * d
        self.layers = []
        for _ in range(cfg.layers):
            self.layers.append({
                "attn_norm": ones(h),
                "qkv": w(qkv_out, h),
                "qkv_bias": w(qkv_out) if cfg.qkv_bias else None,
                "o": w(h, cfg.heads * d),
                "mlp_norm": ones(h),
                "gate_up": w(2 * cfg.ffn, h),
                "down": w(h, cfg.ffn),
            })
        # KV cache [layer][k|v]: batch x kv heads x positions x head dim.
        self.cache = [(torch.zeros(max_batch, cfg.kv_heads, max_len, d, device=device, dtype=dtype),
                       torch.zeros(max_batch, cfg.kv_heads, max_len, d, device=device, dtype=dtype))
                      for _ in range(cfg.layers)]
        inv = 1.0 / (cfg.theta ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
        ang = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv)
        ang = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)
        self.gqa = cfg.heads != cfg.kv_heads
        try:
            q = torch.zeros(1, 2, 1, 8, device=device, dtype=dtype)
            kv = torch.zeros(1, 1, 1, 8, device=device, dtype=dtype)
            F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
            self.enable_gqa = True
        except (TypeError, RuntimeError):
            self.enable_gqa = False

    def norm(self, x, w):
        if hasattr(F, "rms_norm"):
            return F.rms_norm(x, (x.shape[-1],), w, self.cfg.eps)
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.cfg.eps)).to(x.dtype) * w

    def rope(self, x, start):
        # x: batch x seq x heads x head dim; rotate-half form, as Hugging Face's Llama.
        s = x.shape[1]
        cos = self.cos[start:start + s].unsqueeze(1)
        sin = self.sin[start:start + s].unsqueeze(1)
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def attend(self, q, k, v, causal):
        if self.gqa and not self.enable_gqa:
            rep = self.cfg.heads // self.cfg.kv_heads
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        if self.gqa:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    @torch.inference_mode()
    def forward(self, tokens, start):
        """tokens: batch x seq at positions start..start+seq; returns the next token per sequence.
        Prefill when start == 0 (causal over the prompt); a decode step when seq == 1."""
        cfg = self.cfg
        b, s = tokens.shape
        d = cfg.head_dim
        x = F.embedding(tokens, self.embed)
        for i, L in enumerate(self.layers):
            hdn = self.norm(x, L["attn_norm"])
            qkv = F.linear(hdn, L["qkv"], L["qkv_bias"])
            q, k, v = qkv.split([cfg.heads * d, cfg.kv_heads * d, cfg.kv_heads * d], dim=-1)
            q = self.rope(q.view(b, s, cfg.heads, d), start)
            k = self.rope(k.view(b, s, cfg.kv_heads, d), start)
            kc, vc = self.cache[i]
            kc[:b, :, start:start + s] = k.transpose(1, 2)
            vc[:b, :, start:start + s] = v.view(b, s, cfg.kv_heads, d).transpose(1, 2)
            end = start + s
            o = self.attend(q.transpose(1, 2), kc[:b, :, :end], vc[:b, :, :end], causal=s > 1)
            x = x + F.linear(o.transpose(1, 2).reshape(b, s, cfg.heads * d), L["o"])
            hdn = self.norm(x, L["mlp_norm"])
            gate, up = F.linear(hdn, L["gate_up"]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, L["down"])
        x = self.norm(x[:, -1:], self.final_norm)
        return F.linear(x, self.lm_head).argmax(-1)


# ---------------------------------------------------------------------------------------------
# Timing


def stats(samples):
    s = sorted(samples)

    def pct(p):
        pos = p * (len(s) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return {"samples": len(s), "median_s": pct(0.5), "p10_s": pct(0.1), "p90_s": pct(0.9),
            "mean_s": sum(s) / len(s), "min_s": s[0], "samples_s": samples}


def timed(fn, device, warmup, min_n, max_n, budget_s):
    """Runs fn warmup times, then times it (CUDA events on a GPU) until max_n samples, or at
    least min_n and budget_s spent."""
    for _ in range(warmup):
        fn()
    sync(device)
    out, t0 = [], time.perf_counter()
    while len(out) < max_n:
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b) * 1e-3)
        else:
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        if len(out) >= min_n and time.perf_counter() - t0 > budget_s:
            break
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# Environment, predictions, memory


def environment(device):
    env = {"device": "cpu", "sm": None, "driver": None, "torch": torch.__version__,
           "cuda": torch.version.cuda, "host": socket.gethostname(),
           "git_revision": os.environ.get("GPUCOST_GIT_REVISION", "unknown")}
    if device.type != "cuda":
        return env
    p = torch.cuda.get_device_properties(device)
    env.update(device=p.name, sm=f"sm_{p.major}{p.minor}", memory_bytes=p.total_memory)
    try:
        import pynvml
        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        env["driver"] = v.decode() if isinstance(v, bytes) else v
    except Exception:
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except Exception:
            env["driver"] = "unknown"
    return env


def hw_profile(name):
    n = name.lower()
    if "h200" in n:
        return "h200-sxm"
    if "h100" in n:
        return "h100-pcie" if "pcie" in n else "h100-sxm"
    if "a100" in n:
        return "a100-sxm-40gb" if "40gb" in n else "a100-sxm-80gb"
    if "l40s" in n:
        return "l40s"
    if "4090" in n:
        return "rtx-4090"
    return None


def predict(gpucost, config_path, hw, b, p, g, roofline):
    cmd = [gpucost, "predict", "--model", config_path, "--hw", hw, "--batch", str(b),
           "--prompt", str(p), "--gen", str(g), "--dtype", "bf16", "--format", "json"]
    if roofline:
        cmd.append("--roofline")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return None, cmd, r.stderr.strip()[-500:]
        return json.loads(r.stdout), cmd, None
    except Exception as e:
        return None, cmd, f"{type(e).__name__}: {e}"


def activation_bytes(cfg, tokens):
    """A generous bound on the prefill's live activations (bf16) for `tokens` tokens."""
    d = cfg.head_dim
    per_token = 4 * cfg.hidden + 2 * (cfg.heads + 2 * cfg.kv_heads) * d + 3 * 2 * cfg.ffn
    return 2 * tokens * per_token


def layers_that_fit(cfg, max_b, max_len, max_tokens, free_bytes):
    kv_layer = 2 * max_b * max_len * cfg.kv_heads * cfg.head_dim * 2
    fixed = 2 * (cfg.params(0)) + activation_bytes(cfg, max_tokens) + (2 << 30)
    per_layer = 2 * cfg.layer_params() + kv_layer
    return max(1, min(cfg.layers_config, int((free_bytes - fixed) // per_layer)))


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", required=True, help="a Hugging Face config.json (repeat)")
    ap.add_argument("--out", required=True, help="folder for e2e-*.jsonl")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--prompt", default="128,1024,4096")
    ap.add_argument("--gen", type=int, default=16, help="generated tokens the predictions assume")
    ap.add_argument("--deadline-s", type=float, default=1e9,
                    help="start no measurement that would end later than this many seconds from start")
    ap.add_argument("--gpucost", default=".device/bin/gpucost", help="the gpucost binary (for predict)")
    ap.add_argument("--hw", default="auto", help="gpucost hardware profile for predict (auto: from the device)")
    ap.add_argument("--layers", type=int, help="run this many layers (default: all that fit)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--prefill-budget-s", type=float, default=1.0)
    ap.add_argument("--decode-budget-s", type=float, default=0.4)
    args = ap.parse_args()
    t_start = time.perf_counter()
    device = torch.device(args.device)
    dtype = torch.bfloat16
    batches = [int(x) for x in args.batch.split(",")]
    prompts = [int(x) for x in args.prompt.split(",")]
    settings = [(b, p) for b in batches for p in prompts]
    max_b, max_p = max(batches), max(prompts)
    ctx_of = {p: p + args.gen // 2 for p in prompts}
    max_len = max_p + args.gen + 1
    env = environment(device)
    hw = hw_profile(env["device"]) if args.hw == "auto" else args.hw
    os.makedirs(args.out, exist_ok=True)
    print(f"e2e on {env['device']} (driver {env['driver']}, torch {env['torch']}, CUDA {env['cuda']}); "
          f"predictions for {hw}", flush=True)

    def left():
        return args.deadline_s - (time.perf_counter() - t_start)

    for path in args.config:
        cfg = Config(path)
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 8 << 30
        fit = layers_that_fit(cfg, max_b, max_len, max_b * max_p, 0.92 * free)
        layers = args.layers or fit
        cfg = Config(path, layers=min(layers, cfg.layers_config))
        reduced = cfg.layers < cfg.layers_config
        config_for_predict = path
        if reduced:
            print(f"{cfg.name}: {cfg.layers} of {cfg.layers_config} layers fit in memory", flush=True)
            raw = dict(cfg.raw, num_hidden_layers=cfg.layers)
            config_for_predict = os.path.join(args.out, f"{cfg.name}-{cfg.layers}-layers.json")
            with open(config_for_predict, "w") as f:
                json.dump(raw, f, indent=2)
        base = {"schema": SCHEMA, "config": path, "model": cfg.name, "model_type": cfg.model_type,
                "layers": cfg.layers, "layers_config": cfg.layers_config, "layers_reduced": reduced,
                "params": cfg.params(), "dtype": "bf16", "tied_embeddings": cfg.tied,
                "gen": args.gen, **env}
        # Predictions first: they need no GPU, and stay even if the measurements are cut short.
        if hw and os.path.exists(args.gpucost):
            with open(os.path.join(args.out, f"e2e-predict-{cfg.name}.jsonl"), "a") as f:
                for b, p in settings:
                    for roofline in (False, True):
                        doc, cmd, err = predict(args.gpucost, config_for_predict, hw, b, p, args.gen, roofline)
                        line = {"schema": SCHEMA, "config": path, "model": cfg.name,
                                "layers": cfg.layers, "batch": b, "prompt": p, "gen": args.gen,
                                "hw": hw, "roofline": roofline, "command": " ".join(cmd),
                                "predict": doc, "error": err}
                        f.write(json.dumps(line) + "\n")
                        f.flush()
                        if err:
                            print(f"predict failed: {' '.join(cmd)}: {err}", flush=True)
        else:
            print(f"no predictions: hw profile {hw!r}, gpucost at {args.gpucost!r} "
                  f"{'found' if os.path.exists(args.gpucost) else 'missing'}", flush=True)
        if left() < 10:
            print(f"{cfg.name}: skipped, {left():.0f} s left", flush=True)
            continue
        t0 = time.perf_counter()
        model = Model(cfg, max_b, max_len, device, dtype)
        sync(device)
        print(f"{cfg.name}: {cfg.layers} layers, {cfg.params() / 1e9:.2f} B params, built in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        out = open(os.path.join(args.out, f"e2e-{cfg.name}.jsonl"), "a")
        tok_per_s = None  # prefill rate seen so far, to skip what would overrun the deadline

        def emit(**kw):
            rec = dict(base, unix_time_s=time.time(), **kw)
            out.write(json.dumps(rec) + "\n")
            out.flush()
            os.fsync(out.fileno())
            print(f"  {kw['phase']:7s} {kw['mode']:10s} b{kw['batch']:<3d} p{kw['prompt']:<5d} "
                  f"ctx{kw['context']:<5d} median {kw['median_s'] * 1e3:9.3f} ms "
                  f"(p10 {kw['p10_s'] * 1e3:.3f}, p90 {kw['p90_s'] * 1e3:.3f}, n {kw['samples']})",
                  flush=True)

        try:
            for b, p in settings:
                est = 4 * b * p / tok_per_s + 2 if tok_per_s else 5
                if left() < est:
                    print(f"  b{b} p{p}: skipped, {left():.0f} s left, needs ~{est:.0f} s", flush=True)
                    continue
                g = torch.Generator(device=device).manual_seed(b * 100003 + p)
                prompt = torch.randint(0, cfg.vocab, (b, p), device=device, generator=g)
                try:
                    s = timed(lambda: model.forward(prompt, 0), device, warmup=1, min_n=3, max_n=10,
                              budget_s=args.prefill_budget_s)
                    st = stats(s)
                    tok_per_s = b * p / st["median_s"]
                    emit(phase="prefill", mode="eager", batch=b, prompt=p, context=p, tokens=b * p, **st)
                    ctx = ctx_of[p]
                    tok = torch.randint(0, cfg.vocab, (b, 1), device=device, generator=g)
                    s = timed(lambda: model.forward(tok, ctx - 1), device, warmup=3, min_n=10, max_n=50,
                              budget_s=args.decode_budget_s)
                    emit(phase="decode", mode="eager", batch=b, prompt=p, context=ctx, tokens=b, **stats(s))
                    if device.type == "cuda":
                        static = tok.clone()
                        side = torch.cuda.Stream()
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):
                            for _ in range(3):
                                model.forward(static, ctx - 1)
                        torch.cuda.current_stream().wait_stream(side)
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph):
                            model.forward(static, ctx - 1)
                        s = timed(graph.replay, device, warmup=3, min_n=10, max_n=50,
                                  budget_s=args.decode_budget_s)
                        emit(phase="decode", mode="cuda-graph", batch=b, prompt=p, context=ctx, tokens=b,
                             **stats(s))
                        del graph
                except torch.OutOfMemoryError as e:
                    print(f"  b{b} p{p}: out of memory: {str(e).splitlines()[0]}", flush=True)
                finally:
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
        finally:
            out.close()
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(f"e2e done in {time.perf_counter() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
