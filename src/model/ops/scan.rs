//! The gated delta rule (Gated DeltaNet: Yang, Kautz and Hatamizadeh, "Gated Delta Networks:
//! Improving Mamba2 with Delta Rule", 2024), the recurrence of Qwen3-Next's linear-attention
//! layers, as one op over whole sequences.
//!
//! Per (sequence, head), with the state S (key_dim × value_dim) starting at zero, for each token
//! t with query q_t, key k_t (L2-normalized by the caller), value v_t, gate α_t ∈ (0, 1] and
//! write strength β_t ∈ (0, 1):
//!
//! ```text
//! S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ        o_t = S_tᵀ q_t
//! ```
//!
//! (the paper writes the transposed state, S_t = S_{t−1} α_t (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ
//! with o_t = S_t q_t). Equivalently u_t = β_t (v_t − α_t S_{t−1}ᵀ k_t) and
//! S_t = α_t S_{t−1} + k_t u_tᵀ: the form the recurrent kernels run.
//!
//! FLOPs count the chunked algorithm ("Parallelizing Linear Transformers with the Delta Rule over
//! Sequence Length", Yang et al. 2024, with the gates of Gated DeltaNet). Per chunk of c tokens,
//! with γ_r the gate's product from the chunk's start to token r and S₀ the state entering it:
//! - A = strictly lower part of diag(β)·(γ_r/γ_j)·KKᵀ: c(c−1)/2 dot products of length dk;
//! - T = (I + A)⁻¹ by forward substitution (the UT transform): c(c−1)(c−2)/6 multiply-adds;
//! - K·S₀ (c × dk × dv), then U = T·(diag(β)V − diag(βγ)·K·S₀): c(c−1)/2 rows of dv;
//! - O = diag(γ)·Q·S₀ + (causal decay ⊙ QKᵀ)·U: c × dk × dv, c(c+1)/2 dot products of length dk
//!   and c(c+1)/2 rows of dv;
//! - S = γ_c·S₀ + (diag(γ_c/γ)·K)ᵀ·U: dk × c × dv.
//!
//! In all 2c²·dk + 2c²·dv + c(c−1)(c−2)/3 + 6c·dk·dv per chunk, a multiply-add counted as 2;
//! the scalings by gates and β are not counted (as softmax is not for attention). A kernel that
//! splits the value columns over blocks and recomputes A and T in each does more than this.
//! Minimum bytes: q, k, v, α, β read once and o written once in the op's dtype, plus the final
//! state written once (the state starts at zero and is not read).

use super::Pass;
use super::limits::{self, OP_DIM, OP_ELEMENTS, at_most, product_at_most};
use crate::model::dtype::DType;
use serde::{Deserialize, Serialize};

/// Largest chunk: the T matrix is chunk × chunk per head and the kernels keep it on chip.
pub const MAX_CHUNK: u64 = 1024;

/// A gated-delta-rule scan over `batch` sequences of `seq` tokens and `heads` heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scan {
    pub batch: u64,
    pub heads: u64,
    pub seq: u64,
    pub key_dim: u64,
    pub value_dim: u64,
    /// Tokens per chunk of the chunked algorithm (64 in the published kernels).
    pub chunk: u64,
    /// dtype of q, k, v, α, β, o and the final state; arithmetic in fp32.
    pub dtype: DType,
    pub pass: Pass,
}

impl Scan {
    /// FLOPs of one chunk of `c` tokens, per head (module docs).
    fn chunk_flops(&self, c: f64) -> f64 {
        let (k, v) = (self.key_dim as f64, self.value_dim as f64);
        2.0 * c * c * (k + v) + c * (c - 1.0) * (c - 2.0) / 3.0 + 6.0 * c * k * v
    }

    /// Sequences × heads, in f64.
    fn rows(&self) -> f64 {
        self.batch as f64 * self.heads as f64
    }

    /// Forward FLOPs of the chunked algorithm: whole chunks plus the last, shorter one.
    pub fn flops(&self) -> f64 {
        let chunk = self.chunk.max(1);
        let (whole, rest) = (self.seq / chunk, self.seq % chunk);
        let per_head = whole as f64 * self.chunk_flops(chunk as f64)
            + if rest > 0 {
                self.chunk_flops(rest as f64)
            } else {
                0.0
            };
        self.rows() * per_head
    }

    pub fn min_bytes(&self) -> f64 {
        let tokens = self.rows() * self.seq as f64;
        let (k, v) = (self.key_dim as f64, self.value_dim as f64);
        // q and k, v and o, α and β; then the final state.
        let elements = tokens * (2.0 * k + 2.0 * v + 2.0) + self.rows() * k * v;
        elements * self.dtype.bytes()
    }

    /// Every size within `limits`, every tensor's element count too; one line naming the field.
    pub fn check(&self) -> Result<(), String> {
        let positive = |name: &str, v: u64, limit: u64| -> Result<(), String> {
            if v == 0 {
                return Err(format!("{name} must be positive, got 0"));
            }
            at_most(v, limit)
                .map(drop)
                .map_err(|e| format!("{name} {e}"))
        };
        positive("batch", self.batch, OP_DIM)?;
        positive("heads", self.heads, limits::HEADS)?;
        positive("seq", self.seq, OP_DIM)?;
        positive("key_dim", self.key_dim, limits::HEAD_DIM)?;
        positive("value_dim", self.value_dim, limits::HEAD_DIM)?;
        positive("chunk", self.chunk, MAX_CHUNK)?;
        if self.pass == Pass::Backward {
            return Err("pass backward: only the forward scan is modelled".into());
        }
        for (name, f) in [
            (
                "batch x heads x seq x key_dim (q, k)",
                [self.batch, self.heads, self.seq, self.key_dim],
            ),
            (
                "batch x heads x seq x value_dim (v, o)",
                [self.batch, self.heads, self.seq, self.value_dim],
            ),
            (
                "batch x heads x key_dim x value_dim (state)",
                [self.batch, self.heads, self.key_dim, self.value_dim],
            ),
        ] {
            product_at_most(&f, OP_ELEMENTS).map_err(|e| format!("{name}: {e} elements"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(seq: u64, chunk: u64) -> Scan {
        Scan {
            batch: 2,
            heads: 3,
            seq,
            key_dim: 128,
            value_dim: 64,
            chunk,
            dtype: DType::Bf16,
            pass: Pass::Forward,
        }
    }

    /// The closed form against the operations counted one by one for a chunk of c tokens.
    #[test]
    fn flops_count_the_chunked_products() {
        let (k, v) = (128.0, 64.0);
        for c in [1u64, 2, 3, 17, 64] {
            let cf = c as f64;
            let tri_strict = cf * (cf - 1.0) / 2.0;
            let tri = cf * (cf + 1.0) / 2.0;
            let solve: f64 = (0..c)
                .map(|r| (0..r).map(|m| (r - m - 1) as f64).sum::<f64>())
                .sum();
            let by_hand = 2.0 * tri_strict * k // A
                + 2.0 * solve // T
                + 2.0 * cf * k * v // K·S₀
                + 2.0 * tri_strict * v // T·R
                + 2.0 * cf * k * v + 2.0 * tri * k + 2.0 * tri * v // O
                + 2.0 * cf * k * v; // state
            let s = scan(c, c);
            assert!((s.flops() / 6.0 - by_hand).abs() < 1e-6, "c {c}");
        }
    }

    #[test]
    fn a_short_last_chunk_counts_its_own_length() {
        let whole = scan(128, 64).flops();
        let ragged = scan(130, 64).flops();
        assert_eq!(ragged - whole, scan(2, 2).flops());
    }

    #[test]
    fn bytes_are_inputs_outputs_and_the_final_state() {
        let s = Scan {
            batch: 1,
            heads: 1,
            seq: 10,
            key_dim: 4,
            value_dim: 8,
            chunk: 64,
            dtype: DType::Fp16,
            pass: Pass::Forward,
        };
        // q, k: 10·4 each; v, o: 10·8 each; α, β: 10 each; state 4·8.
        assert_eq!(s.min_bytes(), 2.0 * (80.0 + 160.0 + 20.0 + 32.0));
    }

    #[test]
    fn check_names_the_field() {
        let zero = Scan {
            key_dim: 0,
            ..scan(64, 64)
        };
        assert_eq!(zero.check().unwrap_err(), "key_dim must be positive, got 0");
        let big = Scan {
            chunk: 4096,
            ..scan(64, 64)
        };
        assert_eq!(
            big.check().unwrap_err(),
            "chunk 4096 exceeds the limit of 1024"
        );
        let huge = Scan {
            batch: 1 << 32,
            heads: 1 << 16,
            ..scan(1 << 32, 64)
        };
        assert!(
            huge.check()
                .unwrap_err()
                .starts_with("batch x heads x seq x key_dim")
        );
        let bwd = Scan {
            pass: Pass::Backward,
            ..scan(64, 64)
        };
        assert!(bwd.check().unwrap_err().starts_with("pass backward"));
        assert!(scan(4096, 64).check().is_ok());
    }

    /// Records carry ops: a scan reads back as it was written, tagged "scan".
    #[test]
    fn serde_round_trip() {
        let op = super::super::Op::Scan(scan(100, 64));
        let text = serde_json::to_string(&op).unwrap();
        assert!(
            text.starts_with(r#"{"op":"scan","batch":2,"heads":3,"seq":100"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<super::super::Op>(&text).unwrap(), op);
        assert_eq!(
            op.to_string(),
            "scan-gated-delta b2 h3 s100 dk128 dv64 c64 bf16"
        );
    }

    /// Calibrated by class, dtype and key dim; features log2 of sequences × heads, length and
    /// key dim.
    #[test]
    fn calibration_key_and_features() {
        use crate::model::cost::calibrated::key_and_features;
        let (key, f) = key_and_features(&super::super::Op::Scan(scan(1024, 64))).unwrap();
        assert_eq!(key.op_kind(), "scan bf16 gated-delta d128");
        assert_eq!(f, vec![6f64.log2(), 10.0, 7.0]);
    }

    /// The roofline prices the scan's FLOPs on the tensor-core peak at the attention efficiency
    /// (near the H100's ridge: about 100 FLOPs per byte at these head dims).
    #[test]
    fn roofline_runs_the_chunk_products_on_the_matrix_peak() {
        use crate::model::cost::{Bound, CostModel, Roofline};
        let h = crate::model::hw::load("h100-sxm").unwrap();
        let s = Scan {
            batch: 4,
            heads: 32,
            ..scan(8192, 64)
        };
        let p = Roofline.predict(&super::super::Op::Scan(s), &h).unwrap();
        assert!(matches!(p.bound, Bound::Compute | Bound::Memory));
        let rate = h.require_peak_flops(DType::Bf16).unwrap() * h.model.attention_efficiency;
        assert!((p.compute_s - s.flops() / rate).abs() < 1e-12 * p.compute_s.max(1.0));
        let bwd = super::super::Op::Scan(Scan {
            pass: Pass::Backward,
            ..s
        });
        assert!(Roofline.predict(&bwd, &h).is_err());
    }
}
