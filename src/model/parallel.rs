//! How a model is split over GPUs: tensor (Megatron column/row split, optionally with sequence
//! parallelism), pipeline (1F1B or interleaved), data (with ZeRO stages), expert and context
//! parallelism, and how a step is cut into microbatches. The layout of the groups follows
//! Megatron-LM's rank order — tensor innermost, then context, then data (expert parallelism is
//! carved out of the data-parallel ranks), pipeline outermost — which decides which groups stay
//! inside a node's GPU fabric and which cross the network.

use crate::error::{Error, Result};
use crate::model::arch::Architecture;
use crate::model::ops::limits;
use serde::{Deserialize, Serialize};

/// How optimizer state, gradients and weights are sharded over the data-parallel ranks
/// (Rajbhandari et al. 2020, "ZeRO"; PyTorch FSDP's FULL_SHARD is stage 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Zero {
    /// Every data-parallel rank holds everything; gradients are all-reduced.
    #[default]
    None,
    /// Optimizer state sharded: gradients reduce-scattered, updated weights all-gathered.
    Stage1,
    /// Optimizer state and gradients sharded (same traffic as stage 1).
    Stage2,
    /// Weights sharded too: all-gathered before each layer's forward and backward.
    Stage3,
}

impl Zero {
    pub fn from_level(level: u64) -> Option<Zero> {
        Some(match level {
            0 => Zero::None,
            1 => Zero::Stage1,
            2 => Zero::Stage2,
            3 => Zero::Stage3,
            _ => return None,
        })
    }

    pub fn level(self) -> u64 {
        match self {
            Zero::None => 0,
            Zero::Stage1 => 1,
            Zero::Stage2 => 2,
            Zero::Stage3 => 3,
        }
    }
}

/// How a model is split over GPUs and how a training step is cut into microbatches.
/// `Parallelism::default()` is one GPU, one microbatch: today's single-GPU answers exactly.
/// Written in a space file or a request, every field is optional (the default's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Parallelism {
    /// Tensor-parallel ranks (each layer's matmuls split over them).
    pub tp: u64,
    /// Pipeline stages (layers split over them).
    pub pp: u64,
    /// Data-parallel replicas (training), or serving replicas.
    pub dp: u64,
    /// Expert-parallel ranks, carved out of the data-parallel ranks (MoE only).
    pub ep: u64,
    /// Context-parallel ranks (each sequence split over them; ring attention).
    pub cp: u64,
    /// Sequences per microbatch on one data-parallel rank; 0 for the default: the whole local
    /// batch at once without a pipeline, one sequence with one.
    pub micro_batch: u64,
    /// Model chunks per pipeline stage: 1 is plain 1F1B, more is the interleaved schedule
    /// (Narayanan et al. 2021, §2.2.2).
    pub virtual_stages: u64,
    pub zero: Zero,
    /// Sequence parallelism with tensor parallelism (Korthikanti et al. 2022): norms and
    /// residuals split over the tensor ranks, all-reduces become all-gather + reduce-scatter.
    pub sequence_parallel: bool,
    /// Data-parallel gradient reduction overlapped with the backward pass (bucketed, as
    /// PyTorch DDP and Megatron's `--overlap-grad-reduce` do); otherwise it follows it.
    pub overlap_grad_reduce: bool,
    /// Tokens the busiest expert gets over the balanced share (1.0: perfectly balanced).
    pub expert_imbalance: f64,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism {
            tp: 1,
            pp: 1,
            dp: 1,
            ep: 1,
            cp: 1,
            micro_batch: 0,
            virtual_stages: 1,
            zero: Zero::None,
            sequence_parallel: false,
            overlap_grad_reduce: true,
            expert_imbalance: 1.0,
        }
    }
}

/// Which parallel group a collective runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Tensor,
    Context,
    Expert,
    Data,
    Pipeline,
}

impl Parallelism {
    /// GPUs the layout uses (saturating; `validate` bounds it).
    pub fn gpus(&self) -> u64 {
        [self.tp, self.pp, self.dp, self.cp]
            .iter()
            .fold(1u64, |a, &b| a.saturating_mul(b))
    }

    pub fn is_single_gpu(&self) -> bool {
        self.gpus() == 1
    }

    /// Ranks in a group.
    pub fn size(&self, g: Group) -> u64 {
        match g {
            Group::Tensor => self.tp,
            Group::Context => self.cp,
            Group::Expert => self.ep,
            Group::Data => self.dp,
            Group::Pipeline => self.pp,
        }
    }

    /// Distance in ranks between neighbours of a group, in Megatron's order (tp, cp, dp with
    /// ep inside it, pp).
    pub fn stride(&self, g: Group) -> u64 {
        match g {
            Group::Tensor => 1,
            Group::Context => self.tp,
            Group::Expert | Group::Data => self.tp * self.cp,
            Group::Pipeline => self.tp * self.cp * self.dp,
        }
    }

    /// The serving layout a training layout implies: its tensor and pipeline split, its
    /// data-parallel ranks as replicas.
    pub fn for_serving(&self) -> Parallelism {
        Parallelism {
            tp: self.tp,
            pp: self.pp,
            dp: self.dp,
            ..Parallelism::default()
        }
    }

    /// Sequences per microbatch for a global batch of `batch` sequences.
    pub fn micro_batch_size(&self, batch: u64) -> u64 {
        match (self.micro_batch, self.pp) {
            (0, 1) => batch / self.dp.max(1),
            (0, _) => 1,
            (m, _) => m,
        }
    }

    /// Microbatches per step for a global batch of `batch` sequences.
    pub fn microbatches(&self, batch: u64) -> u64 {
        batch / (self.dp.max(1) * self.micro_batch_size(batch).max(1))
    }

    /// Sizes positive and bounded, the layout's divisibility for a training batch of `batch`
    /// sequences of `seq` tokens (serving passes `None`).
    pub fn validate(&self, training: Option<(u64, u64)>) -> Result<()> {
        for (name, v) in [
            ("tp", self.tp),
            ("pp", self.pp),
            ("dp", self.dp),
            ("ep", self.ep),
            ("cp", self.cp),
            ("virtual-stages", self.virtual_stages),
        ] {
            if v == 0 || v > limits::RANKS {
                return Err(Error::Unsupported(format!(
                    "--{name} must be from 1 to {}, got {v}",
                    limits::show(limits::RANKS)
                )));
            }
        }
        let gpus = [self.tp, self.pp, self.dp, self.cp]
            .iter()
            .try_fold(1u64, |a, &b| a.checked_mul(b));
        match gpus {
            Some(g) if g <= limits::RANKS => {}
            _ => {
                return Err(Error::Unsupported(format!(
                    "--tp x --pp x --dp x --cp = {} GPUs exceeds the limit of {}",
                    gpus.map_or_else(|| "more than 2^64".into(), |g| g.to_string()),
                    limits::show(limits::RANKS)
                )));
            }
        }
        if !self.dp.is_multiple_of(self.ep) {
            return Err(Error::Unsupported(format!(
                "--ep {} must divide --dp {} (expert-parallel ranks are data-parallel ranks)",
                self.ep, self.dp
            )));
        }
        if self.virtual_stages > 1 && self.pp == 1 {
            return Err(Error::Unsupported(
                "--virtual-stages needs --pp of 2 or more".into(),
            ));
        }
        if self.sequence_parallel && self.tp == 1 {
            return Err(Error::Unsupported(
                "--sequence-parallel needs --tp of 2 or more".into(),
            ));
        }
        if !(self.expert_imbalance.is_finite() && (1.0..=64.0).contains(&self.expert_imbalance)) {
            return Err(Error::Unsupported(format!(
                "--expert-imbalance must be from 1 to 64, got {}",
                self.expert_imbalance
            )));
        }
        match training {
            Some((batch, seq)) => {
                let mb = self.micro_batch_size(batch);
                let per_step = self.dp.checked_mul(mb.max(1));
                if mb == 0 || per_step.is_none_or(|n| batch % n != 0) {
                    return Err(Error::Unsupported(format!(
                        "--batch {batch} must be a multiple of --dp {} x --micro-batch {}",
                        self.dp,
                        if self.micro_batch == 0 && self.pp == 1 {
                            "(the whole local batch)".to_string()
                        } else {
                            mb.to_string()
                        }
                    )));
                }
                if seq % self.cp != 0 {
                    return Err(Error::Unsupported(format!(
                        "--seq {seq} must be a multiple of --cp {}",
                        self.cp
                    )));
                }
                if self.virtual_stages > 1 && !self.microbatches(batch).is_multiple_of(self.pp) {
                    return Err(Error::Unsupported(format!(
                        "the interleaved schedule needs the microbatches per step ({}) to be a multiple of --pp {}",
                        self.microbatches(batch),
                        self.pp
                    )));
                }
            }
            None => {
                if self.cp > 1 || self.ep > 1 || self.zero != Zero::None {
                    return Err(Error::Unsupported(
                        "serving is split with --tp, --pp and --dp (replicas); --cp, --ep and --zero apply to training".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether the model splits as the layout asks: heads over the tensor ranks, layers over the
/// stages and their chunks, experts over the expert ranks.
pub fn check_layout(arch: &Architecture, p: &Parallelism) -> Result<()> {
    let (heads, kv) = (arch.num_heads, arch.num_kv_heads);
    if heads % p.tp != 0 {
        return Err(Error::Unsupported(format!(
            "--tp {} must divide {}'s {heads} attention heads",
            p.tp, arch.name
        )));
    }
    if kv % p.tp != 0 && !p.tp.is_multiple_of(kv) {
        return Err(Error::Unsupported(format!(
            "--tp {} must divide {}'s {kv} key/value heads or be a multiple of them",
            p.tp, arch.name
        )));
    }
    let chunks = p.pp.saturating_mul(p.virtual_stages);
    if chunks > arch.num_layers {
        return Err(Error::Unsupported(format!(
            "--pp x --virtual-stages = {chunks} exceeds {}'s {} layers",
            arch.name, arch.num_layers
        )));
    }
    if p.ep > 1 {
        match arch.moe {
            None => {
                return Err(Error::Unsupported(format!(
                    "--ep {} needs a mixture-of-experts model; {} is dense",
                    p.ep, arch.name
                )));
            }
            Some(m) if m.num_experts % p.ep != 0 => {
                return Err(Error::Unsupported(format!(
                    "--ep {} must divide {}'s {} experts",
                    p.ep, arch.name, m.num_experts
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Parameters one rank of pipeline stage `stage` holds before any ZeRO sharding: the stage's
/// share of the layers, the embedding on the first stage and the output head on the last (with a
/// tied embedding, Megatron keeps a copy there), split over the tensor ranks, and the experts
/// further over the expert ranks. One stage and one rank: every parameter.
pub fn rank_params(arch: &Architecture, p: &Parallelism, stage: u64) -> u64 {
    let params = arch.params();
    let experts = expert_params(arch);
    // The stage's share of what the layers hold (all of it without a pipeline).
    let layers = stage_layer_count(arch.num_layers, p.pp, stage);
    let share = |n: u64| (u128::from(n) * u128::from(layers) / u128::from(arch.num_layers)) as u64;
    let (dense, expert) = if p.pp == 1 {
        (params.total - experts, experts)
    } else {
        let mut dense = share(params.non_embedding - experts);
        if stage == 0 {
            dense += params.embedding;
        }
        if stage == p.pp - 1 {
            dense += if arch.tie_embeddings {
                params.embedding
            } else {
                params.lm_head
            };
        }
        (dense, share(experts))
    };
    // What a tensor rank holds beyond an even split.
    let (uneven, held) = tp_uneven_params(arch, p.tp);
    let (uneven, held) = (share(uneven).min(dense), share(held));
    (dense - uneven).div_ceil(p.tp) + held + expert.div_ceil(p.tp * p.ep)
}

/// The model's dense parameters that `tp` tensor ranks do not split evenly, and what one rank
/// holds of them: latent attention's down projections and norms, held whole by every rank
/// (`mla_replicated_layer_params`); key/value projections with fewer key/value heads than
/// ranks, held a whole head at a time (each rank holds ⌈kv_heads/tp⌉ heads).
fn tp_uneven_params(arch: &Architecture, tp: u64) -> (u64, u64) {
    if tp == 1 {
        return (0, 0);
    }
    let attending: u64 = arch
        .layer_groups()
        .into_iter()
        .filter(|(kind, _)| kind.attends())
        .map(|(_, count)| count)
        .sum();
    if arch.mla.is_some() {
        let whole = attending * mla_replicated_layer_params(arch);
        return (whole, whole);
    }
    let kv = arch.num_kv_heads;
    if kv == 0 || kv.is_multiple_of(tp) {
        return (0, 0);
    }
    let bias = u64::from(arch.biases.qkv);
    let per_head = 2 * arch.head_dim * (arch.hidden_size + bias);
    let in_model = attending * kv * per_head;
    (in_model, attending * kv.div_ceil(tp) * per_head)
}

/// Parameters of one latent-attention layer that every tensor rank holds whole: the down
/// projections from the hidden state (the query latent; the key/value latent with the shared
/// rotary key) and the two latent norms. Serving and training frameworks replicate them rather
/// than split them (vLLM's DeepSeek-V2/V3 attention builds q_a_proj and kv_a_proj_with_mqa as
/// ReplicatedLinear; Megatron-core's MLA builds its down projections duplicated).
pub fn mla_replicated_layer_params(arch: &Architecture) -> u64 {
    let Some(m) = arch.mla else { return 0 };
    let h = arch.hidden_size;
    let query = if m.q_lora_rank > 0 {
        h * m.q_lora_rank + m.q_lora_rank
    } else {
        0
    };
    query + h * m.cache_width() + m.kv_lora_rank
}

/// Parameters of the routed experts (what expert parallelism splits).
pub fn expert_params(arch: &Architecture) -> u64 {
    let per_layer = routed_expert_layer_params(arch);
    arch.layer_groups()
        .into_iter()
        .filter(|(kind, _)| kind.moe)
        .map(|(_, count)| count * per_layer)
        .sum()
}

/// Parameters of one MoE layer's routed experts (0 without experts).
fn routed_expert_layer_params(arch: &Architecture) -> u64 {
    let Some(m) = arch.moe else { return 0 };
    let matrices = if arch.mlp.gated { 3 } else { 2 };
    m.num_experts * matrices * arch.hidden_size * m.expert_intermediate_size
}

/// Parameters of the multi-token-prediction modules on one rank of the last pipeline stage,
/// where they run: split like a layer (routed experts over the tensor and expert ranks, the
/// rest over the tensor ranks).
pub fn mtp_rank_params(arch: &Architecture, p: &Parallelism) -> u64 {
    let total = arch.params().mtp;
    let experts = if arch.layer_kind(arch.num_layers).moe {
        arch.mtp_layers * routed_expert_layer_params(arch)
    } else {
        0
    }
    .min(total);
    let replicated = if p.tp == 1 {
        0
    } else {
        (arch.mtp_layers * mla_replicated_layer_params(arch)).min(total - experts)
    };
    (total - experts - replicated).div_ceil(p.tp) + replicated + experts.div_ceil(p.tp * p.ep)
}

/// Layers per pipeline stage: the first `layers mod pp` stages take one more.
pub fn stage_layers(layers: u64, pp: u64) -> Vec<u64> {
    (0..pp).map(|i| stage_layer_count(layers, pp, i)).collect()
}

/// Layers on pipeline stage `stage` of `pp` (`stage_layers` without the list).
pub fn stage_layer_count(layers: u64, pp: u64, stage: u64) -> u64 {
    layers / pp + u64::from(stage < layers % pp)
}

/// The time of one step of a pipeline whose stage `i` takes `stage_s[i]` per microbatch (forward
/// and backward) over `microbatches`, with `chunks` model chunks per stage. The steady state runs
/// at the slowest stage; the fill and drain pass through every other stage once, and interleaving
/// cuts them by the number of chunks. Equal stages give (m + (p − 1)/v)·t, a bubble of
/// (p − 1)/(v·m) of the ideal time (Narayanan et al. 2021, §2.2).
pub fn pipeline_step(stage_s: &[f64], microbatches: u64, chunks: u64) -> f64 {
    let slowest = stage_s.iter().copied().fold(0.0, f64::max);
    let all: f64 = stage_s.iter().sum();
    microbatches as f64 * slowest + (all - slowest) / chunks as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_stages_have_the_1f1b_bubble() {
        for (p, m) in [(2u64, 8u64), (4, 4), (8, 32), (64, 512)] {
            let t = 0.37;
            let step = pipeline_step(&vec![t; p as usize], m, 1);
            let bubble = (step - m as f64 * t) / step;
            let expected = (p - 1) as f64 / (m + p - 1) as f64;
            assert!((bubble - expected).abs() < 1e-12, "p={p} m={m}");
            // Interleaving with v chunks: a bubble of (p − 1)/(v·m) of the ideal time.
            let v = 4;
            let step = pipeline_step(&vec![t; p as usize], m, v);
            let over = (step - m as f64 * t) / (m as f64 * t);
            assert!((over - (p - 1) as f64 / (v * m) as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn layers_spread_over_stages_first_stages_first() {
        assert_eq!(stage_layers(105, 35), vec![3; 35]);
        assert_eq!(stage_layers(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(stage_layers(10, 4).iter().sum::<u64>(), 10);
    }

    #[test]
    fn groups_cross_the_network_once_they_outgrow_a_node() {
        use crate::model::dtype::DType;
        use crate::model::ops::{Collective, CollectiveKind, Link};
        let over = |p: &Parallelism, g: Group| Collective {
            kind: CollectiveKind::AllReduce,
            payload_bytes: 1,
            ranks: p.size(g),
            stride: p.stride(g),
            dtype: DType::Bf16,
        };
        let p = Parallelism {
            tp: 8,
            pp: 4,
            dp: 32,
            ..Parallelism::default()
        };
        assert_eq!(over(&p, Group::Tensor).placement(8), (Link::IntraNode, 8));
        // One data-parallel rank per node: one network link each.
        assert_eq!(over(&p, Group::Data).placement(8), (Link::InterNode, 1));
        assert_eq!(over(&p, Group::Pipeline).placement(8), (Link::InterNode, 1));
        let flat = Parallelism {
            dp: 32,
            ..Parallelism::default()
        };
        // Eight data-parallel ranks per node drive eight links.
        assert_eq!(over(&flat, Group::Data).placement(8), (Link::InterNode, 8));
        let small = Parallelism {
            tp: 2,
            dp: 4,
            ..Parallelism::default()
        };
        assert_eq!(over(&small, Group::Data).placement(8), (Link::IntraNode, 4));
    }

    #[test]
    fn layouts_that_do_not_divide_are_refused() {
        let p = Parallelism {
            dp: 4,
            ep: 3,
            ..Parallelism::default()
        };
        assert!(
            p.validate(Some((8, 64)))
                .unwrap_err()
                .to_string()
                .contains("--ep 3")
        );
        let p = Parallelism {
            dp: 3,
            ..Parallelism::default()
        };
        let e = p.validate(Some((8, 64))).unwrap_err().to_string();
        assert!(e.contains("--batch 8 must be a multiple of --dp 3"), "{e}");
        let p = Parallelism {
            cp: 3,
            ..Parallelism::default()
        };
        assert!(p.validate(Some((8, 64))).is_err());
        assert!(p.validate(None).is_err());
        assert!(Parallelism::default().validate(Some((8, 64))).is_ok());
    }

    /// DeepSeek-V3's latent down projections and norms stay whole on every tensor rank; the
    /// rest of the dense weights split, the routed experts over tensor × expert ranks. A model
    /// without latent attention splits as before.
    #[test]
    fn latent_down_projections_are_replicated_over_tensor_ranks() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/deepseek-v3.json"
        ));
        let a = crate::model::arch::from_hf_config("deepseek-v3.json", text).unwrap();
        // 7168 x 1536 + 1536 + 7168 x (512 + 64) + 512 per layer, 61 layers.
        assert_eq!(mla_replicated_layer_params(&a), 15_140_864);
        let replicated = 61 * 15_140_864;
        let p = Parallelism {
            tp: 8,
            ..Parallelism::default()
        };
        let (total, experts) = (a.params().total, expert_params(&a));
        let dense = total - experts;
        assert_eq!(
            rank_params(&a, &p, 0),
            (dense - replicated).div_ceil(8) + replicated + experts.div_ceil(8)
        );
        let one = Parallelism::default();
        assert_eq!(rank_params(&a, &one, 0), total);
        let llama = crate::model::arch::load("llama-3.1-70b").unwrap();
        assert_eq!(rank_params(&llama, &p, 0), llama.params().total.div_ceil(8));
    }

    /// With fewer key/value heads than tensor ranks, each rank holds one whole head's key and
    /// value projections: Llama 3.1 405B (8 key/value heads) on 16 ranks.
    #[test]
    fn key_value_heads_are_held_whole_on_more_ranks_than_heads() {
        let a = crate::model::arch::load("llama-3.1-405b").unwrap();
        // k and v: 2 x 128 x 16384 per head, 8 heads, 126 layers.
        let per_head = 2 * 128 * 16384;
        let (in_model, held) = (126 * 8 * per_head, 126 * per_head);
        let p = Parallelism {
            tp: 16,
            ..Parallelism::default()
        };
        let total = a.params().total;
        assert_eq!(
            rank_params(&a, &p, 0),
            (total - in_model).div_ceil(16) + held
        );
        assert!(rank_params(&a, &p, 0) > total.div_ceil(16));
    }
}
