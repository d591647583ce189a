//! The third input: what runs — a training step, or serving (a prefill, then decode steps) —
//! with its dtypes, recomputation, batch and lengths, and how it is split over GPUs (`parallel`).

use crate::error::{Error, Result};
use crate::model::dtype::DType;
use crate::model::ops::limits;
use serde::{Deserialize, Serialize};

pub use crate::model::parallel::{Parallelism, Zero};

/// Activation recomputation during the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    /// Keep every activation the backward pass needs.
    None,
    /// Recompute the attention core (scores and softmax) instead of storing it (Korthikanti et
    /// al. 2022). With fused attention this is what the backward kernel does anyway.
    Selective,
    /// Store only each layer's input and recompute the whole layer forward in the backward pass.
    Full,
}

/// One training step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingSetup {
    /// Sequences per step, over all data-parallel replicas (the global batch).
    pub batch: u64,
    pub seq: u64,
    /// Matmul input dtype (mixed precision: bf16 matmuls, fp32 master weights and optimizer).
    pub dtype: DType,
    pub recompute: Recompute,
    /// Dropout on the attention probabilities and the residual stream (the GPT recipes of
    /// Megatron-LM train with it; most recent LLMs train without).
    #[serde(default)]
    pub dropout: bool,
    pub fused_attention: bool,
    pub parallelism: Parallelism,
}

/// Serving: prefill `prompt` tokens for `batch` sequences, then generate `gen` tokens each.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InferenceSetup {
    pub batch: u64,
    pub prompt: u64,
    pub generate: u64,
    /// Weight and matmul dtype.
    pub dtype: DType,
    pub kv_dtype: DType,
    pub fused_attention: bool,
    pub parallelism: Parallelism,
    /// Speculative decoding with the model's multi-token-prediction modules as the drafter: each
    /// drafted token is accepted with this probability (None: plain decoding).
    #[serde(default)]
    pub speculative_acceptance: Option<f64>,
}

/// Tokens a speculative decode step yields on average with `drafts` drafted tokens, each
/// accepted with probability `acceptance` until the first rejection, plus the one the verifying
/// pass always gives: 1 + a + … + a^drafts (Leviathan et al. 2023, "Fast Inference from
/// Transformers via Speculative Decoding").
pub fn tokens_per_step(drafts: u64, acceptance: f64) -> f64 {
    (0..=drafts.min(64))
        .map(|i| acceptance.powi(i as i32))
        .sum()
}

/// The dtype activations and memory-bound ops run in, given the matmul dtype: 8-bit and 4-bit
/// matmuls take bf16 activations (quantized on the fly); tf32 stores fp32.
pub fn activation_dtype(dtype: DType) -> DType {
    match dtype {
        DType::Fp32 | DType::Tf32 => DType::Fp32,
        DType::Fp16 => DType::Fp16,
        _ => DType::Bf16,
    }
}

/// The dtype attention runs in: fp8 attention exists (FlashAttention-3); integer attention does not.
pub fn attention_dtype(dtype: DType) -> DType {
    match dtype {
        DType::Int8 | DType::Int4 => DType::Bf16,
        d => d,
    }
}

fn check_positive(fields: &[(&str, u64)]) -> Result<()> {
    for (name, v) in fields {
        if *v == 0 {
            return Err(Error::Unsupported(format!(
                "--{name} must be positive, got 0"
            )));
        }
    }
    Ok(())
}

/// `--a` × `--b` (or + when `sum`) within `limit`, else an error naming both flags.
fn check_combined(
    (a, va): (&str, u64),
    (b, vb): (&str, u64),
    sum: bool,
    limit: u64,
    what: &str,
) -> Result<()> {
    let (combined, op) = if sum {
        (va.checked_add(vb), "+")
    } else {
        (va.checked_mul(vb), "x")
    };
    match combined {
        Some(c) if c <= limit => Ok(()),
        c => Err(Error::Unsupported(format!(
            "--{a} {op} --{b} = {} {what} exceeds the limit of {}",
            c.map_or_else(|| "more than 2^64".to_string(), |c| c.to_string()),
            limits::show(limit)
        ))),
    }
}

impl TrainingSetup {
    /// Sizes positive, tokens per step within `limits::TOKENS`, a layout that divides them.
    pub fn validate(&self) -> Result<()> {
        check_positive(&[("batch", self.batch), ("seq", self.seq)])?;
        check_combined(
            ("batch", self.batch),
            ("seq", self.seq),
            false,
            limits::TOKENS,
            "tokens per step",
        )?;
        self.parallelism.validate(Some((self.batch, self.seq)))
    }

    /// Tokens per step (saturating; `validate` bounds it).
    pub fn tokens(&self) -> u64 {
        self.batch.saturating_mul(self.seq)
    }
}

impl InferenceSetup {
    /// Sizes positive; `--gen` within `limits::GEN`, the prefill within `limits::TOKENS`, the
    /// context within `limits::CONTEXT`; a serving layout.
    pub fn validate(&self) -> Result<()> {
        check_positive(&[
            ("batch", self.batch),
            ("prompt", self.prompt),
            ("gen", self.generate),
        ])?;
        if self.generate > limits::GEN {
            return Err(Error::Unsupported(format!(
                "--gen {} exceeds the limit of {}",
                self.generate,
                limits::show(limits::GEN)
            )));
        }
        check_combined(
            ("batch", self.batch),
            ("prompt", self.prompt),
            false,
            limits::TOKENS,
            "prefill tokens",
        )?;
        check_combined(
            ("prompt", self.prompt),
            ("gen", self.generate),
            true,
            limits::CONTEXT,
            "tokens of context",
        )?;
        if let Some(a) = self.speculative_acceptance
            && !(a.is_finite() && (0.0..=1.0).contains(&a))
        {
            return Err(Error::Unsupported(format!(
                "--speculative-acceptance must be from 0 to 1, got {a}"
            )));
        }
        self.parallelism.validate(None)
    }

    /// Context lengths of the decode steps whose average is the time per output token: the first
    /// token comes from the prefill, token j (j = 2..=gen) attends to prompt + j − 1 positions.
    /// With one generated token, the one decode step that would follow stands for it.
    pub fn decode_contexts(&self) -> std::ops::RangeInclusive<u64> {
        let first = self.prompt.saturating_add(1);
        first..=first.max(self.prompt.saturating_add(self.generate.saturating_sub(1)))
    }
}

/// What runs: the training step and the serving setup a prediction prices together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub training: TrainingSetup,
    pub serving: InferenceSetup,
}

impl Execution {
    pub fn validate(&self) -> Result<()> {
        self.training.validate()?;
        self.serving.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(prompt: u64, generate: u64) -> InferenceSetup {
        InferenceSetup {
            batch: 1,
            prompt,
            generate,
            dtype: DType::Bf16,
            kv_dtype: DType::Bf16,
            fused_attention: true,
            parallelism: Parallelism::default(),
            speculative_acceptance: None,
        }
    }

    #[test]
    fn decode_contexts_grow_from_the_prompt() {
        let contexts = |s: InferenceSetup| s.decode_contexts().collect::<Vec<_>>();
        assert_eq!(contexts(serving(100, 4)), vec![101, 102, 103]);
        assert_eq!(contexts(serving(100, 2)), vec![101]);
        assert_eq!(contexts(serving(100, 1)), vec![101]);
    }

    #[test]
    fn serving_takes_tensor_pipeline_and_replicas_only() {
        let mut s = serving(100, 4);
        s.parallelism.tp = 2;
        s.parallelism.pp = 2;
        assert!(s.validate().is_ok());
        s.parallelism.cp = 2;
        assert!(s.validate().unwrap_err().to_string().contains("--cp"));
    }

    #[test]
    fn sizes_beyond_the_limits_are_refused() {
        let e = |s: InferenceSetup| s.validate().unwrap_err().to_string();
        assert_eq!(
            e(serving(100, 1 << 25)),
            "--gen 33554432 exceeds the limit of 2^24"
        );
        assert_eq!(
            e(serving(1 << 32, 2)),
            "--prompt + --gen = 4294967298 tokens of context exceeds the limit of 2^32"
        );
        let wide = InferenceSetup {
            batch: 1 << 20,
            ..serving(1 << 20, 4)
        };
        assert_eq!(
            e(wide),
            "--batch x --prompt = 1099511627776 prefill tokens exceeds the limit of 2^32"
        );
        assert!(serving((1 << 32) - 4, 4).validate().is_ok());
        // Unvalidated sizes saturate instead of wrapping.
        assert_eq!(serving(u64::MAX, 3).decode_contexts().end(), &u64::MAX);
    }
}
