//! Multi-head latent attention decode in f64, in both of its forms (DeepSeek-AI, "DeepSeek-V2: A
//! Strong, Economical, and Efficient Mixture-of-Experts Language Model", and the DeepSeek-V3
//! technical report). Each cached token holds a latent c (`kv_lora_rank`) and one rotary key r
//! (`qk_rope_head_dim`) shared by every head.
//!
//! - Decompressed: per head h, keys [W_UK_h·c, r] (`qk_nope + rope`) and values W_UV_h·c
//!   (`v_head_dim`), then ordinary attention.
//! - Absorbed: the query folds in W_UK (q_latent_h = W_UK_hᵀ·q_nope_h), attention runs over the
//!   cached [c, r] directly (head dim `kv_lora_rank + rope`, values its first `kv_lora_rank`
//!   columns), and W_UV applies to the latent output.
//!
//! Both use the softmax scale 1/√(qk_nope + rope): absorbing changes where the products are
//! taken, not the scores, so the absorbed kernel is handed that scale rather than
//! 1/√(its own head dim).

/// The widths of one MLA layer's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlaDims {
    pub heads: usize,
    pub kv_lora_rank: usize,
    pub qk_nope: usize,
    pub rope: usize,
    pub v_head_dim: usize,
}

impl MlaDims {
    /// The softmax scale of both forms.
    pub fn scale(&self) -> f64 {
        1.0 / ((self.qk_nope + self.rope) as f64).sqrt()
    }

    /// Elements per cached token: the latent and the shared rotary key.
    pub fn cache_width(&self) -> usize {
        self.kv_lora_rank + self.rope
    }
}

/// One decode step's operands, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct MlaDecode {
    /// [heads, qk_nope]
    pub q_nope: Vec<f64>,
    /// [heads, rope] (already rotated)
    pub q_rope: Vec<f64>,
    /// [context, kv_lora_rank + rope]: the latent, then the rotary key (already rotated).
    pub cache: Vec<f64>,
    /// [heads, qk_nope, kv_lora_rank]: k_nope_h = W_UK_h · c.
    pub w_uk: Vec<f64>,
    /// [heads, v_head_dim, kv_lora_rank]: v_h = W_UV_h · c.
    pub w_uv: Vec<f64>,
}

impl MlaDecode {
    pub fn context(&self, d: &MlaDims) -> usize {
        self.cache.len() / d.cache_width()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// y = W·x for row-major W of `rows` × x.len().
fn matvec(w: &[f64], x: &[f64], rows: usize) -> Vec<f64> {
    (0..rows)
        .map(|i| dot(&w[i * x.len()..][..x.len()], x))
        .collect()
}

/// softmax(scale · scores) as weights summing to one.
fn softmax(scores: &[f64], scale: f64) -> Vec<f64> {
    let max = scores.iter().fold(f64::NEG_INFINITY, |m, s| m.max(*s));
    let e: Vec<f64> = scores.iter().map(|s| ((s - max) * scale).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// The decompressed form: keys and values expanded per head. Output [heads, v_head_dim].
pub fn decompressed(d: &MlaDims, x: &MlaDecode) -> Vec<f64> {
    let (r, w) = (d.kv_lora_rank, d.cache_width());
    let ctx = x.context(d);
    let mut out = Vec::with_capacity(d.heads * d.v_head_dim);
    for h in 0..d.heads {
        let w_uk = &x.w_uk[h * d.qk_nope * r..][..d.qk_nope * r];
        let w_uv = &x.w_uv[h * d.v_head_dim * r..][..d.v_head_dim * r];
        let (q_nope, q_rope) = (
            &x.q_nope[h * d.qk_nope..][..d.qk_nope],
            &x.q_rope[h * d.rope..][..d.rope],
        );
        let mut scores = Vec::with_capacity(ctx);
        let mut values = Vec::with_capacity(ctx);
        for j in 0..ctx {
            let (c, k_rope) = x.cache[j * w..][..w].split_at(r);
            let k_nope = matvec(w_uk, c, d.qk_nope);
            scores.push(dot(q_nope, &k_nope) + dot(q_rope, k_rope));
            values.push(matvec(w_uv, c, d.v_head_dim));
        }
        let p = softmax(&scores, d.scale());
        let mut o = vec![0.0; d.v_head_dim];
        for (pj, v) in p.iter().zip(&values) {
            for (oc, vc) in o.iter_mut().zip(v) {
                *oc += pj * vc;
            }
        }
        out.extend(o);
    }
    out
}

/// The absorbed queries: [heads, kv_lora_rank + rope], W_UK_hᵀ·q_nope_h then q_rope_h — what
/// the absorbed attention kernel takes as Q.
pub fn absorbed_queries(d: &MlaDims, x: &MlaDecode) -> Vec<f64> {
    let r = d.kv_lora_rank;
    let mut q = Vec::with_capacity(d.heads * d.cache_width());
    for h in 0..d.heads {
        let w_uk = &x.w_uk[h * d.qk_nope * r..][..d.qk_nope * r];
        let q_nope = &x.q_nope[h * d.qk_nope..][..d.qk_nope];
        let mut lat = vec![0.0; r];
        for (i, qi) in q_nope.iter().enumerate() {
            for (l, w) in lat.iter_mut().zip(&w_uk[i * r..][..r]) {
                *l += qi * w;
            }
        }
        q.extend(lat);
        q.extend_from_slice(&x.q_rope[h * d.rope..][..d.rope]);
    }
    q
}

/// The absorbed attention alone: each head's query (`absorbed_queries`) against the cached
/// [c, r] rows, values the first `kv_lora_rank` columns of the same rows. Output [heads,
/// kv_lora_rank], the latent before W_UV.
pub fn latent_attention(d: &MlaDims, q: &[f64], cache: &[f64]) -> Vec<f64> {
    let (r, w) = (d.kv_lora_rank, d.cache_width());
    let ctx = cache.len() / w;
    let mut out = Vec::with_capacity(d.heads * r);
    for qh in q.chunks(w).take(d.heads) {
        let scores: Vec<f64> = (0..ctx).map(|j| dot(qh, &cache[j * w..][..w])).collect();
        let p = softmax(&scores, d.scale());
        let mut o = vec![0.0; r];
        for (j, pj) in p.iter().enumerate() {
            for (oc, cc) in o.iter_mut().zip(&cache[j * w..][..r]) {
                *oc += pj * cc;
            }
        }
        out.extend(o);
    }
    out
}

/// The absorbed form: queries absorbed, attention over the latent, W_UV on the output. Output
/// [heads, v_head_dim].
pub fn absorbed(d: &MlaDims, x: &MlaDecode) -> Vec<f64> {
    let r = d.kv_lora_rank;
    let lat = latent_attention(d, &absorbed_queries(d, x), &x.cache);
    (0..d.heads)
        .flat_map(|h| {
            let w_uv = &x.w_uv[h * d.v_head_dim * r..][..d.v_head_dim * r];
            matvec(w_uv, &lat[h * r..][..r], d.v_head_dim)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::harness::random_tensor;
    use crate::model::dtype::DType;

    fn seeded(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        random_tensor(n, DType::Fp32, seed)
            .into_iter()
            .map(|v| f64::from(v) * scale)
            .collect()
    }

    /// Seeded operands, weights scaled by 1/√fan-in so scores stay of order one.
    fn inputs(d: &MlaDims, ctx: usize, seed: u64) -> MlaDecode {
        let r = d.kv_lora_rank;
        MlaDecode {
            q_nope: seeded(d.heads * d.qk_nope, seed, 1.0),
            q_rope: seeded(d.heads * d.rope, seed ^ 1, 1.0),
            cache: seeded(ctx * d.cache_width(), seed ^ 2, 1.0),
            w_uk: seeded(d.heads * d.qk_nope * r, seed ^ 3, 1.0 / (r as f64).sqrt()),
            w_uv: seeded(
                d.heads * d.v_head_dim * r,
                seed ^ 4,
                1.0 / (r as f64).sqrt(),
            ),
        }
    }

    fn rel_error(a: &[f64], b: &[f64]) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn mla_absorbed_and_decompressed_decode_give_the_same_output_on_the_reference() {
        // (heads, kv_lora_rank, qk_nope, rope, v_head_dim, context): DeepSeek-V3's widths at
        // 4 heads, and smaller odd mixes.
        for (i, (heads, rank, nope, rope, v, ctx)) in [
            (4, 512, 128, 64, 128, 37),
            (16, 64, 32, 16, 48, 1),
            (8, 128, 64, 32, 64, 300),
            (5, 96, 48, 16, 32, 129),
        ]
        .into_iter()
        .enumerate()
        {
            let d = MlaDims {
                heads,
                kv_lora_rank: rank,
                qk_nope: nope,
                rope,
                v_head_dim: v,
            };
            let x = inputs(&d, ctx, 11 + i as u64);
            let (dec, abs) = (decompressed(&d, &x), absorbed(&d, &x));
            assert_eq!(dec.len(), heads * v);
            let e = rel_error(&abs, &dec);
            assert!(e < 1e-12, "{d:?} context {ctx}: relative difference {e:e}");
            // Not trivially equal: a single key's output is its value, whatever the scores.
            if ctx > 1 {
                let mut other = x.clone();
                other.q_rope.iter_mut().for_each(|q| *q *= 3.0);
                assert!(rel_error(&absorbed(&d, &other), &dec) > 1e-3, "{d:?}");
            }
        }
    }

    /// The absorbed attention is the attention op with `shared_kv` that the kernels run: one
    /// latent K/V head, head dim kv_lora_rank + rope, values its first kv_lora_rank columns
    /// (the op scales by 1/√(its head dim); a model's query carries the rest of MLA's scale).
    #[test]
    fn the_latent_attention_is_the_shared_kv_attention_op() {
        use crate::model::ops::{Attention, Pass};
        let d = MlaDims {
            heads: 8,
            kv_lora_rank: 64,
            qk_nope: 32,
            rope: 16,
            v_head_dim: 32,
        };
        let (ctx, w) = (45, d.cache_width());
        let q32 = random_tensor(d.heads * w, DType::Fp32, 3);
        let cache32 = random_tensor(ctx * w, DType::Fp32, 4);
        let op = Attention {
            batch: 1,
            q_heads: d.heads as u64,
            kv_heads: 1,
            q_len: 1,
            kv_len: ctx as u64,
            qk_head_dim: w as u64,
            v_head_dim: d.kv_lora_rank as u64,
            causal: true,
            window: None,
            dtype: DType::Fp32,
            kv_dtype: DType::Fp32,
            fused: true,
            pass: Pass::Forward,
            shared_kv: true,
        };
        let from_op = crate::measure::backend::cpu::attention(&op, &q32, &cache32, &[]);
        let rescale = 1.0 / (w as f64).sqrt() / d.scale();
        let q: Vec<f64> = q32.iter().map(|v| f64::from(*v) * rescale).collect();
        let cache: Vec<f64> = cache32.iter().map(|v| f64::from(*v)).collect();
        let e = rel_error(&from_op, &latent_attention(&d, &q, &cache));
        assert!(e < 1e-12, "relative difference {e:e}");
    }

    #[test]
    fn the_scale_is_that_of_the_decompressed_head_dim() {
        let d = MlaDims {
            heads: 128,
            kv_lora_rank: 512,
            qk_nope: 128,
            rope: 64,
            v_head_dim: 128,
        };
        assert_eq!(d.cache_width(), 576);
        assert!((d.scale() - 1.0 / 192f64.sqrt()).abs() < 1e-15);
    }
}
