//! Memory accounting: what must be resident on the GPU for training and for inference.

use crate::model::arch::{Architecture, LayerKind};
use crate::model::dtype::DType;
use crate::model::execution::{InferenceSetup, Recompute, TrainingSetup, activation_dtype};
use serde::{Deserialize, Serialize};

/// Resident bytes during a training step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingMemory {
    pub weights_bytes: f64,
    pub gradients_bytes: f64,
    /// Adam: fp32 master weights (when the working weights are not fp32), first and second moments.
    pub optimizer_bytes: f64,
    pub activations_bytes: f64,
    pub total_bytes: f64,
    pub capacity_bytes: f64,
    pub fits: bool,
}

/// Resident bytes while serving.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InferenceMemory {
    pub weights_bytes: f64,
    /// Keys and values for `batch` sequences of `prompt + gen` tokens (sliding-window layers keep
    /// at most the window).
    pub kv_cache_bytes: f64,
    /// Keys and values one token adds across all layers, before any window cap.
    pub kv_cache_bytes_per_token: f64,
    /// Transient workspace of the prefill: the residual stream, the widest layer intermediate and
    /// the last position's fp32 logits.
    pub activations_bytes: f64,
    pub total_bytes: f64,
    pub capacity_bytes: f64,
    pub fits: bool,
}

/// Activation elements one layer saves for its backward pass, per token, and the fp32 bytes per
/// token it saves besides (the attention log-sum-exp, router logits).
fn saved_per_token(arch: &Architecture, kind: LayerKind) -> (f64, f64) {
    let h = arch.hidden_size as f64;
    let (q, kv) = (arch.q_width() as f64, arch.kv_width() as f64);
    // Norm inputs and outputs feeding the QKV and MLP matmuls, q/k/v, the attention output.
    let mut elems = 4.0 * h + (q + 2.0 * kv) + q;
    if arch.norms_per_layer == 4 {
        elems += 2.0 * h;
    }
    let mlp = |width: f64| {
        if arch.mlp.gated {
            3.0 * width // gate and up outputs, activation output
        } else {
            2.0 * width // up output, activation output
        }
    };
    let mut fp32 = arch.num_heads as f64 * 4.0; // log-sum-exp per head
    match (kind.moe, arch.moe) {
        (true, Some(m)) => {
            let k = m.top_k as f64;
            // Dispatched inputs, expert intermediates and expert outputs for each routed copy.
            elems += k * (2.0 * h + mlp(m.expert_intermediate_size as f64));
            elems += mlp(m.shared_experts as f64 * m.shared_intermediate_size as f64);
            fp32 += m.num_experts as f64 * 4.0;
        }
        _ => elems += mlp(arch.intermediate_size as f64),
    }
    (elems, fp32)
}

pub fn training(arch: &Architecture, s: &TrainingSetup, capacity_bytes: f64) -> TrainingMemory {
    let params = arch.params().total as f64;
    let working = activation_dtype(s.dtype);
    let e = working.bytes();
    let weights_bytes = params * e;
    let gradients_bytes = params * e;
    let master = if working == DType::Fp32 { 0.0 } else { 4.0 };
    let optimizer_bytes = params * (master + 8.0);

    let tokens = s.tokens() as f64;
    let attention_scores = |window: Option<u64>| -> f64 {
        // Unfused attention keeps the softmax output: the full score square per head.
        let keys = window.unwrap_or(s.seq).min(s.seq) as f64;
        s.batch as f64 * arch.num_heads as f64 * s.seq as f64 * keys * e
    };
    let mut layers = 0.0;
    let mut largest_layer: f64 = 0.0;
    for (kind, count) in arch.layer_groups() {
        let (elems, fp32) = saved_per_token(arch, kind);
        let mut one = tokens * (elems * e + fp32);
        if !s.fused_attention {
            one += attention_scores(kind.window);
        }
        largest_layer = largest_layer.max(one);
        layers += count as f64
            * match s.recompute {
                Recompute::None => one,
                Recompute::Selective if !s.fused_attention => one - attention_scores(kind.window),
                Recompute::Selective => one,
                // Only the layer input is kept.
                Recompute::Full => tokens * arch.hidden_size as f64 * e,
            };
    }
    if s.recompute == Recompute::Full {
        // One layer's activations exist again while its backward runs.
        layers += largest_layer;
    }
    // Embedding output, final norm in/out, logits in the working dtype and their fp32 upcast.
    let h = arch.hidden_size as f64;
    let head = tokens * (3.0 * h * e + arch.vocab_size as f64 * (e + 4.0));
    let activations_bytes = layers + head;
    let total_bytes = weights_bytes + gradients_bytes + optimizer_bytes + activations_bytes;
    TrainingMemory {
        weights_bytes,
        gradients_bytes,
        optimizer_bytes,
        activations_bytes,
        total_bytes,
        capacity_bytes,
        fits: total_bytes <= capacity_bytes,
    }
}

pub fn inference(arch: &Architecture, s: &InferenceSetup, capacity_bytes: f64) -> InferenceMemory {
    let weights_bytes = s.dtype.bytes_for(arch.params().total) as f64;
    let context = s.prompt.saturating_add(s.generate);
    let kv_per_layer_token = 2.0 * arch.kv_width() as f64 * s.kv_dtype.bytes();
    let kv_cache_bytes: f64 = arch
        .layer_groups()
        .into_iter()
        .map(|(kind, count)| {
            let cached = kind.window.map_or(context, |w| w.min(context));
            count as f64 * kv_per_layer_token * cached as f64 * s.batch as f64
        })
        .sum();
    let kv_cache_bytes_per_token = arch.kv_elements_per_token() as f64 * s.kv_dtype.bytes();

    let e = activation_dtype(s.dtype).bytes();
    let h = arch.hidden_size as f64;
    let mlp_width = arch.moe.map_or(arch.intermediate_size, |m| {
        m.expert_intermediate_size
            .max(m.shared_experts.saturating_mul(m.shared_intermediate_size))
            .max(arch.intermediate_size)
    }) as f64
        * if arch.mlp.gated { 3.0 } else { 2.0 };
    let widest = mlp_width.max(arch.q_width() as f64 + 2.0 * arch.kv_width() as f64);
    let tokens = s.batch as f64 * s.prompt as f64;
    let activations_bytes =
        tokens * (2.0 * h + widest) * e + s.batch as f64 * arch.vocab_size as f64 * 4.0;
    let total_bytes = weights_bytes + kv_cache_bytes + activations_bytes;
    InferenceMemory {
        weights_bytes,
        kv_cache_bytes,
        kv_cache_bytes_per_token,
        activations_bytes,
        total_bytes,
        capacity_bytes,
        fits: total_bytes <= capacity_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch;
    use crate::model::execution::Parallelism;

    fn train(recompute: Recompute, fused: bool) -> TrainingSetup {
        TrainingSetup {
            batch: 2,
            seq: 2048,
            dtype: DType::Bf16,
            recompute,
            fused_attention: fused,
            parallelism: Parallelism::default(),
        }
    }

    #[test]
    fn adam_states_are_sixteen_bytes_per_parameter() {
        let a = arch::load("llama-2-7b").unwrap();
        let p = a.params().total as f64;
        for dtype in [DType::Bf16, DType::Fp32] {
            let s = TrainingSetup {
                dtype,
                ..train(Recompute::None, true)
            };
            let m = training(&a, &s, 80e9);
            let states = m.weights_bytes + m.gradients_bytes + m.optimizer_bytes;
            assert_eq!(states, 16.0 * p, "{dtype}");
            assert_eq!(m.total_bytes, 16.0 * p + m.activations_bytes);
        }
    }

    #[test]
    fn recomputation_and_fusion_shrink_activations() {
        let a = arch::load("llama-2-7b").unwrap();
        let act = |r, f| training(&a, &train(r, f), 80e9).activations_bytes;
        assert!(act(Recompute::Full, true) < act(Recompute::Selective, true));
        assert_eq!(act(Recompute::Selective, true), act(Recompute::None, true));
        assert!(act(Recompute::None, true) < act(Recompute::None, false));
        assert!(act(Recompute::Selective, false) < act(Recompute::None, false));
        assert_eq!(act(Recompute::Selective, false), act(Recompute::None, true));
    }

    #[test]
    fn sliding_window_caps_the_cache() {
        let a = arch::load("mistral-7b").unwrap();
        let s = |prompt| InferenceSetup {
            batch: 1,
            prompt,
            generate: 96,
            dtype: DType::Bf16,
            kv_dtype: DType::Bf16,
            fused_attention: true,
            parallelism: Parallelism::default(),
        };
        let short = inference(&a, &s(4000), 80e9);
        let long = inference(&a, &s(30000), 80e9);
        assert_eq!(short.kv_cache_bytes, long.kv_cache_bytes);
        assert_eq!(
            short.kv_cache_bytes,
            4096.0 * short.kv_cache_bytes_per_token
        );
    }
}
