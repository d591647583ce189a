//! Op specs: the units of work a transformer decomposes into, each with its exact FLOPs and the
//! minimum bytes it must move (every input read once, every output written once).
//!
//! FLOP conventions (stated because published tools disagree):
//! - A multiply-add counts as 2 FLOPs.
//! - Attention counts the two matmuls (QKᵀ and PV) over the score entries a query may actually
//!   see. With a causal mask only the unmasked entries count — query at position p sees p+1 keys,
//!   so a square causal block of S queries counts S(S+1)/2 entries, "half" the square plus the
//!   diagonal. A sliding window of W caps each query at W keys. Softmax arithmetic is not counted,
//!   following the FlashAttention papers. Some tools (e.g. the 6N+12·L·H·Q·T training formula)
//!   count the full square for causal models; gpucost does not.
//! - Memory-bound ops carry a small documented per-element FLOP count; their cost is their bytes.

use crate::model::dtype::DType;
use serde::{Deserialize, Serialize};
use std::fmt;

pub mod scan;
pub use scan::Scan;

/// Upper limits on every size gpucost accepts, in one place. Each is generous for real models
/// (well above the largest published) and small enough that every product formed from the sizes
/// downstream (parameters, FLOPs, bytes, output tiles, tokens × widths) fits in a u64 and stays
/// finite in an f64. A size beyond its limit is refused with one line naming the file and field
/// (or the flag).
pub mod limits {
    /// `hidden_size` (`n_embd`).
    pub const HIDDEN: u64 = 1 << 20;
    /// Layers (`num_hidden_layers`, `n_layer`); also `max_window_layers`.
    pub const LAYERS: u64 = 1 << 16;
    /// Query heads and key/value heads.
    pub const HEADS: u64 = 1 << 16;
    /// `head_dim`.
    pub const HEAD_DIM: u64 = 1 << 16;
    /// Query width: heads × head_dim.
    pub const ATTENTION_WIDTH: u64 = 1 << 24;
    /// MLP widths: `intermediate_size`, the expert width, and the shared experts' total width.
    pub const INTERMEDIATE: u64 = 1 << 20;
    /// `vocab_size`.
    pub const VOCAB: u64 = 1 << 24;
    /// Routed experts per MoE layer.
    pub const EXPERTS: u64 = 1 << 16;
    /// Experts each token is routed to (top-k).
    pub const TOP_K: u64 = 1 << 8;
    /// Shared experts per MoE layer.
    pub const SHARED_EXPERTS: u64 = 1 << 8;
    /// `max_position_embeddings` and the sliding window.
    pub const POSITIONS: u64 = 1 << 32;
    /// Norms per layer (2, or 4 for sandwich norms).
    pub const NORMS_PER_LAYER: u64 = 8;
    /// Taps of a linear-attention layer's short convolution.
    pub const CONV_KERNEL: u64 = 64;
    /// Total parameters, checked with overflow-free arithmetic.
    pub const PARAMS: u64 = 1 << 50;

    /// Tokens one pass runs: `--batch` × `--seq` for training, `--batch` × `--prompt` for the
    /// prefill.
    pub const TOKENS: u64 = 1 << 32;
    /// Context per sequence: `--prompt` + `--gen`.
    pub const CONTEXT: u64 = 1 << 32;
    /// Generated tokens per sequence (`--gen`).
    pub const GEN: u64 = 1 << 24;

    /// Each op dimension: matmul batch, m, n, k; attention batch, query and key lengths, window.
    pub const OP_DIM: u64 = 1 << 32;
    /// Elements in each matmul operand (batch·m·k, batch·k·n, batch·m·n) and in a memory op's
    /// tensor (rows·cols).
    pub const OP_ELEMENTS: u64 = 1 << 62;
    /// Attention queries: batch × query length.
    pub const ATTENTION_QUERIES: u64 = 1 << 32;
    /// Bytes a collective moves.
    pub const COLLECTIVE_BYTES: u64 = 1 << 60;
    /// GPUs in a collective.
    pub const RANKS: u64 = 1 << 20;

    /// Hardware profile: compute units.
    pub const COMPUTE_UNITS: u32 = 1 << 20;
    /// Hardware profile: every other figure (rates, bandwidths, bytes, clocks, watts, dollars)
    /// lies in [FIGURE_MIN, FIGURE_MAX].
    pub const FIGURE_MIN: f64 = 1e-3;
    pub const FIGURE_MAX: f64 = 1e21;
    /// Hardware profile: efficiencies lie in [EFFICIENCY_MIN, 1].
    pub const EFFICIENCY_MIN: f64 = 1e-6;
    /// Hardware profile: launch and collective latencies lie in [0, LATENCY_MAX] seconds.
    pub const LATENCY_MAX: f64 = 1.0;
    /// Hardware profile: each side of a matmul tile.
    pub const TILE_SIDE: u64 = 1 << 16;
    /// Hardware profile: tile shapes to choose from.
    pub const TILES: usize = 64;
    /// `--price-per-hour` and a profile's price, US dollars.
    pub const PRICE_PER_HOUR: f64 = 1e6;

    /// A limit as written in messages: "2^20" for large powers of two, the number otherwise.
    pub fn show(limit: u64) -> String {
        if limit.is_power_of_two() && limit >= 1 << 16 {
            format!("2^{}", limit.trailing_zeros())
        } else {
            limit.to_string()
        }
    }

    /// `value` when it is at most `limit`; else "X exceeds the limit of 2^N".
    pub fn at_most(value: u64, limit: u64) -> Result<u64, String> {
        if value <= limit {
            Ok(value)
        } else {
            Err(format!("{value} exceeds the limit of {}", show(limit)))
        }
    }

    /// The product of `factors`, or None when it overflows a u64.
    pub fn product(factors: &[u64]) -> Option<u64> {
        factors.iter().try_fold(1u64, |p, &f| p.checked_mul(f))
    }

    /// The product of `factors` when it is at most `limit`; else "X exceeds …" (a product
    /// beyond u64 is shown as "more than 2^64").
    pub fn product_at_most(factors: &[u64], limit: u64) -> Result<u64, String> {
        match product(factors) {
            Some(p) => at_most(p, limit),
            None => Err(format!(
                "more than 2^64 exceeds the limit of {}",
                show(limit)
            )),
        }
    }
}

/// Forward or backward pass of an op whose backward is a different kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    Forward,
    Backward,
}

/// An op spec. Shapes only: no hardware, no timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Matmul(Matmul),
    Attention(Attention),
    Memory(MemoryOp),
    Collective(Collective),
    Scan(Scan),
}

/// Ops are memoized by shape in the hot loop of a search: hash the fields packed into a few
/// words (small enums and flags share one) rather than one write per field.
impl std::hash::Hash for Op {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let small = |d: DType| d as u64;
        match self {
            Op::Matmul(m) => {
                h.write_u64(small(m.input) | small(m.output) << 8);
                h.write_u64(m.batch);
                h.write_u64(m.m);
                h.write_u64(m.n);
                h.write_u64(m.k);
            }
            Op::Attention(a) => {
                h.write_u64(
                    1 << 60
                        | small(a.dtype)
                        | small(a.kv_dtype) << 8
                        | u64::from(a.causal) << 16
                        | u64::from(a.fused) << 17
                        | (a.pass as u64) << 18
                        | u64::from(a.window.is_some()) << 19
                        | u64::from(a.shared_kv) << 20,
                );
                h.write_u64(a.batch);
                h.write_u64(a.q_heads ^ a.kv_heads.rotate_left(32));
                h.write_u64(a.q_len);
                h.write_u64(a.kv_len);
                h.write_u64(a.qk_head_dim ^ a.v_head_dim.rotate_left(32));
                h.write_u64(a.window.unwrap_or(0));
            }
            Op::Memory(m) => {
                h.write_u64(2 << 60 | small(m.dtype) | (m.pass as u64) << 8);
                m.kind.hash(h);
                h.write_u64(m.rows);
                h.write_u64(m.cols);
            }
            Op::Collective(c) => {
                h.write_u64(3 << 60 | small(c.dtype));
                c.kind.hash(h);
                h.write_u64(c.payload_bytes);
                h.write_u64(c.ranks);
                h.write_u64(c.stride);
            }
            Op::Scan(s) => {
                h.write_u64(4 << 60 | small(s.dtype) | (s.pass as u64) << 8);
                h.write_u64(s.batch ^ s.heads.rotate_left(32));
                h.write_u64(s.seq);
                h.write_u64(s.key_dim ^ s.value_dim.rotate_left(32));
                h.write_u64(s.chunk);
            }
        }
    }
}

/// Coarse op class, used to pick efficiencies and calibration tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    Matmul,
    Attention,
    Memory,
    Collective,
    /// A chunked linear-attention scan (`Scan`).
    Scan,
}

impl Op {
    pub fn flops(&self) -> f64 {
        match self {
            Op::Matmul(m) => m.flops(),
            Op::Attention(a) => a.flops(),
            Op::Memory(m) => m.flops(),
            Op::Collective(_) => 0.0,
            Op::Scan(s) => s.flops(),
        }
    }

    /// Minimum bytes moved to and from device memory.
    pub fn min_bytes(&self) -> f64 {
        match self {
            Op::Matmul(m) => m.min_bytes(),
            Op::Attention(a) => a.min_bytes(),
            Op::Memory(m) => m.min_bytes(),
            Op::Collective(c) => c.payload_bytes as f64,
            Op::Scan(s) => s.min_bytes(),
        }
    }

    pub fn class(&self) -> OpClass {
        match self {
            Op::Matmul(_) => OpClass::Matmul,
            Op::Attention(_) => OpClass::Attention,
            Op::Memory(_) => OpClass::Memory,
            Op::Collective(_) => OpClass::Collective,
            Op::Scan(_) => OpClass::Scan,
        }
    }

    /// Checks every size against `limits`, so that pricing the op cannot overflow; the error
    /// names the field ("m", "q_len", …) and says why.
    pub fn check(&self) -> Result<(), String> {
        use limits::{OP_DIM, OP_ELEMENTS, at_most, product_at_most};
        let dim = |name: &str, v: u64| -> Result<(), String> {
            if v == 0 {
                return Err(format!("{name} must be positive, got 0"));
            }
            at_most(v, OP_DIM)
                .map(drop)
                .map_err(|e| format!("{name} {e}"))
        };
        match self {
            Op::Matmul(m) => {
                for (name, v) in [("batch", m.batch), ("m", m.m), ("n", m.n), ("k", m.k)] {
                    dim(name, v)?;
                }
                for (name, f) in [
                    ("batch x m x k (A)", [m.batch, m.m, m.k]),
                    ("batch x k x n (B)", [m.batch, m.k, m.n]),
                    ("batch x m x n (C)", [m.batch, m.m, m.n]),
                ] {
                    product_at_most(&f, OP_ELEMENTS)
                        .map_err(|e| format!("{name}: {e} elements"))?;
                }
            }
            Op::Attention(a) => {
                dim("batch", a.batch)?;
                dim("q_len", a.q_len)?;
                dim("kv_len", a.kv_len)?;
                for (name, v, limit) in [
                    ("q_heads", a.q_heads, limits::HEADS),
                    ("kv_heads", a.kv_heads, limits::HEADS),
                    ("qk_head_dim", a.qk_head_dim, limits::HEAD_DIM),
                    ("v_head_dim", a.v_head_dim, limits::HEAD_DIM),
                ] {
                    if v == 0 {
                        return Err(format!("{name} must be positive, got 0"));
                    }
                    at_most(v, limit).map_err(|e| format!("{name} {e}"))?;
                }
                if let Some(w) = a.window {
                    dim("window", w)?;
                }
                if a.shared_kv && a.v_head_dim > a.qk_head_dim {
                    return Err(format!(
                        "v_head_dim {} exceeds qk_head_dim {} with keys and values shared",
                        a.v_head_dim, a.qk_head_dim
                    ));
                }
                if a.q_len > a.kv_len {
                    return Err(format!("q_len {} exceeds kv_len {}", a.q_len, a.kv_len));
                }
                if !a.q_heads.is_multiple_of(a.kv_heads) {
                    return Err(format!(
                        "kv_heads {} does not divide q_heads {}",
                        a.kv_heads, a.q_heads
                    ));
                }
                product_at_most(&[a.batch, a.q_len], limits::ATTENTION_QUERIES)
                    .map_err(|e| format!("batch x q_len: {e} queries"))?;
            }
            Op::Memory(m) => {
                if m.rows == 0 || m.cols == 0 {
                    return Err(format!(
                        "rows and cols must be positive, got {}x{}",
                        m.rows, m.cols
                    ));
                }
                product_at_most(&[m.rows, m.cols], OP_ELEMENTS)
                    .map_err(|e| format!("rows x cols: {e} elements"))?;
            }
            Op::Collective(c) => {
                at_most(c.payload_bytes, limits::COLLECTIVE_BYTES)
                    .map_err(|e| format!("payload_bytes {e}"))?;
                if c.ranks == 0 {
                    return Err("ranks must be positive, got 0".into());
                }
                at_most(c.ranks, limits::RANKS).map_err(|e| format!("ranks {e}"))?;
                if c.stride == 0 {
                    return Err("stride must be positive, got 0".into());
                }
                at_most(c.stride, limits::RANKS).map_err(|e| format!("stride {e}"))?;
            }
            Op::Scan(s) => s.check()?,
        }
        Ok(())
    }

    /// The dtype whose peak rate applies (the input dtype for matmuls and attention).
    pub fn dtype(&self) -> DType {
        match self {
            Op::Matmul(m) => m.input,
            Op::Attention(a) => a.dtype,
            Op::Memory(m) => m.dtype,
            Op::Collective(c) => c.dtype,
            Op::Scan(s) => s.dtype,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Matmul(m) => {
                if m.batch > 1 {
                    write!(
                        f,
                        "matmul {}x[{}x{}x{}] {}",
                        m.batch, m.m, m.n, m.k, m.input
                    )
                } else {
                    write!(f, "matmul {}x{}x{} {}", m.m, m.n, m.k, m.input)
                }
            }
            Op::Attention(a) => write!(
                f,
                "attention{} b{} h{}/{} q{} kv{} d{}{}{} {}",
                if a.pass == Pass::Backward { "-bwd" } else { "" },
                a.batch,
                a.q_heads,
                a.kv_heads,
                a.q_len,
                a.kv_len,
                a.qk_head_dim,
                if a.causal { " causal" } else { "" },
                a.window.map(|w| format!(" window{w}")).unwrap_or_default(),
                a.dtype
            ),
            Op::Memory(m) => write!(
                f,
                "{}{} {}x{} {}",
                m.kind.name(),
                if m.pass == Pass::Backward { "-bwd" } else { "" },
                m.rows,
                m.cols,
                m.dtype
            ),
            Op::Collective(c) => write!(
                f,
                "{} {} B over {} ranks{}",
                c.kind.name(),
                c.payload_bytes,
                c.ranks,
                if c.stride > 1 {
                    format!(" {} apart", c.stride)
                } else {
                    String::new()
                }
            ),
            Op::Scan(s) => write!(
                f,
                "scan-gated-delta{} b{} h{} s{} dk{} dv{} c{} {}",
                if s.pass == Pass::Backward { "-bwd" } else { "" },
                s.batch,
                s.heads,
                s.seq,
                s.key_dim,
                s.value_dim,
                s.chunk,
                s.dtype
            ),
        }
    }
}

/// `batch` independent products C[m×n] = A[m×k] · B[k×n]; each batch entry has its own A and B
/// (a transformer projection flattens batch×sequence into `m` and uses batch = 1; mixture-of-
/// experts layers use one batch entry per expert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Matmul {
    pub batch: u64,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// dtype of A and B.
    pub input: DType,
    /// dtype C is written in.
    pub output: DType,
}

impl Matmul {
    /// A matmul whose output is written in its input dtype (the usual case in training).
    pub fn new(batch: u64, m: u64, n: u64, k: u64, dtype: DType) -> Self {
        Matmul {
            batch,
            m,
            n,
            k,
            input: dtype,
            output: dtype,
        }
    }

    /// A matmul whose output is what tensor-core kernels write for this input: bf16 for fp8,
    /// int32 for int8 and int4 (counted as a 4-byte fp32 output), the input dtype otherwise.
    pub fn kernel(batch: u64, m: u64, n: u64, k: u64, dtype: DType) -> Self {
        let output = match dtype {
            DType::Fp8E4m3 | DType::Fp8E5m2 => DType::Bf16,
            DType::Int8 | DType::Int4 => DType::Fp32,
            d => d,
        };
        Matmul {
            output,
            ..Matmul::new(batch, m, n, k, dtype)
        }
    }

    pub fn accumulator(&self) -> crate::model::dtype::Accumulator {
        self.input.accumulator()
    }

    pub fn flops(&self) -> f64 {
        2.0 * (self.batch as f64) * (self.m as f64) * (self.n as f64) * (self.k as f64)
    }

    pub fn min_bytes(&self) -> f64 {
        let b = self.batch as f64;
        let (m, n, k) = (self.m as f64, self.n as f64, self.k as f64);
        b * ((m * k + k * n) * self.input.bytes() + m * n * self.output.bytes())
    }
}

/// Scaled-dot-product attention over `batch` sequences. Queries are the last `q_len` positions of
/// a `kv_len`-long context (prefill: q_len = kv_len; decode: q_len = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attention {
    pub batch: u64,
    pub q_heads: u64,
    pub kv_heads: u64,
    pub q_len: u64,
    pub kv_len: u64,
    pub qk_head_dim: u64,
    pub v_head_dim: u64,
    pub causal: bool,
    /// Sliding window: a query sees at most this many keys, ending at its own position.
    pub window: Option<u64>,
    /// dtype of Q, O and the arithmetic.
    pub dtype: DType,
    /// dtype K and V are stored in (a KV cache may be narrower than the compute dtype).
    pub kv_dtype: DType,
    /// Fused (flash-style) kernels keep scores on chip; unfused ones write the score matrix and
    /// the softmax output to memory and read them back.
    pub fused: bool,
    pub pass: Pass,
    /// Keys and values are one cached tensor, read once: the values are the first `v_head_dim`
    /// columns of the keys (MLA's latent, attended to in absorbed form).
    #[serde(default)]
    pub shared_kv: bool,
}

impl Attention {
    /// Score entries (query, key) that are computed, per batch entry and query head.
    pub fn visible_pairs(&self) -> f64 {
        let (q, kv) = (u128::from(self.q_len), u128::from(self.kv_len));
        if !self.causal {
            return (q * kv) as f64;
        }
        // Query i sits at absolute position p = kv - q + i and sees min(p + 1, window) keys.
        let first = kv.saturating_sub(q);
        let last = kv.saturating_sub(1);
        if q == 0 || kv == 0 {
            return 0.0;
        }
        let w = self.window.map(u128::from).unwrap_or(u128::MAX);
        // Positions p in [first, last] with p + 1 <= w contribute p + 1; the rest contribute w.
        let ramp_end = last.min(w.saturating_sub(1));
        // Exact in u128 for any size within `limits`; saturating beyond (no overflow panic).
        let tri = |n: u128| n.saturating_mul(n + 1) / 2;
        let mut total: u128 = 0;
        if first <= ramp_end {
            total = total.saturating_add(tri(ramp_end + 1) - tri(first));
        }
        let flat_start = first.max(ramp_end.saturating_add(1));
        if flat_start <= last && w != u128::MAX {
            total = total.saturating_add((last - flat_start + 1).saturating_mul(w));
        }
        total as f64
    }

    /// Keys (per kv head) that some query can see: what a fused kernel must read at least once.
    pub fn keys_touched(&self) -> u64 {
        match (self.causal, self.window) {
            (true, Some(w)) => {
                let first_query_pos = self.kv_len.saturating_sub(self.q_len);
                self.kv_len - first_query_pos.saturating_add(1).saturating_sub(w)
            }
            _ => self.kv_len,
        }
    }

    /// Sequences × query heads, in f64 (exact within `limits`, never an overflow).
    fn rows(&self) -> f64 {
        self.batch as f64 * self.q_heads as f64
    }

    fn forward_flops(&self) -> f64 {
        let per_pair = 2.0 * (self.qk_head_dim as f64 + self.v_head_dim as f64);
        self.rows() * self.visible_pairs() * per_pair
    }

    /// Score entries per batch entry and query head a kernel actually computes: the visible
    /// ones for a fused kernel, which skips masked blocks; the whole q × kv square for an unfused
    /// one, whose batched matmuls and softmax run over the masked entries too.
    pub fn executed_pairs(&self) -> f64 {
        if self.fused {
            self.visible_pairs()
        } else {
            self.q_len as f64 * self.kv_len as f64
        }
    }

    /// FLOPs the kernels execute (what time is priced from; `flops` is the counting convention):
    /// over `executed_pairs`, and an unfused backward reads the stored probabilities instead of
    /// recomputing them (dV, dP, dQ, dK: twice the forward).
    pub fn executed_flops(&self) -> f64 {
        if self.fused {
            return self.flops();
        }
        let (qk, v) = (self.qk_head_dim as f64, self.v_head_dim as f64);
        let per_pair = match self.pass {
            Pass::Forward => 2.0 * (qk + v),
            Pass::Backward => 4.0 * (qk + v),
        };
        self.rows() * self.executed_pairs() * per_pair
    }

    /// Forward: QKᵀ and PV. Backward (FlashAttention-2 style): recompute QKᵀ, then dV = PᵀdO,
    /// dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q — 2.5× the forward when the head dims are equal.
    pub fn flops(&self) -> f64 {
        match self.pass {
            Pass::Forward => self.forward_flops(),
            Pass::Backward => {
                let per_pair = 2.0 * (3.0 * self.qk_head_dim as f64 + 2.0 * self.v_head_dim as f64);
                self.rows() * self.visible_pairs() * per_pair
            }
        }
    }

    pub fn min_bytes(&self) -> f64 {
        let (e, kv_e) = (self.dtype.bytes(), self.kv_dtype.bytes());
        let b = self.batch as f64;
        // Products in f64: exact below 2^53 (any real model), never an overflow.
        let prod = |x: u64, y: u64, z: u64| x as f64 * y as f64 * z as f64;
        let q = b * prod(self.q_heads, self.q_len, self.qk_head_dim);
        let o = b * prod(self.q_heads, self.q_len, self.v_head_dim);
        let keys = self.keys_touched();
        let k = b * prod(self.kv_heads, keys, self.qk_head_dim);
        let v = if self.shared_kv {
            0.0
        } else {
            b * prod(self.kv_heads, keys, self.v_head_dim)
        };
        // Unfused, passes over the score square: forward, written by QKᵀ, read and written by
        // the softmax, read by PV (4); backward, read by dV = PᵀdO, dP written by dO·Vᵀ, P and dP
        // read and dS written by the softmax backward, dS read by dQ and by dK (7).
        let passes = match self.pass {
            Pass::Forward => 4.0,
            Pass::Backward => 7.0,
        };
        let scores = if self.fused {
            0.0
        } else {
            passes * b * self.q_heads as f64 * self.executed_pairs() * e
        };
        match self.pass {
            Pass::Forward => (q + o) * e + (k + v) * kv_e + scores,
            Pass::Backward => {
                // Read Q, K, V, O, dO and the fp32 log-sum-exp; write dQ, dK, dV.
                let lse = b * (self.q_heads as f64 * self.q_len as f64) * 4.0;
                (2.0 * q + 2.0 * o) * e + 2.0 * (k + v) * kv_e + lse + scores
            }
        }
    }
}

/// Activation functions, with their per-element FLOP counts (documented approximations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    /// SiLU / swish: x·σ(x).
    Silu,
    /// GELU, erf or tanh approximation.
    Gelu,
    /// Squared ReLU: relu(x)² (So et al. 2021, "Primer: Searching for Efficient Transformers
    /// for Language Modeling"; Nemotron-H's MLP).
    Relu2,
}

impl Activation {
    pub fn flops_per_element(self) -> f64 {
        match self {
            Activation::Relu => 1.0,
            Activation::Silu => 4.0,
            Activation::Gelu => 8.0,
            Activation::Relu2 => 2.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::Relu2 => "relu2",
        }
    }
}

/// The memory-bound ops of a transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "activation", rename_all = "snake_case")]
pub enum MemoryKind {
    LayerNorm,
    RmsNorm,
    /// act(x), elementwise.
    Activation(Activation),
    /// act(gate) ⊙ up — SwiGLU (silu) or GeGLU (gelu). `cols` is the intermediate width.
    GatedActivation(Activation),
    ResidualAdd,
    /// Rotary position embedding applied to q and k; sin/cos computed in the kernel.
    Rotary,
    /// Row softmax (e.g. the MoE router).
    Softmax,
    /// Softmax cross-entropy over the vocabulary on logits upcast to fp32; `cols` is the
    /// vocabulary size.
    CrossEntropy,
    /// Gather `rows` rows of a `cols`-wide embedding table.
    EmbeddingLookup,
    /// One Adam step over `cols` parameters (rows = 1): fp32 master weights and moments, gradient
    /// and working weights in the op's dtype.
    AdamUpdate,
    /// Dropout in training: x ⊙ mask / (1 − p), the mask kept (one byte per element) for the
    /// backward pass.
    Dropout,
    /// A depthwise causal convolution of this many taps along the sequence, then silu (the
    /// short convolution of linear-attention and state-space layers): each channel's taps are
    /// its parameter vectors.
    CausalConv(u64),
    /// One step of a recurrent state (`rows` states of `cols` elements, kept in fp32): read,
    /// decayed, updated by a rank-one write and read out by the query — a decode step of a
    /// linear-attention layer.
    ScanState,
}

impl MemoryKind {
    pub fn name(self) -> &'static str {
        match self {
            MemoryKind::LayerNorm => "layernorm",
            MemoryKind::RmsNorm => "rmsnorm",
            MemoryKind::Activation(a) => a.name(),
            MemoryKind::GatedActivation(Activation::Relu) => "gated-relu",
            MemoryKind::GatedActivation(Activation::Silu) => "gated-silu",
            MemoryKind::GatedActivation(Activation::Gelu) => "gated-gelu",
            MemoryKind::GatedActivation(Activation::Relu2) => "gated-relu2",
            MemoryKind::ResidualAdd => "residual-add",
            MemoryKind::Dropout => "dropout",
            MemoryKind::Rotary => "rotary",
            MemoryKind::Softmax => "softmax",
            MemoryKind::CrossEntropy => "cross-entropy",
            MemoryKind::EmbeddingLookup => "embedding",
            MemoryKind::AdamUpdate => "adam-update",
            MemoryKind::CausalConv(_) => "causal-conv",
            MemoryKind::ScanState => "scan-state",
        }
    }
}

/// A memory-bound op over a `rows × cols` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemoryOp {
    pub kind: MemoryKind,
    pub pass: Pass,
    pub rows: u64,
    pub cols: u64,
    pub dtype: DType,
}

/// What a memory op moves, in units of the op's tensors.
struct Traffic {
    /// Full rows×cols tensors read.
    tensor_reads: f64,
    /// Full rows×cols tensors written.
    tensor_writes: f64,
    /// Per-column parameter vectors (norm weights and biases, and their gradients) moved.
    param_vectors: f64,
    /// Bytes per row outside the tensors (indices, labels, losses, statistics).
    bytes_per_row: f64,
    /// Bytes per element at a fixed width regardless of dtype (fp32 optimizer state).
    fixed_bytes_per_element: f64,
    flops_per_element: f64,
}

impl MemoryOp {
    pub fn new(kind: MemoryKind, pass: Pass, rows: u64, cols: u64, dtype: DType) -> Self {
        MemoryOp {
            kind,
            pass,
            rows,
            cols,
            dtype,
        }
    }

    fn traffic(&self) -> Traffic {
        let t = |reads, writes, params, row, flops| Traffic {
            tensor_reads: reads,
            tensor_writes: writes,
            param_vectors: params,
            bytes_per_row: row,
            fixed_bytes_per_element: 0.0,
            flops_per_element: flops,
        };
        let fwd = self.pass == Pass::Forward;
        match self.kind {
            // Backward of a norm reads x and dy, writes dx, and writes the weight gradients.
            MemoryKind::LayerNorm if fwd => t(1.0, 1.0, 2.0, 0.0, 8.0),
            MemoryKind::LayerNorm => t(2.0, 1.0, 4.0, 0.0, 16.0),
            MemoryKind::RmsNorm if fwd => t(1.0, 1.0, 1.0, 0.0, 4.0),
            MemoryKind::RmsNorm => t(2.0, 1.0, 2.0, 0.0, 8.0),
            MemoryKind::Activation(a) if fwd => t(1.0, 1.0, 0.0, 0.0, a.flops_per_element()),
            MemoryKind::Activation(a) => t(2.0, 1.0, 0.0, 0.0, 2.0 * a.flops_per_element()),
            MemoryKind::GatedActivation(a) if fwd => {
                t(2.0, 1.0, 0.0, 0.0, a.flops_per_element() + 1.0)
            }
            MemoryKind::GatedActivation(a) => {
                t(3.0, 2.0, 0.0, 0.0, 2.0 * (a.flops_per_element() + 1.0))
            }
            MemoryKind::ResidualAdd => t(2.0, 1.0, 0.0, 0.0, 1.0),
            MemoryKind::Rotary => t(1.0, 1.0, 0.0, 0.0, 3.0),
            MemoryKind::Softmax if fwd => t(1.0, 1.0, 0.0, 0.0, 5.0),
            MemoryKind::Softmax => t(2.0, 1.0, 0.0, 0.0, 4.0),
            // The loss is taken on logits upcast to fp32, as Megatron-LM (`output.float()` before
            // its vocab-parallel cross-entropy) and Hugging Face (`logits.float()`) do: forward
            // reads the logits once and writes the fp32 copy, then the row max (read 4 B), the
            // subtraction and the exponential in place (read and write 4 B each), the row sum
            // (read 4 B) and the division that keeps the softmax for the backward (read and
            // write 4 B): 36 fp32 bytes per logit, plus an int32 label and an fp32 loss per row.
            MemoryKind::CrossEntropy if fwd => Traffic {
                tensor_reads: 1.0,
                tensor_writes: 0.0,
                param_vectors: 0.0,
                bytes_per_row: 8.0,
                fixed_bytes_per_element: 36.0,
                flops_per_element: 5.0,
            },
            // Backward subtracts the one-hot from the kept softmax and scales it by the loss
            // gradient in place (read and write 4 B), then casts it back to the logits' dtype
            // (read 4 B, write the gradient).
            MemoryKind::CrossEntropy => Traffic {
                tensor_reads: 0.0,
                tensor_writes: 1.0,
                param_vectors: 0.0,
                bytes_per_row: 4.0,
                fixed_bytes_per_element: 12.0,
                flops_per_element: 3.0,
            },
            // Forward gathers rows through int32 indices.
            MemoryKind::EmbeddingLookup if fwd => t(1.0, 1.0, 0.0, 4.0, 0.0),
            // Backward reads dy and read-modify-writes the gathered table rows.
            MemoryKind::EmbeddingLookup => t(2.0, 1.0, 0.0, 4.0, 1.0),
            // Forward reads x, writes y and the mask; backward reads dy and the mask, writes dx.
            MemoryKind::Dropout => Traffic {
                tensor_reads: 1.0,
                tensor_writes: 1.0,
                param_vectors: 0.0,
                bytes_per_row: 0.0,
                fixed_bytes_per_element: 1.0,
                flops_per_element: 2.0,
            },
            // Forward reads x and the taps, writes y; backward reads dy and x, writes dx and the
            // taps' gradients.
            MemoryKind::CausalConv(k) if fwd => t(1.0, 1.0, k as f64, 0.0, 2.0 * k as f64 + 4.0),
            MemoryKind::CausalConv(k) => t(2.0, 1.0, 2.0 * k as f64, 0.0, 4.0 * k as f64 + 4.0),
            // The fp32 state read and written; decay, k·S, the rank-one update and q·S.
            MemoryKind::ScanState => Traffic {
                tensor_reads: 0.0,
                tensor_writes: 0.0,
                param_vectors: 0.0,
                bytes_per_row: 0.0,
                fixed_bytes_per_element: 2.0 * 4.0,
                flops_per_element: 7.0,
            },
            MemoryKind::AdamUpdate => {
                // Read grad; write the working copy (none when it is the fp32 master itself).
                let working_writes = if self.dtype == DType::Fp32 { 0.0 } else { 1.0 };
                Traffic {
                    tensor_reads: 1.0,
                    tensor_writes: working_writes,
                    param_vectors: 0.0,
                    bytes_per_row: 0.0,
                    // Master weights, first and second moments: read and write, fp32.
                    fixed_bytes_per_element: 3.0 * 4.0 * 2.0,
                    flops_per_element: 12.0,
                }
            }
        }
    }

    pub fn elements(&self) -> f64 {
        self.rows as f64 * self.cols as f64
    }

    pub fn flops(&self) -> f64 {
        self.elements() * self.traffic().flops_per_element
    }

    pub fn min_bytes(&self) -> f64 {
        let t = self.traffic();
        let e = self.dtype.bytes();
        self.elements() * ((t.tensor_reads + t.tensor_writes) * e + t.fixed_bytes_per_element)
            + t.param_vectors * self.cols as f64 * e
            + t.bytes_per_row * self.rows as f64
    }
}

/// Communication patterns between GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectiveKind {
    AllReduce,
    AllGather,
    ReduceScatter,
    AllToAll,
    SendRecv,
}

impl CollectiveKind {
    pub fn name(self) -> &'static str {
        match self {
            CollectiveKind::AllReduce => "all-reduce",
            CollectiveKind::AllGather => "all-gather",
            CollectiveKind::ReduceScatter => "reduce-scatter",
            CollectiveKind::AllToAll => "all-to-all",
            CollectiveKind::SendRecv => "send-recv",
        }
    }
}

/// Which link a collective crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// The GPU-to-GPU fabric inside a node (NVLink), or PCIe where a card has none.
    IntraNode,
    /// The network between nodes.
    InterNode,
}

/// A collective over `ranks` GPUs on a buffer of `payload_bytes` (the full, unsharded size).
/// `stride`: the distance in global ranks between neighbours of the group (1 for the innermost
/// group), which with the GPUs per node decides whether it crosses the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Collective {
    pub kind: CollectiveKind,
    pub payload_bytes: u64,
    pub ranks: u64,
    pub stride: u64,
    pub dtype: DType,
}

impl Collective {
    /// Whether the group stays inside a node of `gpus_per_node` GPUs, and how many of its ranks
    /// share a node: each drives its own network link (a rail-optimized cluster gives every GPU
    /// its own NIC), so a group crossing the network moves data over that many links at once.
    pub fn placement(&self, gpus_per_node: u64) -> (Link, u64) {
        if self.stride.saturating_mul(self.ranks) <= gpus_per_node {
            (Link::IntraNode, self.ranks)
        } else {
            (
                Link::InterNode,
                (gpus_per_node / self.stride.max(1)).clamp(1, self.ranks),
            )
        }
    }

    /// Bytes each rank sends with bandwidth-optimal (ring) algorithms: 2(n−1)/n of the buffer for
    /// all-reduce, (n−1)/n for all-gather, reduce-scatter and all-to-all, the buffer for send/recv.
    pub fn bytes_on_wire_per_rank(&self) -> f64 {
        if self.ranks <= 1 {
            return 0.0;
        }
        let n = self.ranks as f64;
        let s = self.payload_bytes as f64;
        match self.kind {
            CollectiveKind::AllReduce => 2.0 * (n - 1.0) / n * s,
            CollectiveKind::AllGather
            | CollectiveKind::ReduceScatter
            | CollectiveKind::AllToAll => (n - 1.0) / n * s,
            CollectiveKind::SendRecv => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attn(q: u64, kv: u64, causal: bool, window: Option<u64>) -> Attention {
        Attention {
            batch: 1,
            q_heads: 1,
            kv_heads: 1,
            q_len: q,
            kv_len: kv,
            qk_head_dim: 64,
            v_head_dim: 64,
            causal,
            window,
            dtype: DType::Bf16,
            kv_dtype: DType::Bf16,
            fused: true,
            pass: Pass::Forward,
            shared_kv: false,
        }
    }

    /// Count visible pairs by brute force for comparison.
    fn brute_pairs(q: u64, kv: u64, causal: bool, window: Option<u64>) -> u64 {
        let mut n = 0;
        for i in 0..q {
            let p = kv - q + i;
            for j in 0..kv {
                let visible = if causal {
                    j <= p && window.is_none_or(|w| p - j < w)
                } else {
                    true
                };
                n += u64::from(visible);
            }
        }
        n
    }

    #[test]
    fn visible_pairs_match_brute_force() {
        for &(q, kv) in &[(1, 1), (1, 7), (5, 5), (3, 10), (16, 16), (10, 33)] {
            for causal in [false, true] {
                for window in [None, Some(1), Some(4), Some(9), Some(100)] {
                    if window.is_some() && !causal {
                        continue;
                    }
                    let a = attn(q, kv, causal, window);
                    assert_eq!(
                        a.visible_pairs(),
                        brute_pairs(q, kv, causal, window) as f64,
                        "q{q} kv{kv} causal {causal} window {window:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn causal_square_counts_lower_triangle() {
        let a = attn(4096, 4096, true, None);
        assert_eq!(a.visible_pairs(), 4096.0 * 4097.0 / 2.0);
        // 4·d FLOPs per visible pair (QKᵀ and PV).
        assert_eq!(a.flops(), 4096.0 * 4097.0 / 2.0 * 4.0 * 64.0);
        let bwd = Attention {
            pass: Pass::Backward,
            ..a
        };
        assert_eq!(bwd.flops(), 2.5 * a.flops());
    }

    #[test]
    fn sliding_window_limits_keys_read() {
        let a = attn(1, 10_000, true, Some(4096));
        assert_eq!(a.keys_touched(), 4096);
        assert_eq!(a.visible_pairs(), 4096.0);
        let full = attn(1, 10_000, true, None);
        assert_eq!(full.keys_touched(), 10_000);
    }

    #[test]
    fn matmul_flops_and_bytes() {
        let m = Matmul::new(2, 3, 5, 7, DType::Bf16);
        assert_eq!(m.flops(), 2.0 * 2.0 * 3.0 * 5.0 * 7.0);
        assert_eq!(m.min_bytes(), 2.0 * ((21.0 + 35.0) * 2.0 + 15.0 * 2.0));
        let int8 = Matmul {
            output: DType::Fp32,
            ..Matmul::new(1, 4, 4, 4, DType::Int8)
        };
        assert_eq!(int8.min_bytes(), 32.0 + 64.0);
    }

    #[test]
    fn adam_moves_sixteen_plus_bytes_per_param() {
        let op = MemoryOp::new(MemoryKind::AdamUpdate, Pass::Forward, 1, 1000, DType::Bf16);
        // grad read (2) + working write (2) + master/m/v read and write (24).
        assert_eq!(op.min_bytes(), 1000.0 * 28.0);
    }

    #[test]
    fn collectives_follow_ring_volumes() {
        let c = Collective {
            kind: CollectiveKind::AllReduce,
            payload_bytes: 1000,
            ranks: 4,
            stride: 1,
            dtype: DType::Bf16,
        };
        assert_eq!(c.bytes_on_wire_per_rank(), 1500.0);
        let single = Collective { ranks: 1, ..c };
        assert_eq!(single.bytes_on_wire_per_rank(), 0.0);
    }

    #[test]
    fn limits_are_shown_and_products_checked() {
        assert_eq!(limits::show(1 << 20), "2^20");
        assert_eq!(limits::show(256), "256");
        assert_eq!(limits::product(&[1 << 32, 1 << 32]), None);
        assert_eq!(limits::product(&[1 << 31, 2]), Some(1 << 32));
        assert_eq!(
            limits::at_most(5, 4).unwrap_err(),
            "5 exceeds the limit of 4"
        );
    }

    #[test]
    fn op_check_names_the_field() {
        let big = 1u64 << 32;
        let m = Op::Matmul(Matmul::new(1, big, big, 16, DType::Bf16));
        let e = m.check().unwrap_err();
        assert!(e.starts_with("batch x m x n (C): more than 2^64"), "{e}");
        let m = Op::Matmul(Matmul::new(1, big + 1, 1, 1, DType::Bf16));
        assert_eq!(
            m.check().unwrap_err(),
            "m 4294967297 exceeds the limit of 2^32"
        );
        let a = Attention {
            batch: 2,
            ..attn(big, big, true, None)
        };
        let e = Op::Attention(a).check().unwrap_err();
        assert_eq!(
            e,
            "batch x q_len: 8589934592 exceeds the limit of 2^32 queries"
        );
        assert!(Op::Attention(attn(big, big, true, None)).check().is_ok());
        // At the limits the arithmetic stays finite.
        let a = Attention {
            q_heads: limits::HEADS,
            kv_heads: 1,
            qk_head_dim: limits::HEAD_DIM,
            v_head_dim: limits::HEAD_DIM,
            ..attn(big, big, true, None)
        };
        assert!(a.flops().is_finite() && a.min_bytes().is_finite() && a.flops() > 0.0);
    }
}
