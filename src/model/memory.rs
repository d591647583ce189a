//! Memory accounting: what must be resident on the GPU for training and for inference.

use crate::model::arch::{Architecture, LayerKind, LinearAttention};
use crate::model::dtype::DType;
use crate::model::execution::{InferenceSetup, Recompute, TrainingSetup, activation_dtype};
use crate::model::parallel::{Zero, mtp_rank_params, rank_params, stage_layers};
use serde::{Deserialize, Serialize};

/// Resident bytes during a training step, on the rank that holds the most (with a pipeline, the
/// first stage's in-flight microbatches or the last stage's head).
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

/// Resident bytes while serving, on the rank that holds the most.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InferenceMemory {
    pub weights_bytes: f64,
    /// Keys and values for `batch` sequences of `prompt + gen` tokens (sliding-window layers keep
    /// at most the window).
    pub kv_cache_bytes: f64,
    /// Keys and values one token adds across all attention layers, before any window cap.
    pub kv_cache_bytes_per_token: f64,
    /// The fixed-size state of linear-attention layers for `batch` sequences (0 without them):
    /// it does not grow with the context.
    pub recurrent_state_bytes: f64,
    /// Transient workspace of the prefill: the residual stream, the widest layer intermediate and
    /// the last position's fp32 logits.
    pub activations_bytes: f64,
    pub total_bytes: f64,
    pub capacity_bytes: f64,
    pub fits: bool,
}

/// Attention elements one layer saves per token for its backward on one of `tp` tensor ranks:
/// q, k and v, the attention output, and the inputs of the per-head q/k norms; with MLA the
/// decompressed q, k and v and the latents the up-projections read.
fn attention_saved_per_token(arch: &Architecture, tp: u64) -> f64 {
    let heads = arch.num_heads.div_ceil(tp);
    match arch.mla {
        Some(m) => {
            let (qk, v) = (
                (heads * m.qk_head_dim()) as f64,
                (heads * m.v_head_dim) as f64,
            );
            let latents = (m.q_lora_rank + m.cache_width()) as f64;
            2.0 * qk + 2.0 * v + latents
        }
        None => {
            let (q, kv) = (
                (heads * arch.head_dim) as f64,
                (arch.num_kv_heads.div_ceil(tp) * arch.head_dim) as f64,
            );
            let qk_norm = if arch.qk_norm { q + kv } else { 0.0 };
            (q + 2.0 * kv) + q + qk_norm
        }
    }
}

/// The widest attention intermediate per token on one of `tp` tensor ranks: q, k and v side by
/// side (decompressed, with MLA).
fn projected_width(arch: &Architecture, tp: u64) -> f64 {
    let heads = arch.num_heads.div_ceil(tp);
    match arch.mla {
        Some(m) => (heads * (2 * m.qk_head_dim() + m.v_head_dim)) as f64,
        None => ((heads + 2 * arch.num_kv_heads.div_ceil(tp)) * arch.head_dim) as f64,
    }
}

/// Linear-attention elements one layer saves per token on one of `tp` tensor ranks: the input
/// projection's outputs, the convolved q, k and v, the scan's output and the gated norm's.
fn linear_saved_per_token(l: LinearAttention, tp: u64) -> f64 {
    (l.in_width() + l.conv_width() + 2 * l.value_width()) as f64 / tp as f64
}

/// Bytes of recurrent state one sequence keeps on one of `tp` tensor ranks: each
/// linear-attention layer's key × value matrix per value head in fp32, and the last
/// `conv_kernel − 1` inputs of its short convolution in the cache dtype.
fn recurrent_state_bytes_per_sequence(arch: &Architecture, tp: u64, kv_dtype: DType) -> f64 {
    arch.linear_attention.map_or(0.0, |l| {
        let state = l.state_elements() as f64 * 4.0;
        let conv = (l.conv_width() * l.conv_kernel.saturating_sub(1)) as f64 * kv_dtype.bytes();
        arch.linear_layers() as f64 * (state + conv) / tp as f64
    })
}

/// Cached elements per token of one layer on one of `tp` tensor ranks: each rank keeps its own
/// key/value heads (replicated where fewer than ranks); MLA's latent is shared by all heads, so
/// every rank keeps all of it.
fn kv_elements_per_rank_token(arch: &Architecture, tp: u64) -> u64 {
    match arch.mla {
        Some(m) => m.cache_width(),
        None => 2 * arch.num_kv_heads.div_ceil(tp) * arch.head_dim,
    }
}

/// Activation elements one layer saves for its backward pass, per token, and the fp32 bytes per
/// token it saves besides (the attention log-sum-exp, router logits), on one of `tp` tensor
/// ranks: the heads and MLP widths are split; the residual-stream parts only with sequence
/// parallelism (`sp`).
fn saved_per_token(arch: &Architecture, kind: LayerKind, tp: u64, sp: bool) -> (f64, f64) {
    let t = tp as f64;
    let stream = if sp { t } else { 1.0 };
    let h = arch.hidden_size as f64;
    // Norm inputs and outputs feeding the attention and MLP matmuls.
    let norms = if arch.norms_per_layer == 4 { 6.0 } else { 4.0 };
    let mixer = match (kind.linear, arch.linear_attention) {
        (true, Some(l)) => linear_saved_per_token(l, tp),
        _ => attention_saved_per_token(arch, tp),
    };
    let mut elems = norms * h / stream + mixer;
    let mlp = |width: f64| {
        if arch.mlp.gated {
            3.0 * width // gate and up outputs, activation output
        } else {
            2.0 * width // up output, activation output
        }
    };
    // Log-sum-exp per attention head.
    let mut fp32 = if kind.linear {
        0.0
    } else {
        arch.num_heads.div_ceil(tp) as f64 * 4.0
    };
    match (kind.moe, arch.moe) {
        (true, Some(m)) => {
            let k = m.top_k as f64;
            // Dispatched inputs, expert intermediates and expert outputs for each routed copy.
            elems += k * (2.0 * h + mlp(m.expert_intermediate_size.div_ceil(tp) as f64));
            elems += mlp(m.shared_experts as f64 * m.shared_intermediate_size.div_ceil(tp) as f64);
            fp32 += m.num_experts as f64 * 4.0;
        }
        _ => elems += mlp(arch.intermediate_size.div_ceil(tp) as f64),
    }
    (elems, fp32)
}

pub fn training(arch: &Architecture, s: &TrainingSetup, capacity_bytes: f64) -> TrainingMemory {
    let p = &s.parallelism;
    let last = p.pp - 1;
    let first = training_stage(arch, s, 0, capacity_bytes);
    if last == 0 {
        return first;
    }
    let end = training_stage(arch, s, last, capacity_bytes);
    if end.total_bytes > first.total_bytes {
        end
    } else {
        first
    }
}

/// Resident bytes on a rank of pipeline stage `stage`.
fn training_stage(
    arch: &Architecture,
    s: &TrainingSetup,
    stage: u64,
    capacity_bytes: f64,
) -> TrainingMemory {
    let p = &s.parallelism;
    // The multi-token-prediction modules train with the model, on the last stage.
    let mtp = if stage == p.pp - 1 {
        mtp_rank_params(arch, p)
    } else {
        0
    };
    let params = rank_params(arch, p, stage).saturating_add(mtp) as f64;
    let working = activation_dtype(s.dtype);
    let e = working.bytes();
    let dp = p.dp as f64;
    let shard = |from: Zero| {
        if p.zero.level() >= from.level() {
            dp
        } else {
            1.0
        }
    };
    let weights_bytes = params * e / shard(Zero::Stage3);
    let gradients_bytes = params * e / shard(Zero::Stage2);
    let master = if working == DType::Fp32 { 0.0 } else { 4.0 };
    let optimizer_bytes = params * (master + 8.0) / shard(Zero::Stage1);

    // One microbatch on this rank: its sequences, its share of each sequence.
    let (batch, seq) = (p.micro_batch_size(s.batch), s.seq / p.cp);
    let tokens = (batch * seq) as f64;
    let sp = p.sequence_parallel;
    let attention_scores = |window: Option<u64>| -> f64 {
        // Unfused attention keeps the softmax output: the full score square per head.
        let keys = window.unwrap_or(s.seq).min(s.seq) as f64;
        batch as f64 * arch.num_heads.div_ceil(p.tp) as f64 * seq as f64 * keys * e
    };
    let stream = if sp { p.tp as f64 } else { 1.0 };
    let mut layers = 0.0;
    let mut largest_layer: f64 = 0.0;
    for (kind, count) in arch.layer_groups() {
        let (elems, fp32) = saved_per_token(arch, kind, p.tp, sp);
        let mut one = tokens * (elems * e + fp32);
        if !s.fused_attention {
            one += attention_scores(kind.window);
        }
        if s.dropout {
            // Two one-byte masks over the residual stream; unfused, the dropped probabilities
            // and their one-byte mask beside the softmax output.
            one += tokens * 2.0 * arch.hidden_size as f64 / stream;
            if !s.fused_attention {
                one += attention_scores(kind.window) * (1.0 + 1.0 / e);
            }
        }
        largest_layer = largest_layer.max(one);
        layers += count as f64
            * match s.recompute {
                Recompute::None => one,
                Recompute::Selective if !s.fused_attention => one - attention_scores(kind.window),
                Recompute::Selective => one,
                // Only the layer input is kept.
                Recompute::Full => tokens * arch.hidden_size as f64 * e / stream,
            };
    }
    if p.pp > 1 {
        let n = stage_layers(arch.num_layers, p.pp)[stage as usize];
        layers *= n as f64 / arch.num_layers as f64;
        // 1F1B: stage i holds the activations of up to pp − i microbatches at once; the
        // interleaved schedule holds more on the first stage (Narayanan et al. 2021, §2.2.2).
        let m = p.microbatches(s.batch);
        let mut in_flight = m.min(p.pp - stage) as f64;
        if p.virtual_stages > 1 && stage == 0 {
            in_flight *= 1.0 + (p.pp - 1) as f64 / (p.pp * p.virtual_stages) as f64;
        }
        layers *= in_flight;
    }
    if s.recompute == Recompute::Full {
        // One layer's activations exist again while its backward runs.
        layers += largest_layer;
    }
    // Embedding output on the first stage; final norm in/out, logits in the working dtype and
    // their fp32 upcast on the last.
    let h = arch.hidden_size as f64;
    let (is_first, is_last) = (stage == 0, stage == p.pp - 1);
    let stream_parts = f64::from(u8::from(is_first)) + 2.0 * f64::from(u8::from(is_last));
    let logits = if is_last {
        arch.vocab_size.div_ceil(p.tp) as f64 * (e + 4.0)
    } else {
        0.0
    };
    let head = tokens * (stream_parts * h * e / stream + logits);
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
    let p = &s.parallelism;
    // Drafting speculatively, the last stage also holds the multi-token-prediction modules.
    let drafting = crate::model::plan::speculative_drafts(arch, s) > 0;
    let held = (0..p.pp)
        .map(|i| {
            let mtp = if drafting && i == p.pp - 1 {
                mtp_rank_params(arch, p)
            } else {
                0
            };
            rank_params(arch, p, i).saturating_add(mtp)
        })
        .max()
        .unwrap_or(0);
    let weights_bytes = s.dtype.bytes_for(held) as f64;
    let context = s.prompt.saturating_add(s.generate);
    let kv_per_layer_token = kv_elements_per_rank_token(arch, p.tp) as f64 * s.kv_dtype.bytes();
    // The stage with the most layers holds the most cache.
    let stage_share = if p.pp == 1 {
        1.0
    } else {
        stage_layers(arch.num_layers, p.pp)[0] as f64 / arch.num_layers as f64
    };
    let kv_cache_bytes: f64 = stage_share
        * arch
            .layer_groups()
            .into_iter()
            .filter(|(kind, _)| !kind.linear)
            .map(|(kind, count)| {
                let cached = kind.window.map_or(context, |w| w.min(context));
                count as f64 * kv_per_layer_token * cached as f64 * s.batch as f64
            })
            // From +0.0: a model without attention layers caches nothing (an empty f64 sum is −0.0).
            .fold(0.0, |total, layer| total + layer);
    let recurrent_state_bytes =
        stage_share * s.batch as f64 * recurrent_state_bytes_per_sequence(arch, p.tp, s.kv_dtype);
    let kv_cache_bytes_per_token = arch.kv_elements_per_token() as f64 * s.kv_dtype.bytes();

    let e = activation_dtype(s.dtype).bytes();
    let h = arch.hidden_size as f64;
    let tp = p.tp;
    let mlp_width = arch.moe.map_or(arch.intermediate_size, |m| {
        m.expert_intermediate_size
            .max(m.shared_experts.saturating_mul(m.shared_intermediate_size))
            .max(arch.intermediate_size)
    }) as f64
        / tp as f64
        * if arch.mlp.gated { 3.0 } else { 2.0 };
    let widest = mlp_width.max(projected_width(arch, tp));
    let tokens = s.batch as f64 * s.prompt as f64;
    let activations_bytes = tokens * (2.0 * h + widest) * e
        + s.batch as f64 * arch.vocab_size.div_ceil(tp) as f64 * 4.0;
    let total_bytes = weights_bytes + kv_cache_bytes + recurrent_state_bytes + activations_bytes;
    InferenceMemory {
        weights_bytes,
        kv_cache_bytes,
        kv_cache_bytes_per_token,
        recurrent_state_bytes,
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
            dropout: false,
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
            speculative_acceptance: None,
        };
        let short = inference(&a, &s(4000), 80e9);
        let long = inference(&a, &s(30000), 80e9);
        assert_eq!(short.kv_cache_bytes, long.kv_cache_bytes);
        assert_eq!(
            short.kv_cache_bytes,
            4096.0 * short.kv_cache_bytes_per_token
        );
    }

    /// ZeRO shards optimizer state (1), then gradients (2), then weights (3) over the
    /// data-parallel ranks: 2 + 2 + 12 bytes per parameter in bf16 with Adam.
    #[test]
    fn zero_stages_shard_as_hand_counted() {
        use crate::model::parallel::Zero;
        let a = arch::load("llama-2-7b").unwrap();
        let p = a.params().total as f64;
        let states = |zero| {
            let mut s = train(Recompute::Full, true);
            s.batch = 8;
            s.parallelism = Parallelism {
                dp: 8,
                zero,
                ..Parallelism::default()
            };
            let m = training(&a, &s, 80e9);
            (m.weights_bytes, m.gradients_bytes, m.optimizer_bytes)
        };
        assert_eq!(states(Zero::None), (2.0 * p, 2.0 * p, 12.0 * p));
        assert_eq!(states(Zero::Stage1), (2.0 * p, 2.0 * p, 12.0 * p / 8.0));
        assert_eq!(
            states(Zero::Stage2),
            (2.0 * p, 2.0 * p / 8.0, 12.0 * p / 8.0)
        );
        assert_eq!(
            states(Zero::Stage3),
            (2.0 * p / 8.0, 2.0 * p / 8.0, 12.0 * p / 8.0)
        );
    }

    /// Tensor and pipeline parallelism split the weights; the first stage of a 1F1B pipeline
    /// holds as many microbatches' activations as there are stages.
    #[test]
    fn tensor_and_pipeline_ranks_hold_their_share() {
        let a = arch::load("llama-2-7b").unwrap();
        let p = a.params();
        let mut s = train(Recompute::None, true);
        s.batch = 16;
        s.parallelism = Parallelism {
            tp: 2,
            pp: 4,
            micro_batch: 1,
            ..Parallelism::default()
        };
        let m = training(&a, &s, 80e9);
        // 32 layers over 4 stages; the first holds the embedding, the last the head.
        let layers = (p.non_embedding as f64 * 8.0 / 32.0).floor();
        let first = (layers + p.embedding as f64) / 2.0;
        let last = (layers + p.lm_head as f64) / 2.0;
        assert_eq!(m.weights_bytes, 2.0 * first.max(last).ceil());
        let one_stage = |pp: u64| {
            let mut s1 = s;
            s1.parallelism.pp = pp;
            training(&a, &s1, 80e9).activations_bytes
        };
        // Four stages keep four microbatches of a quarter of the layers: about one stage's
        // worth of the whole model's, plus the embedding output.
        let ratio = one_stage(4) / one_stage(1);
        assert!((0.9..1.1).contains(&ratio), "{ratio}");
    }
}
