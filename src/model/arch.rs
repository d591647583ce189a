//! Model architectures: the description, Hugging Face `config.json` import, a native TOML form,
//! and exact parameter counts (counted the way the published checkpoints count them).

use crate::error::{Error, Result, parse_toml, read_to_string};
use crate::model::ops::{Activation, limits};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    LayerNorm,
    RmsNorm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    /// A learned table of `max_position_embeddings × hidden` added to the token embeddings.
    Learned,
    /// Rotary embeddings applied to q and k: no parameters.
    Rotary,
    /// No position information in attention (Nemotron-H: its Mamba-2 layers carry the order).
    None,
}

/// The feed-forward block: `gated` means act(x·W_gate) ⊙ (x·W_up) then W_down (SwiGLU with
/// silu, GeGLU with gelu); otherwise act(x·W_up) then W_down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Mlp {
    pub gated: bool,
    pub activation: Activation,
}

/// Which linear layers carry a bias.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Biases {
    pub qkv: bool,
    pub attn_out: bool,
    pub mlp: bool,
}

/// Which layers use the sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowLayers {
    All,
    /// Layers 0, 2, 4, … (Gemma 2 and gpt-oss alternate local and global attention).
    Even,
    /// Layers from this index on (Qwen2's `max_window_layers`).
    From(u64),
    /// The layers a repeating pattern marks (Gemma 3: five local layers, then a global one).
    Pattern(LayerMask),
    /// The layers `Architecture::layer_blocks` lists as local.
    Listed,
}

/// A repeating pattern over the layers: layer i is marked when bit (i mod period) is set. Kept
/// as a bit set so an architecture stays cheap to copy, hash and count (a period of at most 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerMask {
    pub period: u64,
    pub bits: u64,
}

impl LayerMask {
    /// The longest period a pattern may have.
    pub const MAX_PERIOD: u64 = 64;

    /// Whether layer `index` is marked.
    pub fn marks(&self, index: u64) -> bool {
        self.period > 0 && self.bits >> (index % self.period) & 1 == 1
    }

    /// The shortest repeating pattern of `marked` (one flag per layer), or None when it repeats
    /// only with a period longer than `MAX_PERIOD`.
    pub fn of_flags(marked: &[bool]) -> Option<LayerMask> {
        let n = marked.len() as u64;
        let period = (1..=n.max(1)).find(|&p| {
            marked
                .iter()
                .enumerate()
                .all(|(i, &m)| m == marked[i % p as usize])
        })?;
        if period > Self::MAX_PERIOD {
            return None;
        }
        let bits = (0..period.min(n)).fold(0u64, |b, i| b | (u64::from(marked[i as usize]) << i));
        Some(LayerMask { period, bits })
    }

    /// The pattern written one character per layer of the period: `marked` for a marked layer,
    /// `other` for the rest.
    pub fn render(&self, marked: char, other: char) -> String {
        (0..self.period)
            .map(|i| if self.marks(i) { marked } else { other })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingWindow {
    pub size: u64,
    pub layers: WindowLayers,
}

/// The distinct layer kinds of a model and how many layers have each: at most ten (MoE or dense
/// × windowed attention, global attention or a scan, for layers of a mixer and a feed-forward
/// block; a Mamba-2 mixer alone, attention alone, and an MoE or dense feed-forward alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerGroups {
    groups: [(LayerKind, u64); LayerGroups::CAPACITY],
    len: usize,
}

impl LayerGroups {
    const CAPACITY: usize = 10;

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn to_vec(&self) -> Vec<(LayerKind, u64)> {
        self.into_iter().collect()
    }
}

impl IntoIterator for LayerGroups {
    type Item = (LayerKind, u64);
    type IntoIter =
        std::iter::Take<std::array::IntoIter<(LayerKind, u64), { LayerGroups::CAPACITY }>>;

    fn into_iter(self) -> Self::IntoIter {
        self.groups.into_iter().take(self.len)
    }
}

/// Mixture-of-experts feed-forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Moe {
    pub num_experts: u64,
    pub top_k: u64,
    pub expert_intermediate_size: u64,
    /// Experts every token goes through, beside the routed ones.
    pub shared_experts: u64,
    pub shared_intermediate_size: u64,
    /// A learned scalar gate on the shared experts' output (Qwen MoE): `hidden` parameters.
    pub shared_expert_gate: bool,
    /// The first layers use a dense MLP of `intermediate_size` instead (DeepSeek style).
    pub first_dense_layers: u64,
    /// One learned bias per expert on the router: gpt-oss's router bias, DeepSeek-V3's
    /// `e_score_correction_bias`.
    pub router_bias: bool,
}

/// Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434, §2.1): queries and keys/values
/// pass through low-rank latents, and the cache holds only the key/value latent and one shared
/// rotary key per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mla {
    /// Rank of the query latent; 0 when queries are projected directly (DeepSeek-V2-Lite).
    pub q_lora_rank: u64,
    pub kv_lora_rank: u64,
    /// Per-head query/key width without rotary positions.
    pub qk_nope_head_dim: u64,
    /// Rotary query width per head, and the one rotary key shared by all heads.
    pub qk_rope_head_dim: u64,
    pub v_head_dim: u64,
}

impl Mla {
    /// Query/key width per head.
    pub fn qk_head_dim(&self) -> u64 {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Cached elements per token per layer: the key/value latent and the shared rotary key.
    pub fn cache_width(&self) -> u64 {
        self.kv_lora_rank + self.qk_rope_head_dim
    }
}

/// Gated DeltaNet linear attention (Yang, Kautz and Hatamizadeh, "Gated Delta Networks:
/// Improving Mamba2 with Delta Rule", arXiv:2412.06464), as Qwen3-Next lays it out: one input
/// projection to q, k, v, the output gate z and the per-head decay and write strength, a short
/// causal convolution over q, k and v, the delta-rule scan, a gated RMSNorm and the output
/// projection. Its layers keep a fixed-size state per sequence instead of a KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinearAttention {
    pub key_heads: u64,
    pub key_head_dim: u64,
    /// Value heads: each runs its own scan (keys are shared by value_heads / key_heads of them).
    pub value_heads: u64,
    pub value_head_dim: u64,
    /// Taps of the short causal convolution.
    pub conv_kernel: u64,
    /// Which layers are linear attention (the others are full attention).
    pub layers: LayerMask,
}

impl LinearAttention {
    pub fn key_width(&self) -> u64 {
        self.key_heads.saturating_mul(self.key_head_dim)
    }

    pub fn value_width(&self) -> u64 {
        self.value_heads.saturating_mul(self.value_head_dim)
    }

    /// Channels through the short convolution: q, k and v.
    pub fn conv_width(&self) -> u64 {
        self.key_width()
            .saturating_mul(2)
            .saturating_add(self.value_width())
    }

    /// Width of the input projection: q, k, v, the gate z, and a decay and a write strength per
    /// value head.
    pub fn in_width(&self) -> u64 {
        self.conv_width()
            .saturating_add(self.value_width())
            .saturating_add(self.value_heads.saturating_mul(2))
    }

    /// Recurrent-state elements of one layer per sequence: a key × value matrix per value head.
    pub fn state_elements(&self) -> u64 {
        self.value_heads
            .saturating_mul(self.key_head_dim)
            .saturating_mul(self.value_head_dim)
    }

    /// One layer's parameters: in_proj_qkvz and in_proj_ba, the depthwise convolution (no bias),
    /// dt_bias and A_log per value head, the gated norm over a value head, and out_proj.
    fn params(&self, hidden: u64) -> Option<u64> {
        sum(&[
            hidden.checked_mul(self.in_width())?,
            self.conv_width().checked_mul(self.conv_kernel)?,
            self.value_heads.checked_mul(2)?,
            self.value_head_dim,
            self.value_width().checked_mul(hidden)?,
        ])
    }
}

/// A Mamba-2 mixer (Dao and Gu, "Transformers are SSMs: Generalized Models and Efficient
/// Algorithms Through Structured State Space Duality", 2024), as Nemotron-H lays it out
/// (`modeling_nemotron_h.py`): in_proj from the hidden state to the gate z, the scan input x,
/// B and C per group, and a time step per head; a depthwise causal convolution over x, B and C;
/// dt_bias, A_log and D per head; an RMSNorm over the gated output, per group; and out_proj.
/// Its layers keep a fixed-size state per sequence instead of a KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mamba2 {
    pub heads: u64,
    pub head_dim: u64,
    /// The state size N of each head's scan (`ssm_state_size`).
    pub state_size: u64,
    /// Groups sharing one B and one C (`n_groups`), like key/value heads in GQA.
    pub groups: u64,
    /// Taps of the causal convolution.
    pub conv_kernel: u64,
    pub conv_bias: bool,
    /// Biases on in_proj and out_proj (`use_bias`).
    pub projection_bias: bool,
}

impl Mamba2 {
    /// The scan's width, heads × head_dim (d_inner).
    pub fn inner_width(&self) -> u64 {
        self.heads.saturating_mul(self.head_dim)
    }

    /// Channels through the convolution: x, and B and C for every group.
    pub fn conv_width(&self) -> u64 {
        self.groups
            .saturating_mul(self.state_size)
            .saturating_mul(2)
            .saturating_add(self.inner_width())
    }

    /// Width of the input projection: the gate z, the convolution's channels and a time step
    /// per head.
    pub fn in_width(&self) -> u64 {
        self.inner_width()
            .saturating_add(self.conv_width())
            .saturating_add(self.heads)
    }

    /// Recurrent-state elements of one layer per sequence: a head_dim × state matrix per head.
    pub fn state_elements(&self) -> u64 {
        self.inner_width().saturating_mul(self.state_size)
    }

    /// One mixer's parameters: in_proj, the depthwise convolution, dt_bias, A_log and D per
    /// head, the gated norm's weight and out_proj, with the biases the config asks for.
    fn params(&self, hidden: u64) -> Option<u64> {
        let inner = self.inner_width();
        sum(&[
            hidden.checked_mul(self.in_width())?,
            self.conv_width()
                .checked_mul(self.conv_kernel.checked_add(u64::from(self.conv_bias))?)?,
            self.heads.checked_mul(3)?,
            inner,
            inner.checked_mul(hidden)?,
            if self.projection_bias {
                self.in_width().checked_add(hidden)?
            } else {
                0
            },
        ])
    }
}

/// One layer of an explicit layer pattern: a mixer followed by a feed-forward block (local or
/// global attention, or linear attention), or a single block with its own pre-norm (Nemotron-H).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerBlock {
    /// Windowed attention and a feed-forward block (`L`).
    Local,
    /// Global attention and a feed-forward block (`G`).
    Global,
    /// Linear attention and a feed-forward block (`S`).
    Scan,
    /// A Mamba-2 mixer alone (`M`).
    Mamba,
    /// Global attention alone (`*`).
    Attention,
    /// The dense feed-forward block alone (`-`).
    Mlp,
    /// The mixture-of-experts feed-forward block alone (`E`).
    Experts,
}

impl LayerBlock {
    /// The block a pattern character stands for.
    pub fn of_char(c: char) -> Option<LayerBlock> {
        Some(match c {
            'L' => LayerBlock::Local,
            'G' => LayerBlock::Global,
            'S' => LayerBlock::Scan,
            'M' => LayerBlock::Mamba,
            '*' => LayerBlock::Attention,
            '-' => LayerBlock::Mlp,
            'E' => LayerBlock::Experts,
            _ => return None,
        })
    }
}

/// What a layer holds: a mixer and a feed-forward block, or one of them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Block {
    /// A mixer (attention or linear attention) then a feed-forward block.
    #[default]
    Pair,
    /// A Mamba-2 mixer alone.
    Mamba,
    /// Attention alone.
    Attention,
    /// A feed-forward block alone (dense or MoE).
    Mlp,
}

/// A decoder-only transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub name: String,
    /// Where it was read from (a file path or an embedded name).
    pub source: String,
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub num_layers: u64,
    pub num_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    /// Width of the dense MLP (and of dense-first layers in an MoE model).
    pub intermediate_size: u64,
    pub mlp: Mlp,
    pub norm: Norm,
    /// LayerNorm with a bias (beta) as well as a weight.
    pub norm_bias: bool,
    /// Norms inside each layer: 2 (pre-attention, pre-MLP), 4 for Gemma 2's sandwich norms.
    pub norms_per_layer: u64,
    pub positions: Positions,
    pub max_position_embeddings: u64,
    pub tie_embeddings: bool,
    pub biases: Biases,
    pub sliding_window: Option<SlidingWindow>,
    pub moe: Option<Moe>,
    /// An RMSNorm over each head's queries and over its keys (Qwen3, Gemma 3): one weight of
    /// head_dim for q and one for k per layer.
    pub qk_norm: bool,
    /// One learned attention-sink logit per head per layer (gpt-oss): a softmax column that
    /// absorbs probability and has no value.
    pub attention_sinks: bool,
    /// Multi-head latent attention in place of the q/k/v projections (DeepSeek-V3).
    pub mla: Option<Mla>,
    /// Multi-token-prediction modules (DeepSeek-V3's `num_nextn_predict_layers`), counted
    /// apart from the model (`ParamCount::mtp`) and not run when serving.
    pub mtp_layers: u64,
    /// A sigmoid gate on the attention output, computed by the query projection (Qwen3-Next):
    /// the query projection is twice as wide.
    pub attention_output_gate: bool,
    /// Linear-attention layers between the attention layers (Qwen3-Next). With `layer_blocks`
    /// its `layers` mask is empty: the list says which layers scan.
    pub linear_attention: Option<LinearAttention>,
    /// The Mamba-2 mixer of the layers `layer_blocks` lists as Mamba (Nemotron-H).
    pub mamba: Option<Mamba2>,
    /// Every layer's block, in order, repeating when shorter than the model (at most
    /// `LayerMask::MAX_PERIOD` long, or as long as the model): Nemotron-H's
    /// `hybrid_override_pattern`. When given, it decides each layer's kind in place of the
    /// window and linear-attention masks.
    pub layer_blocks: Option<Vec<LayerBlock>>,
}

/// Parameter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCount {
    pub total: u64,
    /// Parameters one token touches (routed experts: top-k of them).
    pub active: u64,
    /// Input embedding table (plus learned positions).
    pub embedding: u64,
    /// The output head when it is not tied to the embedding; 0 when tied.
    pub lm_head: u64,
    /// `total` minus the embedding tables and untied head.
    pub non_embedding: u64,
    /// `active` minus the embedding tables and untied head.
    pub active_non_embedding: u64,
    /// Multi-token-prediction modules, outside `total`: their own layers, norms and projection
    /// (the embedding and head they share with the model are not counted again).
    pub mtp: u64,
}

/// How one layer is built, for the layers that share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct LayerKind {
    pub moe: bool,
    pub window: Option<u64>,
    /// Linear attention (a scan with a fixed-size state) in place of attention.
    pub linear: bool,
    /// A mixer and a feed-forward block, or one block alone.
    pub block: Block,
}

impl LayerKind {
    /// Whether the layer attends over a KV cache.
    pub fn attends(&self) -> bool {
        match self.block {
            Block::Pair => !self.linear,
            Block::Attention => true,
            Block::Mamba | Block::Mlp => false,
        }
    }

    /// Whether the layer has a feed-forward block.
    pub fn has_feed_forward(&self) -> bool {
        matches!(self.block, Block::Pair | Block::Mlp)
    }
}

/// The kind of layer `index` of a model whose layers `blocks` lists: `moe` when its
/// feed-forward block would route, `window` the size of its local layers' window.
fn listed_layer_kind(
    blocks: &[LayerBlock],
    index: u64,
    moe: bool,
    window: Option<u64>,
) -> LayerKind {
    let pair = LayerKind {
        moe,
        ..LayerKind::default()
    };
    let Some(&block) = blocks.get((index % (blocks.len() as u64).max(1)) as usize) else {
        return pair;
    };
    match block {
        LayerBlock::Local => LayerKind { window, ..pair },
        LayerBlock::Global => pair,
        LayerBlock::Scan => LayerKind {
            linear: true,
            ..pair
        },
        LayerBlock::Mamba => LayerKind {
            block: Block::Mamba,
            ..LayerKind::default()
        },
        LayerBlock::Attention => LayerKind {
            block: Block::Attention,
            ..LayerKind::default()
        },
        LayerBlock::Mlp => LayerKind {
            block: Block::Mlp,
            ..LayerKind::default()
        },
        LayerBlock::Experts => LayerKind {
            block: Block::Mlp,
            moe: true,
            ..LayerKind::default()
        },
    }
}

impl Architecture {
    /// Query width: heads × head_dim (saturating; `validate` bounds it).
    pub fn q_width(&self) -> u64 {
        self.num_heads.saturating_mul(self.head_dim)
    }

    /// Key (or value) width: kv heads × head_dim (saturating; `validate` bounds it).
    pub fn kv_width(&self) -> u64 {
        self.num_kv_heads.saturating_mul(self.head_dim)
    }

    fn mlp_params(&self, intermediate: u64) -> Option<u64> {
        let h = self.hidden_size;
        let mats: u64 = if self.mlp.gated { 3 } else { 2 };
        let bias = if self.biases.mlp {
            ((mats - 1).checked_mul(intermediate)?).checked_add(h)?
        } else {
            0
        };
        limits::product(&[mats, h, intermediate])?.checked_add(bias)
    }

    /// One layer's attention parameters: the projections (or MLA's latent path), their biases,
    /// the per-head q/k norms and the attention sinks.
    fn attention_params(&self) -> Option<u64> {
        let core = match self.mla {
            Some(m) => self.latent_attention_params(m)?,
            None => self.projection_params()?,
        };
        let qk_norm = if self.qk_norm {
            self.head_dim.checked_mul(2)?
        } else {
            0
        };
        let sinks = if self.attention_sinks {
            self.num_heads
        } else {
            0
        };
        sum(&[core, qk_norm, sinks])
    }

    /// q, k, v and output projections with their biases.
    fn projection_params(&self) -> Option<u64> {
        let h = self.hidden_size;
        let (q, kv) = (
            self.num_heads.checked_mul(self.head_dim)?,
            self.num_kv_heads.checked_mul(self.head_dim)?,
        );
        // The output gate doubles the query projection's outputs.
        let q_out = q.checked_mul(1 + u64::from(self.attention_output_gate))?;
        let weights = sum(&[
            h.checked_mul(q_out)?,
            limits::product(&[2, h, kv])?,
            q.checked_mul(h)?,
        ])?;
        let qkv_bias = if self.biases.qkv {
            q_out.checked_add(kv.checked_mul(2)?)?
        } else {
            0
        };
        let out_bias = if self.biases.attn_out { h } else { 0 };
        sum(&[weights, qkv_bias, out_bias])
    }

    /// Multi-head latent attention, as DeepSeek-V3's checkpoint stores it: q_a_proj,
    /// q_a_layernorm and q_b_proj (or one q_proj without a query latent), kv_a_proj_with_mqa
    /// (the latent and the shared rotary key), kv_a_layernorm, kv_b_proj (per-head keys without
    /// rotary positions, and values) and o_proj. Biases, when the config asks for them, sit on
    /// the projections from the hidden state and on o_proj.
    fn latent_attention_params(&self, m: Mla) -> Option<u64> {
        let (h, heads) = (self.hidden_size, self.num_heads);
        let q_out = heads.checked_mul(m.qk_head_dim())?;
        let query = if m.q_lora_rank > 0 {
            sum(&[
                h.checked_mul(m.q_lora_rank)?,
                m.q_lora_rank,
                m.q_lora_rank.checked_mul(q_out)?,
            ])?
        } else {
            h.checked_mul(q_out)?
        };
        let kv_b_out = heads.checked_mul(m.qk_nope_head_dim.checked_add(m.v_head_dim)?)?;
        let key_value = sum(&[
            h.checked_mul(m.cache_width())?,
            m.kv_lora_rank,
            m.kv_lora_rank.checked_mul(kv_b_out)?,
        ])?;
        let out = limits::product(&[heads, m.v_head_dim, h])?;
        let in_bias = if self.biases.qkv {
            let q_in = if m.q_lora_rank > 0 {
                m.q_lora_rank
            } else {
                q_out
            };
            q_in.checked_add(m.cache_width())?
        } else {
            0
        };
        let out_bias = if self.biases.attn_out { h } else { 0 };
        sum(&[query, key_value, out, in_bias, out_bias])
    }

    fn norm_params(&self) -> Option<u64> {
        self.hidden_size
            .checked_mul(if self.norm_bias { 2 } else { 1 })
    }

    /// The kind of layer `index`.
    pub fn layer_kind(&self, index: u64) -> LayerKind {
        let moe = self.moe.is_some_and(|m| index >= m.first_dense_layers);
        if let Some(blocks) = self.layer_blocks.as_deref() {
            return listed_layer_kind(blocks, index, moe, self.sliding_window.map(|w| w.size));
        }
        let linear = self.linear_attention.is_some_and(|l| l.layers.marks(index));
        let window = self.sliding_window.filter(|_| !linear).and_then(|w| {
            let applies = match w.layers {
                WindowLayers::All => true,
                WindowLayers::Even => index.is_multiple_of(2),
                WindowLayers::From(first) => index >= first,
                WindowLayers::Pattern(mask) => mask.marks(index),
                WindowLayers::Listed => false,
            };
            applies.then_some(w.size)
        });
        LayerKind {
            moe,
            window,
            linear,
            block: Block::Pair,
        }
    }

    /// The period after which the layer kinds repeat, away from the cuts of `layer_groups`.
    fn kind_period(&self) -> u64 {
        if let Some(blocks) = &self.layer_blocks {
            return (blocks.len() as u64).max(1);
        }
        let window = match self.sliding_window.map(|w| w.layers) {
            Some(WindowLayers::Even) => 2,
            Some(WindowLayers::Pattern(mask)) => mask.period.max(1),
            _ => 1,
        };
        let linear = self.linear_attention.map_or(1, |l| l.layers.period.max(1));
        window / gcd(window, linear) * linear
    }

    /// Distinct layer kinds and how many layers have each, in first-seen order. Counted in closed
    /// form (the kinds change only at the first MoE layer and the first windowed layer, and
    /// otherwise repeat with the window pattern's period), so the work does not grow with the
    /// number of layers, and kept inline (no allocation: pricing calls this for every candidate).
    pub fn layer_groups(&self) -> LayerGroups {
        let layers = self.num_layers;
        // Indices where a kind can change, besides the period: at most four, sorted below.
        let mut cuts = [0, layers, layers, layers];
        if let Some(m) = self.moe {
            cuts[2] = m.first_dense_layers.min(layers);
        }
        if let Some(SlidingWindow {
            layers: WindowLayers::From(first),
            ..
        }) = self.sliding_window
        {
            cuts[3] = first.min(layers);
        }
        cuts.sort_unstable();
        let period = self.kind_period();
        let mut groups = LayerGroups::default();
        let mut firsts = [0u64; LayerGroups::CAPACITY];
        let mut add = |first: u64, count: u64| {
            let kind = self.layer_kind(first);
            let len = groups.len;
            match groups.groups[..len].iter().position(|(k, _)| *k == kind) {
                Some(i) => {
                    groups.groups[i].1 += count;
                    firsts[i] = firsts[i].min(first);
                }
                None => {
                    groups.groups[len] = (kind, count);
                    firsts[len] = first;
                    groups.len += 1;
                }
            }
        };
        for pair in cuts.windows(2) {
            let (lo, hi) = (pair[0], pair[1]);
            // Each residue class modulo the period within lo..hi: its first index and count.
            for r in 0..period.min(hi.saturating_sub(lo)) {
                let first = lo + r;
                add(first, (hi - 1 - first) / period + 1);
            }
        }
        // First-seen order (insertion sort on at most eight).
        let n = groups.len;
        for i in 1..n {
            let mut j = i;
            while j > 0 && firsts[j - 1] > firsts[j] {
                firsts.swap(j - 1, j);
                groups.groups.swap(j - 1, j);
                j -= 1;
            }
        }
        groups
    }

    /// (total, active) parameters of one layer of `kind`; None on overflow. A layer of one block
    /// has one norm, before it.
    fn layer_params(&self, kind: LayerKind) -> Option<(u64, u64)> {
        let norm = self.norm_params()?;
        let alone = |block: u64| block.checked_add(norm).map(|p| (p, p));
        match (kind.block, self.mamba) {
            (Block::Mamba, Some(m)) => return alone(m.params(self.hidden_size)?),
            (Block::Attention, _) => return alone(self.attention_params()?),
            (Block::Mlp, _) => return self.feed_forward_params(kind, norm),
            _ => {}
        }
        let mixer = match (kind.linear, self.linear_attention) {
            (true, Some(l)) => l.params(self.hidden_size)?,
            _ => self.attention_params()?,
        };
        let fixed = mixer.checked_add(self.norms_per_layer.checked_mul(norm)?)?;
        self.feed_forward_params(kind, fixed)
    }

    /// (total, active) parameters of a layer's feed-forward block (dense, or MoE in a layer of
    /// `kind` that routes) plus `fixed`, the rest of the layer; None on overflow.
    fn feed_forward_params(&self, kind: LayerKind, fixed: u64) -> Option<(u64, u64)> {
        match (kind.moe, self.moe) {
            (true, Some(m)) => {
                let expert = self.mlp_params(m.expert_intermediate_size)?;
                let shared = m
                    .shared_experts
                    .checked_mul(self.mlp_params(m.shared_intermediate_size)?)?
                    .checked_add(if m.shared_expert_gate {
                        self.hidden_size
                    } else {
                        0
                    })?;
                let router =
                    (self.hidden_size + u64::from(m.router_bias)).checked_mul(m.num_experts)?;
                let common = sum(&[fixed, router, shared])?;
                Some((
                    common.checked_add(m.num_experts.checked_mul(expert)?)?,
                    common.checked_add(m.top_k.checked_mul(expert)?)?,
                ))
            }
            _ => {
                let dense = fixed.checked_add(self.mlp_params(self.intermediate_size)?)?;
                Some((dense, dense))
            }
        }
    }

    /// Parameter counts with checked arithmetic: None when a count does not fit a u64 (a
    /// validated architecture always fits, see `limits::PARAMS`).
    pub fn checked_params(&self) -> Option<ParamCount> {
        let h = self.hidden_size;
        let positions = match self.positions {
            Positions::Learned => self.max_position_embeddings.checked_mul(h)?,
            Positions::Rotary | Positions::None => 0,
        };
        let table = self.vocab_size.checked_mul(h)?;
        let embedding = table.checked_add(positions)?;
        let lm_head = if self.tie_embeddings { 0 } else { table };
        let (mut layers_total, mut layers_active) = (0u64, 0u64);
        for (kind, count) in self.layer_groups() {
            let (t, a) = self.layer_params(kind)?;
            layers_total = layers_total.checked_add(t.checked_mul(count)?)?;
            layers_active = layers_active.checked_add(a.checked_mul(count)?)?;
        }
        let non_embedding = layers_total.checked_add(self.norm_params()?)?;
        let active_non_embedding = layers_active.checked_add(self.norm_params()?)?;
        Some(ParamCount {
            total: sum(&[embedding, lm_head, non_embedding])?,
            active: sum(&[embedding, lm_head, active_non_embedding])?,
            embedding,
            lm_head,
            non_embedding,
            active_non_embedding,
            mtp: self.mtp_layers.checked_mul(self.mtp_module_params()?)?,
        })
    }

    /// One multi-token-prediction module (DeepSeek-V3 technical report, arXiv:2412.19437,
    /// §2.2): RMSNorms on the hidden state and on the next token's embedding, the projection of
    /// their concatenation (2h → h), one layer of the kind that would follow the last, and its
    /// own final norm. The embedding and output head are the model's.
    fn mtp_module_params(&self) -> Option<u64> {
        let h = self.hidden_size;
        let (layer, _) = self.layer_params(self.layer_kind(self.num_layers))?;
        sum(&[
            self.norm_params()?.checked_mul(3)?,
            limits::product(&[2, h, h])?,
            layer,
        ])
    }

    /// Parameter counts. Every count of a validated architecture fits; one that would overflow
    /// (an architecture built without `validate`) reads u64::MAX instead of wrapping.
    pub fn params(&self) -> ParamCount {
        self.checked_params().unwrap_or(ParamCount {
            total: u64::MAX,
            active: u64::MAX,
            embedding: u64::MAX,
            lm_head: u64::MAX,
            non_embedding: u64::MAX,
            active_non_embedding: u64::MAX,
            mtp: u64::MAX,
        })
    }

    /// KV-cache elements one layer keeps per token: keys and values, or MLA's latent and
    /// shared rotary key.
    pub fn kv_elements_per_layer_token(&self) -> u64 {
        match self.mla {
            Some(m) => m.cache_width(),
            None => self.kv_width().saturating_mul(2),
        }
    }

    /// KV-cache elements per token (all attention layers, before any window cap; linear-attention
    /// layers keep a state instead). Multiply by the cache dtype's size for bytes.
    pub fn kv_elements_per_token(&self) -> u64 {
        self.attention_layers()
            .saturating_mul(self.kv_elements_per_layer_token())
    }

    /// Layers that attend and keep a KV cache (not the linear-attention, Mamba-2 or
    /// feed-forward-only ones).
    pub fn attention_layers(&self) -> u64 {
        self.layer_groups()
            .into_iter()
            .filter(|(kind, _)| kind.attends())
            .map(|(_, count)| count)
            .sum()
    }

    /// Linear-attention layers (each with a fixed-size state per sequence).
    pub fn linear_layers(&self) -> u64 {
        self.count_layers(|kind| kind.linear)
    }

    /// Mamba-2 layers (each with a fixed-size state per sequence).
    pub fn mamba_layers(&self) -> u64 {
        self.count_layers(|kind| kind.block == Block::Mamba)
    }

    fn count_layers(&self, which: impl Fn(LayerKind) -> bool) -> u64 {
        self.layer_groups()
            .into_iter()
            .filter(|&(kind, _)| which(kind))
            .map(|(_, count)| count)
            .sum()
    }

    /// Checks sizes are positive and within `limits`, shapes are consistent, and the parameter
    /// count fits; `file` names the input in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        use limits::{at_most, product_at_most, show};
        if let Some(m) = self.mla {
            self.validate_mla(file, m)?;
        }
        at_most(self.mtp_layers, limits::LAYERS)
            .map_err(|e| Error::field(file, "mtp_layers", e))?;
        if let Some(l) = self.linear_attention {
            validate_linear_attention(file, l)?;
        }
        if let Some(m) = self.mamba {
            validate_mamba(file, m)?;
        }
        let sizes = [
            ("vocab_size", self.vocab_size, limits::VOCAB),
            ("hidden_size", self.hidden_size, limits::HIDDEN),
            ("num_layers", self.num_layers, limits::LAYERS),
            ("num_heads", self.num_heads, limits::HEADS),
            ("num_kv_heads", self.num_kv_heads, limits::HEADS),
            ("head_dim", self.head_dim, limits::HEAD_DIM),
            (
                "intermediate_size",
                self.intermediate_size,
                limits::INTERMEDIATE,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                limits::POSITIONS,
            ),
            (
                "norms_per_layer",
                self.norms_per_layer,
                limits::NORMS_PER_LAYER,
            ),
        ];
        for (field, v, _) in sizes {
            if v == 0 {
                return Err(Error::field(file, field, "must be positive, got 0"));
            }
        }
        for (field, v, limit) in sizes {
            at_most(v, limit).map_err(|e| Error::field(file, field, e))?;
        }
        if let Some(blocks) = &self.layer_blocks {
            self.validate_layer_blocks(file, blocks)?;
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(Error::field(
                file,
                "num_kv_heads",
                format!(
                    "{} key/value heads do not divide {} query heads",
                    self.num_kv_heads, self.num_heads
                ),
            ));
        }
        product_at_most(&[self.num_heads, self.head_dim], limits::ATTENTION_WIDTH).map_err(
            |e| {
                Error::field(
                    file,
                    "head_dim",
                    format!(
                        "{} heads x head_dim {}: a query width of {e}",
                        self.num_heads, self.head_dim
                    ),
                )
            },
        )?;
        if let Some(w) = self.sliding_window {
            if w.size == 0 {
                return Err(Error::field(
                    file,
                    "sliding_window",
                    "must be positive, got 0",
                ));
            }
            at_most(w.size, limits::POSITIONS)
                .map_err(|e| Error::field(file, "sliding_window", e))?;
            match w.layers {
                WindowLayers::From(first) => {
                    at_most(first, limits::LAYERS)
                        .map_err(|e| Error::field(file, "max_window_layers", e))?;
                }
                WindowLayers::Pattern(mask) => validate_mask(file, "layer_pattern", mask)?,
                WindowLayers::Listed if self.layer_blocks.is_none() => {
                    return Err(Error::field(
                        file,
                        "layer_pattern",
                        "missing while the window's layers are listed",
                    ));
                }
                WindowLayers::All | WindowLayers::Even | WindowLayers::Listed => {}
            }
        }
        if let Some(m) = self.moe {
            for (field, v) in [
                ("moe.num_experts", m.num_experts),
                ("moe.top_k", m.top_k),
                ("moe.expert_intermediate_size", m.expert_intermediate_size),
            ] {
                if v == 0 {
                    return Err(Error::field(file, field, "must be positive, got 0"));
                }
            }
            for (field, v, limit) in [
                ("moe.num_experts", m.num_experts, limits::EXPERTS),
                ("moe.top_k", m.top_k, limits::TOP_K),
                (
                    "moe.expert_intermediate_size",
                    m.expert_intermediate_size,
                    limits::INTERMEDIATE,
                ),
                (
                    "moe.shared_experts",
                    m.shared_experts,
                    limits::SHARED_EXPERTS,
                ),
                (
                    "moe.shared_intermediate_size",
                    m.shared_intermediate_size,
                    limits::INTERMEDIATE,
                ),
            ] {
                at_most(v, limit).map_err(|e| Error::field(file, field, e))?;
            }
            if m.top_k > m.num_experts {
                return Err(Error::field(
                    file,
                    "moe.top_k",
                    format!(
                        "routes each token to {} experts but there are only {}",
                        m.top_k, m.num_experts
                    ),
                ));
            }
            if m.shared_experts > 0 && m.shared_intermediate_size == 0 {
                return Err(Error::field(
                    file,
                    "moe.shared_intermediate_size",
                    "must be positive when there are shared experts",
                ));
            }
            product_at_most(
                &[m.shared_experts, m.shared_intermediate_size],
                limits::INTERMEDIATE,
            )
            .map_err(|e| {
                Error::field(
                    file,
                    "moe.shared_intermediate_size",
                    format!(
                        "{} shared experts x {}: a shared width of {e}",
                        m.shared_experts, m.shared_intermediate_size
                    ),
                )
            })?;
            if m.first_dense_layers > self.num_layers {
                return Err(Error::field(
                    file,
                    "moe.first_dense_layers",
                    format!("exceeds the {} layers", self.num_layers),
                ));
            }
        }
        match self.checked_params() {
            Some(p) if p.total <= limits::PARAMS => Ok(()),
            Some(p) => Err(Error::field(
                file,
                "(parameters)",
                format!(
                    "{} in total exceeds the limit of {}",
                    p.total,
                    show(limits::PARAMS)
                ),
            )),
            None => Err(Error::field(
                file,
                "(parameters)",
                format!(
                    "more than 2^64 in total exceeds the limit of {}",
                    show(limits::PARAMS)
                ),
            )),
        }
    }
}

impl Architecture {
    /// A layer list repeats within `LayerMask::MAX_PERIOD` layers or lists every layer, and each
    /// block it names has what it needs.
    fn validate_layer_blocks(&self, file: &str, blocks: &[LayerBlock]) -> Result<()> {
        let n = blocks.len() as u64;
        if n == 0 || (n > LayerMask::MAX_PERIOD && n != self.num_layers) {
            return Err(Error::field(
                file,
                "layer_pattern",
                format!(
                    "has {n} layers; a pattern repeats within 1 to {} layers or lists all {}",
                    LayerMask::MAX_PERIOD,
                    self.num_layers
                ),
            ));
        }
        let needs = [
            (
                LayerBlock::Local,
                self.sliding_window.is_some(),
                "sliding_window",
                "local (L)",
            ),
            (
                LayerBlock::Scan,
                self.linear_attention.is_some(),
                "linear_attention",
                "linear-attention (S)",
            ),
            (
                LayerBlock::Mamba,
                self.mamba.is_some(),
                "mamba",
                "Mamba-2 (M)",
            ),
            (LayerBlock::Experts, self.moe.is_some(), "moe", "MoE (E)"),
        ];
        for (block, present, field, what) in needs {
            if !present && blocks.contains(&block) {
                return Err(Error::field(
                    file,
                    field,
                    format!("missing while layer_pattern has {what} layers"),
                ));
            }
        }
        Ok(())
    }

    /// MLA's sizes are positive and within limits, its heads all have their own keys, and
    /// `head_dim` is the query/key width it implies.
    fn validate_mla(&self, file: &str, m: Mla) -> Result<()> {
        use limits::at_most;
        for (field, v, limit) in [
            ("kv_lora_rank", m.kv_lora_rank, limits::INTERMEDIATE),
            ("qk_nope_head_dim", m.qk_nope_head_dim, limits::HEAD_DIM),
            ("qk_rope_head_dim", m.qk_rope_head_dim, limits::HEAD_DIM),
            ("v_head_dim", m.v_head_dim, limits::HEAD_DIM),
        ] {
            if v == 0 {
                return Err(Error::field(file, field, "must be positive, got 0"));
            }
            at_most(v, limit).map_err(|e| Error::field(file, field, e))?;
        }
        at_most(m.q_lora_rank, limits::INTERMEDIATE)
            .map_err(|e| Error::field(file, "q_lora_rank", e))?;
        at_most(m.qk_head_dim(), limits::HEAD_DIM)
            .map_err(|e| Error::field(file, "qk_rope_head_dim", e))?;
        if self.head_dim != m.qk_head_dim() {
            return Err(Error::field(
                file,
                "head_dim",
                format!(
                    "is {} but MLA's query/key width is qk_nope_head_dim + qk_rope_head_dim = {}",
                    self.head_dim,
                    m.qk_head_dim()
                ),
            ));
        }
        if self.num_kv_heads != self.num_heads {
            return Err(Error::field(
                file,
                "num_kv_heads",
                "must equal num_heads with MLA (every head decompresses its own keys)",
            ));
        }
        if self.qk_norm {
            return Err(Error::field(
                file,
                "qk_norm",
                "applies to projected queries and keys, not to MLA's latents",
            ));
        }
        Ok(())
    }
}

/// Linear attention's sizes are positive and within limits, and its key heads divide its value
/// heads.
fn validate_linear_attention(file: &str, l: LinearAttention) -> Result<()> {
    use limits::at_most;
    for (field, v, limit) in [
        ("linear_attention.key_heads", l.key_heads, limits::HEADS),
        (
            "linear_attention.key_head_dim",
            l.key_head_dim,
            limits::HEAD_DIM,
        ),
        ("linear_attention.value_heads", l.value_heads, limits::HEADS),
        (
            "linear_attention.value_head_dim",
            l.value_head_dim,
            limits::HEAD_DIM,
        ),
        (
            "linear_attention.conv_kernel",
            l.conv_kernel,
            limits::CONV_KERNEL,
        ),
    ] {
        if v == 0 {
            return Err(Error::field(file, field, "must be positive, got 0"));
        }
        at_most(v, limit).map_err(|e| Error::field(file, field, e))?;
    }
    for (field, width) in [
        ("linear_attention.key_heads", l.key_width()),
        ("linear_attention.value_heads", l.value_width()),
    ] {
        at_most(width, limits::ATTENTION_WIDTH)
            .map_err(|e| Error::field(file, field, format!("a width of {e}")))?;
    }
    if !l.value_heads.is_multiple_of(l.key_heads) {
        return Err(Error::field(
            file,
            "linear_attention.key_heads",
            format!(
                "{} key heads do not divide {} value heads",
                l.key_heads, l.value_heads
            ),
        ));
    }
    validate_mask(file, "layer_pattern", l.layers)
}

/// Mamba-2's sizes are positive and within limits, and its groups divide its heads.
fn validate_mamba(file: &str, m: Mamba2) -> Result<()> {
    use limits::at_most;
    for (field, v, limit) in [
        ("mamba.heads", m.heads, limits::HEADS),
        ("mamba.head_dim", m.head_dim, limits::HEAD_DIM),
        ("mamba.state_size", m.state_size, limits::HEAD_DIM),
        ("mamba.groups", m.groups, limits::HEADS),
        ("mamba.conv_kernel", m.conv_kernel, limits::CONV_KERNEL),
    ] {
        if v == 0 {
            return Err(Error::field(file, field, "must be positive, got 0"));
        }
        at_most(v, limit).map_err(|e| Error::field(file, field, e))?;
    }
    for (field, factors) in [
        ("mamba.head_dim", [m.heads, m.head_dim]),
        ("mamba.state_size", [m.groups, m.state_size]),
    ] {
        limits::product_at_most(&factors, limits::ATTENTION_WIDTH)
            .map_err(|e| Error::field(file, field, format!("a width of {e}")))?;
    }
    if !m.heads.is_multiple_of(m.groups) {
        return Err(Error::field(
            file,
            "mamba.groups",
            format!("{} groups do not divide {} heads", m.groups, m.heads),
        ));
    }
    Ok(())
}

/// A layer pattern has a period of 1 to 64 and marks nothing beyond it.
fn validate_mask(file: &str, field: &str, mask: LayerMask) -> Result<()> {
    if mask.period == 0 || mask.period > LayerMask::MAX_PERIOD {
        return Err(Error::field(
            file,
            field,
            format!(
                "repeats every {} layers; 1 to {} are supported",
                mask.period,
                LayerMask::MAX_PERIOD
            ),
        ));
    }
    if mask.period < 64 && mask.bits >> mask.period != 0 {
        return Err(Error::field(file, field, "marks layers beyond its period"));
    }
    Ok(())
}

/// The greatest common divisor of two positive numbers.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The sum of `terms`, or None on overflow.
fn sum(terms: &[u64]) -> Option<u64> {
    terms.iter().try_fold(0u64, |s, &t| s.checked_add(t))
}

// ---------------------------------------------------------------------------------------------
// Hugging Face config.json

/// Reads the fields of a JSON object, naming the file and field in every error.
struct Fields<'a> {
    file: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn u64_opt(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => Err(Error::field(
                    self.file,
                    key,
                    format!("expected a non-negative integer, got {v}"),
                )),
            },
        }
    }

    fn u64(&self, key: &str) -> Result<u64> {
        self.u64_opt(key)?
            .ok_or_else(|| Error::field(self.file, key, "missing"))
    }

    /// The first of several alternative keys that is present.
    fn u64_any(&self, keys: &[&str]) -> Result<u64> {
        for k in keys {
            if let Some(v) = self.u64_opt(k)? {
                return Ok(v);
            }
        }
        Err(Error::field(self.file, keys[0], "missing"))
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(Error::field(
                self.file,
                key,
                format!("expected true or false, got {v}"),
            )),
        }
    }

    fn str_opt(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(Error::field(
                self.file,
                key,
                format!("expected a string, got {v}"),
            )),
        }
    }

    fn activation(&self, keys: &[&str], default: &str) -> Result<Activation> {
        let mut found = None;
        for k in keys {
            if let Some(s) = self.str_opt(k)? {
                found = Some((*k, s));
                break;
            }
        }
        let (key, name) = found.unwrap_or((keys[0], default));
        parse_activation(name).ok_or_else(|| {
            Error::field(
                self.file,
                key,
                format!("unsupported activation '{name}' (supported: silu, gelu*, relu, relu2)"),
            )
        })
    }
}

fn parse_activation(name: &str) -> Option<Activation> {
    match name {
        "silu" | "swish" => Some(Activation::Silu),
        "relu" => Some(Activation::Relu),
        "relu2" => Some(Activation::Relu2),
        n if n.starts_with("gelu") => Some(Activation::Gelu),
        _ => None,
    }
}

/// Model types the importer understands.
pub const HF_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "qwen3_next",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "gpt_oss",
    "deepseek_v3",
    "nemotron_h",
    "gpt2",
];

/// Builds an architecture from the text of a Hugging Face `config.json`.
pub fn from_hf_config(file: &str, text: &str) -> Result<Architecture> {
    let text = crate::error::strip_bom(text);
    let value: Value = serde_json::from_str(text).map_err(|e| Error::File {
        file: file.to_string(),
        message: format!("invalid JSON: {e}"),
    })?;
    let obj = value
        .as_object()
        .ok_or_else(|| Error::field(file, "(top level)", "expected a JSON object"))?;
    let f = Fields { file, obj };
    let model_type = f
        .str_opt("model_type")?
        .ok_or_else(|| Error::field(file, "model_type", "missing"))?;
    let name = f
        .str_opt("_name_or_path")?
        .map(str::to_string)
        .unwrap_or_else(|| {
            Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| model_type.to_string())
        });
    if model_type == "gemma3" {
        return gemma3_multimodal(&f, name);
    }
    let arch = match model_type {
        "gpt2" => gpt2(&f, name)?,
        "llama" | "mistral" | "mixtral" | "qwen2" | "qwen2_moe" | "qwen3" | "qwen3_moe"
        | "gemma" | "gemma2" => llama_family(&f, model_type, name)?,
        "gemma3_text" => llama_family(&gemma3_defaults(&f).as_fields(), model_type, name)?,
        "gpt_oss" => gpt_oss(&f, name)?,
        "qwen3_next" => qwen3_next(&f, name)?,
        "deepseek_v3" => deepseek_v3(&f, name)?,
        "nemotron_h" => nemotron_h(&f, name)?,
        other => {
            return Err(Error::field(
                file,
                "model_type",
                format!(
                    "unsupported model_type '{other}' (supported: {})",
                    HF_MODEL_TYPES.join(", ")
                ),
            ));
        }
    };
    arch.validate(file)
        .map_err(|e| hf_field_names(e, model_type))?;
    Ok(arch)
}

/// Renames a validation error's field from gpucost's name to the config.json key it came from.
fn hf_field_names(e: Error, model_type: &str) -> Error {
    let Error::Field {
        file,
        field,
        message,
    } = e
    else {
        return e;
    };
    let renamed = match (model_type, field.as_str()) {
        ("gpt2", "hidden_size") => "n_embd",
        ("gpt2", "num_layers") => "n_layer",
        ("gpt2", "num_heads" | "num_kv_heads") => "n_head",
        ("gpt2", "intermediate_size") => "n_inner",
        ("gpt2", "max_position_embeddings") => "n_positions",
        (_, "num_layers") => "num_hidden_layers",
        (_, "num_heads") => "num_attention_heads",
        (_, "num_kv_heads") => "num_key_value_heads",
        ("mixtral" | "gpt_oss", "moe.num_experts") => "num_local_experts",
        ("mixtral" | "gpt_oss", "moe.expert_intermediate_size") => "intermediate_size",
        ("deepseek_v3", "moe.num_experts") => "n_routed_experts",
        ("deepseek_v3", "moe.shared_experts") => "n_shared_experts",
        ("deepseek_v3", "moe.shared_intermediate_size") => "moe_intermediate_size",
        ("deepseek_v3", "moe.first_dense_layers") => "first_k_dense_replace",
        ("deepseek_v3", "head_dim") => "qk_nope_head_dim",
        ("deepseek_v3", "mtp_layers") => "num_nextn_predict_layers",
        ("nemotron_h", "layer_pattern") => "hybrid_override_pattern",
        ("nemotron_h", "mamba.heads") => "mamba_num_heads",
        ("nemotron_h", "mamba.head_dim") => "mamba_head_dim",
        ("nemotron_h", "mamba.state_size") => "ssm_state_size",
        ("nemotron_h", "mamba.groups") => "n_groups",
        ("nemotron_h", "mamba.conv_kernel") => "conv_kernel",
        ("nemotron_h", "moe.num_experts") => "n_routed_experts",
        ("nemotron_h", "moe.shared_experts") => "n_shared_experts",
        ("nemotron_h", "moe.shared_intermediate_size") => "moe_shared_expert_intermediate_size",
        (_, "layer_pattern") => "layer_types",
        ("qwen3_next", "linear_attention.key_heads") => "linear_num_key_heads",
        ("qwen3_next", "linear_attention.key_head_dim") => "linear_key_head_dim",
        ("qwen3_next", "linear_attention.value_heads") => "linear_num_value_heads",
        ("qwen3_next", "linear_attention.value_head_dim") => "linear_value_head_dim",
        ("qwen3_next", "linear_attention.conv_kernel") => "linear_conv_kernel_dim",
        (_, "moe.num_experts") => "num_experts",
        (_, "moe.top_k") => "num_experts_per_tok",
        (_, "moe.expert_intermediate_size") => "moe_intermediate_size",
        (_, "moe.shared_intermediate_size") => "shared_expert_intermediate_size",
        (_, other) => other,
    };
    Error::Field {
        file,
        field: renamed.to_string(),
        message,
    }
}

/// hidden ÷ heads, the head dim a config implies when it gives none; the heads must divide the
/// hidden size (a remainder would be a silently different model).
fn implied_head_dim(
    file: &str,
    heads_key: &str,
    hidden_key: &str,
    heads: u64,
    hidden: u64,
) -> Result<u64> {
    // A size beyond its limit is refused by `validate`, by name.
    if hidden > 0 && hidden <= limits::HIDDEN && !hidden.is_multiple_of(heads) {
        return Err(Error::field(
            file,
            heads_key,
            format!("{heads} heads do not divide {hidden_key} {hidden} (give head_dim)"),
        ));
    }
    Ok(hidden / heads)
}

fn gpt2(f: &Fields, name: String) -> Result<Architecture> {
    let hidden = f.u64("n_embd")?;
    let heads = f.u64("n_head")?;
    if heads == 0 {
        return Err(Error::field(f.file, "n_head", "must be positive, got 0"));
    }
    let head_dim = implied_head_dim(f.file, "n_head", "n_embd", heads, hidden)?;
    let inner = f.u64_opt("n_inner")?.unwrap_or(hidden.saturating_mul(4));
    Ok(Architecture {
        name,
        source: f.file.to_string(),
        vocab_size: f.u64("vocab_size")?,
        hidden_size: hidden,
        num_layers: f.u64("n_layer")?,
        num_heads: heads,
        num_kv_heads: heads,
        head_dim,
        intermediate_size: inner,
        mlp: Mlp {
            gated: false,
            activation: f.activation(&["activation_function"], "gelu_new")?,
        },
        norm: Norm::LayerNorm,
        norm_bias: true,
        norms_per_layer: 2,
        positions: Positions::Learned,
        max_position_embeddings: f.u64("n_positions")?,
        tie_embeddings: f.bool_or("tie_word_embeddings", true)?,
        biases: Biases {
            qkv: true,
            attn_out: true,
            mlp: true,
        },
        sliding_window: None,
        moe: None,
        qk_norm: false,
        attention_sinks: false,
        mla: None,
        mtp_layers: 0,
        attention_output_gate: false,
        linear_attention: None,
        mamba: None,
        layer_blocks: None,
    })
}

fn llama_family(f: &Fields, model_type: &str, name: String) -> Result<Architecture> {
    let hidden = f.u64("hidden_size")?;
    let heads = f.u64("num_attention_heads")?;
    if heads == 0 {
        return Err(Error::field(
            f.file,
            "num_attention_heads",
            "must be positive, got 0",
        ));
    }
    let kv_heads = f.u64_opt("num_key_value_heads")?.unwrap_or(heads);
    let head_dim = match f.u64_opt("head_dim")? {
        Some(d) => d,
        None => implied_head_dim(f.file, "num_attention_heads", "hidden_size", heads, hidden)?,
    };
    let gemma = model_type.starts_with("gemma");
    let qwen = model_type.starts_with("qwen2");
    let qk_norm = matches!(
        model_type,
        "qwen3" | "qwen3_moe" | "qwen3_next" | "gemma3_text"
    );
    let attention_bias = f.bool_or("attention_bias", false)?;
    let biases = Biases {
        qkv: qwen || attention_bias,
        attn_out: attention_bias,
        mlp: f.bool_or("mlp_bias", false)?,
    };
    let activation = if gemma {
        f.activation(&["hidden_activation", "hidden_act"], "gelu_pytorch_tanh")?
    } else {
        f.activation(&["hidden_act"], "silu")?
    };
    let window_size = f.u64_opt("sliding_window")?;
    let sliding_window = match model_type {
        "mistral" | "mixtral" => window_size.map(|size| SlidingWindow {
            size,
            layers: WindowLayers::All,
        }),
        "gemma2" => window_size.map(|size| SlidingWindow {
            size,
            layers: WindowLayers::Even,
        }),
        "gemma3_text" => gemma3_window(f, window_size)?,
        "qwen2" | "qwen2_moe" | "qwen3" | "qwen3_moe"
            if f.bool_or("use_sliding_window", false)? =>
        {
            match window_size {
                Some(size) => Some(SlidingWindow {
                    size,
                    layers: WindowLayers::From(f.u64_opt("max_window_layers")?.unwrap_or(0)),
                }),
                None => {
                    return Err(Error::field(
                        f.file,
                        "sliding_window",
                        "missing while use_sliding_window is true",
                    ));
                }
            }
        }
        _ => None,
    };
    let moe = match model_type {
        "mixtral" => Some(Moe {
            num_experts: f.u64("num_local_experts")?,
            top_k: f.u64("num_experts_per_tok")?,
            expert_intermediate_size: f.u64("intermediate_size")?,
            shared_experts: 0,
            shared_intermediate_size: 0,
            shared_expert_gate: false,
            first_dense_layers: 0,
            router_bias: false,
        }),
        "qwen2_moe" | "qwen3_moe" | "qwen3_next" => {
            if f.u64_opt("decoder_sparse_step")?.unwrap_or(1) != 1 {
                return Err(Error::field(
                    f.file,
                    "decoder_sparse_step",
                    "only 1 (every layer sparse) is supported",
                ));
            }
            if f.get("mlp_only_layers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return Err(Error::field(
                    f.file,
                    "mlp_only_layers",
                    "dense layers between sparse ones are not supported",
                ));
            }
            let shared = f.u64_opt("shared_expert_intermediate_size")?.unwrap_or(0);
            Some(Moe {
                num_experts: f.u64("num_experts")?,
                top_k: f.u64("num_experts_per_tok")?,
                expert_intermediate_size: f.u64("moe_intermediate_size")?,
                shared_experts: u64::from(shared > 0),
                shared_intermediate_size: shared,
                shared_expert_gate: shared > 0,
                first_dense_layers: 0,
                router_bias: false,
            })
        }
        _ => None,
    };
    Ok(Architecture {
        name,
        source: f.file.to_string(),
        vocab_size: f.u64("vocab_size")?,
        hidden_size: hidden,
        num_layers: f.u64("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        intermediate_size: f.u64("intermediate_size")?,
        mlp: Mlp {
            gated: true,
            activation,
        },
        norm: Norm::RmsNorm,
        norm_bias: false,
        norms_per_layer: if matches!(model_type, "gemma2" | "gemma3_text") {
            4
        } else {
            2
        },
        positions: Positions::Rotary,
        max_position_embeddings: f.u64_any(&["max_position_embeddings"])?,
        tie_embeddings: f.bool_or("tie_word_embeddings", gemma)?,
        biases,
        sliding_window,
        moe,
        qk_norm,
        attention_sinks: false,
        mla: None,
        mtp_layers: 0,
        attention_output_gate: false,
        linear_attention: None,
        mamba: None,
        layer_blocks: None,
    })
}

/// Gemma3TextConfig's defaults in Hugging Face transformers, for the sizes a Gemma 3 config may
/// leave out (the multimodal checkpoints' `text_config` names only what differs from them).
const GEMMA3_TEXT_DEFAULTS: &[(&str, u64)] = &[
    ("vocab_size", 262_208),
    ("num_attention_heads", 8),
    ("num_key_value_heads", 4),
    ("head_dim", 256),
    ("max_position_embeddings", 131_072),
    ("sliding_window", 4096),
    ("sliding_window_pattern", 6),
];

/// A config object of our own making, read like one from a file.
struct OwnedFields<'a> {
    file: &'a str,
    obj: Map<String, Value>,
}

impl OwnedFields<'_> {
    fn as_fields(&self) -> Fields<'_> {
        Fields {
            file: self.file,
            obj: &self.obj,
        }
    }
}

/// `f` with Gemma 3's defaults for the sizes it leaves out.
fn gemma3_defaults<'a>(f: &Fields<'a>) -> OwnedFields<'a> {
    let mut obj = f.obj.clone();
    for (key, value) in GEMMA3_TEXT_DEFAULTS {
        if f.get(key).is_none() {
            obj.insert((*key).to_string(), Value::from(*value));
        }
    }
    OwnedFields { file: f.file, obj }
}

/// A multimodal Gemma 3 config: its language model, from `text_config`. The vision tower (a
/// SigLIP encoder) and the multimodal projector are not counted or priced.
fn gemma3_multimodal(f: &Fields, name: String) -> Result<Architecture> {
    let text = f
        .get("text_config")
        .ok_or_else(|| Error::field(f.file, "text_config", "missing"))?
        .as_object()
        .ok_or_else(|| Error::field(f.file, "text_config", "expected a JSON object"))?;
    let inner = Fields {
        file: f.file,
        obj: text,
    };
    let text_model = gemma3_defaults(&inner);
    llama_family(&text_model.as_fields(), "gemma3_text", name)
        .and_then(|a| {
            a.validate(f.file)
                .map_err(|e| hf_field_names(e, "gemma3_text"))?;
            Ok(a)
        })
        .map_err(|e| nested(e, "text_config"))
}

/// An error about a field inside the object `parent`, named by its path.
fn nested(e: Error, parent: &str) -> Error {
    match e {
        Error::Field {
            file,
            field,
            message,
        } => Error::Field {
            file,
            field: format!("{parent}.{field}"),
            message,
        },
        other => other,
    }
}

/// gpt-oss (OpenAI, "gpt-oss-120b & gpt-oss-20b Model Card", 2025), as Hugging Face
/// transformers' `modeling_gpt_oss.py` lays out its tensors: q/k/v/o projections with biases,
/// one attention sink per head, alternating banded (`sliding_window`) and full attention, and
/// an MoE in every layer whose router and experts (fused gate/up and down) all carry biases.
fn gpt_oss(f: &Fields, name: String) -> Result<Architecture> {
    let attention_bias = f.bool_or("attention_bias", true)?;
    let size = f.u64("sliding_window")?;
    let layers = layer_types_window(f)?.unwrap_or(WindowLayers::Even);
    let expert_width = f.u64("intermediate_size")?;
    Ok(Architecture {
        name,
        source: f.file.to_string(),
        vocab_size: f.u64("vocab_size")?,
        hidden_size: f.u64("hidden_size")?,
        num_layers: f.u64("num_hidden_layers")?,
        num_heads: f.u64("num_attention_heads")?,
        num_kv_heads: f.u64("num_key_value_heads")?,
        head_dim: f.u64("head_dim")?,
        intermediate_size: expert_width,
        mlp: Mlp {
            gated: true,
            activation: f.activation(&["hidden_act"], "silu")?,
        },
        norm: Norm::RmsNorm,
        norm_bias: false,
        norms_per_layer: 2,
        positions: Positions::Rotary,
        max_position_embeddings: f.u64("max_position_embeddings")?,
        tie_embeddings: f.bool_or("tie_word_embeddings", false)?,
        biases: Biases {
            qkv: attention_bias,
            attn_out: attention_bias,
            mlp: true,
        },
        sliding_window: Some(SlidingWindow { size, layers }),
        moe: Some(Moe {
            num_experts: f.u64("num_local_experts")?,
            top_k: f.u64("num_experts_per_tok")?,
            expert_intermediate_size: expert_width,
            shared_experts: 0,
            shared_intermediate_size: 0,
            shared_expert_gate: false,
            first_dense_layers: 0,
            router_bias: true,
        }),
        qk_norm: false,
        attention_sinks: true,
        mla: None,
        mtp_layers: 0,
        attention_output_gate: false,
        linear_attention: None,
        mamba: None,
        layer_blocks: None,
    })
}

/// DeepSeek-V3 (arXiv:2412.19437): multi-head latent attention, dense MLPs in the first
/// `first_k_dense_replace` layers and fine-grained MoE after them (routed experts, shared
/// experts of the same width, a router with a per-expert bias), and `num_nextn_predict_layers`
/// multi-token-prediction modules counted apart. `num_key_value_heads` plays no part: with MLA
/// every head decompresses its own keys and values.
fn deepseek_v3(f: &Fields, name: String) -> Result<Architecture> {
    if f.u64_opt("moe_layer_freq")?.unwrap_or(1) != 1 {
        return Err(Error::field(
            f.file,
            "moe_layer_freq",
            "only 1 (every layer after the dense ones is MoE) is supported",
        ));
    }
    let heads = f.u64("num_attention_heads")?;
    let mla = Mla {
        q_lora_rank: f.u64_opt("q_lora_rank")?.unwrap_or(0),
        kv_lora_rank: f.u64("kv_lora_rank")?,
        qk_nope_head_dim: f.u64("qk_nope_head_dim")?,
        qk_rope_head_dim: f.u64("qk_rope_head_dim")?,
        v_head_dim: f.u64("v_head_dim")?,
    };
    let expert_width = f.u64("moe_intermediate_size")?;
    let attention_bias = f.bool_or("attention_bias", false)?;
    Ok(Architecture {
        name,
        source: f.file.to_string(),
        vocab_size: f.u64("vocab_size")?,
        hidden_size: f.u64("hidden_size")?,
        num_layers: f.u64("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: mla.qk_nope_head_dim.saturating_add(mla.qk_rope_head_dim),
        intermediate_size: f.u64("intermediate_size")?,
        mlp: Mlp {
            gated: true,
            activation: f.activation(&["hidden_act"], "silu")?,
        },
        norm: Norm::RmsNorm,
        norm_bias: false,
        norms_per_layer: 2,
        positions: Positions::Rotary,
        max_position_embeddings: f.u64("max_position_embeddings")?,
        tie_embeddings: f.bool_or("tie_word_embeddings", false)?,
        biases: Biases {
            qkv: attention_bias,
            attn_out: attention_bias,
            mlp: false,
        },
        sliding_window: None,
        moe: Some(Moe {
            num_experts: f.u64("n_routed_experts")?,
            top_k: f.u64("num_experts_per_tok")?,
            expert_intermediate_size: expert_width,
            shared_experts: f.u64_opt("n_shared_experts")?.unwrap_or(0),
            shared_intermediate_size: expert_width,
            shared_expert_gate: false,
            first_dense_layers: f.u64_opt("first_k_dense_replace")?.unwrap_or(0),
            router_bias: true,
        }),
        qk_norm: false,
        attention_sinks: false,
        mla: Some(mla),
        mtp_layers: f.u64_opt("num_nextn_predict_layers")?.unwrap_or(0),
        attention_output_gate: false,
        linear_attention: None,
        mamba: None,
        layer_blocks: None,
    })
}

/// Nemotron-H (NVIDIA, "Nemotron-H: A Family of Accurate and Efficient Hybrid
/// Mamba-Transformer Models", arXiv:2504.03624; NVIDIA Nemotron Nano 2, arXiv:2508.14444), as
/// `modeling_nemotron_h.py` lays it out: `hybrid_override_pattern` gives each layer one block
/// with its own RMSNorm before it, a Mamba-2 mixer (`M`), attention without position
/// embeddings (`*`), a non-gated MLP with squared ReLU (`-`) or experts of that MLP (`E`,
/// Nemotron 3); the head is untied.
fn nemotron_h(f: &Fields, name: String) -> Result<Architecture> {
    if f.u64_opt("num_nextn_predict_layers")?.unwrap_or(0) > 0 {
        return Err(Error::field(
            f.file,
            "num_nextn_predict_layers",
            "Nemotron-H's multi-token-prediction layers are not supported",
        ));
    }
    let layers = f.u64("num_hidden_layers")?;
    let blocks = hybrid_override_pattern(f, layers)?;
    let hidden = f.u64("hidden_size")?;
    let heads = f.u64("num_attention_heads")?;
    if heads == 0 {
        return Err(Error::field(
            f.file,
            "num_attention_heads",
            "must be positive, got 0",
        ));
    }
    let head_dim = match f.u64_opt("head_dim")? {
        Some(d) => d,
        None => implied_head_dim(f.file, "num_attention_heads", "hidden_size", heads, hidden)?,
    };
    let attention_bias = f.bool_or("attention_bias", false)?;
    Ok(Architecture {
        name,
        source: f.file.to_string(),
        vocab_size: f.u64("vocab_size")?,
        hidden_size: hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: f.u64_opt("num_key_value_heads")?.unwrap_or(heads),
        head_dim,
        intermediate_size: f.u64("intermediate_size")?,
        mlp: Mlp {
            gated: false,
            activation: f.activation(&["mlp_hidden_act"], "relu2")?,
        },
        norm: Norm::RmsNorm,
        norm_bias: false,
        norms_per_layer: 2,
        positions: Positions::None,
        max_position_embeddings: f.u64("max_position_embeddings")?,
        tie_embeddings: f.bool_or("tie_word_embeddings", false)?,
        biases: Biases {
            qkv: attention_bias,
            attn_out: attention_bias,
            mlp: f.bool_or("mlp_bias", false)?,
        },
        sliding_window: None,
        moe: nemotron_h_moe(f, &blocks)?,
        qk_norm: false,
        attention_sinks: false,
        mla: None,
        mtp_layers: 0,
        attention_output_gate: false,
        linear_attention: None,
        mamba: Some(Mamba2 {
            heads: f.u64("mamba_num_heads")?,
            head_dim: f.u64("mamba_head_dim")?,
            state_size: f.u64("ssm_state_size")?,
            groups: f.u64("n_groups")?,
            conv_kernel: f.u64("conv_kernel")?,
            conv_bias: f.bool_or("use_conv_bias", true)?,
            projection_bias: f.bool_or("use_bias", false)?,
        }),
        layer_blocks: Some(blocks),
    })
}

/// The experts of Nemotron-H's MoE layers (Nemotron 3, `E`), as `modeling_nemotron_h.py` lays
/// them out: a router with one correction bias per expert (`e_score_correction_bias`),
/// `n_routed_experts` non-gated experts of `moe_intermediate_size` with the model's activation,
/// of which each token takes `num_experts_per_tok`, and `n_shared_experts` of
/// `moe_shared_expert_intermediate_size`. None without `E` layers. The latent experts of
/// `moe_latent_size` (Nemotron 3 Super) are refused.
fn nemotron_h_moe(f: &Fields, blocks: &[LayerBlock]) -> Result<Option<Moe>> {
    if !blocks.contains(&LayerBlock::Experts) {
        return Ok(None);
    }
    if f.u64_opt("moe_latent_size")?.is_some() {
        return Err(Error::field(
            f.file,
            "moe_latent_size",
            "latent experts are not supported",
        ));
    }
    let shared = f.u64_opt("n_shared_experts")?.unwrap_or(0);
    Ok(Some(Moe {
        num_experts: f.u64("n_routed_experts")?,
        top_k: f.u64("num_experts_per_tok")?,
        expert_intermediate_size: f.u64("moe_intermediate_size")?,
        shared_experts: shared,
        shared_intermediate_size: if shared > 0 {
            f.u64("moe_shared_expert_intermediate_size")?
        } else {
            0
        },
        shared_expert_gate: false,
        first_dense_layers: 0,
        router_bias: true,
    }))
}

/// Nemotron-H's `hybrid_override_pattern`, one character per layer: `M` Mamba-2, `*`
/// attention, `-` MLP, `E` MoE.
fn hybrid_override_pattern(f: &Fields, layers: u64) -> Result<Vec<LayerBlock>> {
    const FIELD: &str = "hybrid_override_pattern";
    let pattern = f
        .str_opt(FIELD)?
        .ok_or_else(|| Error::field(f.file, FIELD, "missing"))?;
    let n = pattern.chars().count() as u64;
    if n != layers {
        return Err(Error::field(
            f.file,
            FIELD,
            format!("has {n} layers but num_hidden_layers is {layers}"),
        ));
    }
    pattern
        .chars()
        .map(|c| match (c, LayerBlock::of_char(c)) {
            ('M' | '*' | '-' | 'E', Some(block)) => Ok(block),
            _ => Err(Error::field(
                f.file,
                FIELD,
                format!(
                    "unknown layer '{c}' (expected M for Mamba-2, * for attention, - for MLP, E \
                     for MoE)"
                ),
            )),
        })
        .collect()
}

/// Gemma 3's local layers: those `layer_types` names "sliding_attention", or else all but every
/// `sliding_window_pattern`-th layer (five local, one global in the released models).
fn gemma3_window(f: &Fields, size: Option<u64>) -> Result<Option<SlidingWindow>> {
    let size = size.ok_or_else(|| Error::field(f.file, "sliding_window", "missing"))?;
    let layers = match layer_types_window(f)? {
        Some(layers) => layers,
        None => {
            let every = f.u64("sliding_window_pattern")?;
            if every == 0 || every > LayerMask::MAX_PERIOD {
                return Err(Error::field(
                    f.file,
                    "sliding_window_pattern",
                    format!(
                        "must be 1 to {} (a global layer every N layers), got {every}",
                        LayerMask::MAX_PERIOD
                    ),
                ));
            }
            if every == 1 {
                return Ok(None);
            }
            WindowLayers::Pattern(LayerMask {
                period: every,
                bits: (1u64 << (every - 1)) - 1,
            })
        }
    };
    Ok(Some(SlidingWindow { size, layers }))
}

/// The windowed layers `layer_types` lists ("sliding_attention" or "full_attention", one per
/// layer), as a repeating pattern; None when the config has no `layer_types`. A list without a
/// sliding layer gives a pattern that marks none.
fn layer_types_window(f: &Fields) -> Result<Option<WindowLayers>> {
    Ok(
        layer_types_mask(f, "sliding_attention", "full_attention")?.map(|mask| match mask {
            LayerMask { period: 1, bits: 1 } => WindowLayers::All,
            LayerMask { period: 2, bits: 1 } => WindowLayers::Even,
            mask => WindowLayers::Pattern(mask),
        }),
    )
}

/// The layers `layer_types` gives as `marked` (the others being `other`), as a repeating pattern;
/// None when the config has no `layer_types`.
fn layer_types_mask(f: &Fields, marked: &str, other: &str) -> Result<Option<LayerMask>> {
    let Some(value) = f.get("layer_types") else {
        return Ok(None);
    };
    let types = value
        .as_array()
        .ok_or_else(|| Error::field(f.file, "layer_types", "expected a list of layer types"))?;
    let layers = f.u64("num_hidden_layers")?;
    if types.len() as u64 != layers {
        return Err(Error::field(
            f.file,
            "layer_types",
            format!(
                "lists {} layers but num_hidden_layers is {layers}",
                types.len()
            ),
        ));
    }
    let mut flags = Vec::with_capacity(types.len());
    for t in types {
        flags.push(match t.as_str() {
            Some(name) if name == marked => true,
            Some(name) if name == other => false,
            _ => {
                return Err(Error::field(
                    f.file,
                    "layer_types",
                    format!("unsupported layer type {t} (supported: {marked}, {other})"),
                ));
            }
        });
    }
    LayerMask::of_flags(&flags).map(Some).ok_or_else(|| {
        Error::field(
            f.file,
            "layer_types",
            format!(
                "the pattern does not repeat within {} layers",
                LayerMask::MAX_PERIOD
            ),
        )
    })
}

/// Qwen3-Next (Qwen3-Next-80B-A3B, Qwen3-Coder-Next): Qwen3-MoE's layers with a shared expert
/// and its gate, full-attention layers whose query projection also yields a sigmoid output
/// gate, and Gated DeltaNet linear attention in the other layers: all but every
/// `full_attention_interval`-th, or as `layer_types` lists them. The checkpoints' `mtp.*`
/// tensors lie outside the config and are not counted.
fn qwen3_next(f: &Fields, name: String) -> Result<Architecture> {
    let mut arch = llama_family(f, "qwen3_next", name)?;
    let layers = match layer_types_mask(f, "linear_attention", "full_attention")? {
        Some(mask) => mask,
        None => {
            let every = f.u64("full_attention_interval")?;
            if every == 0 || every > LayerMask::MAX_PERIOD {
                return Err(Error::field(
                    f.file,
                    "full_attention_interval",
                    format!(
                        "must be 1 to {} (a full-attention layer every N layers), got {every}",
                        LayerMask::MAX_PERIOD
                    ),
                ));
            }
            LayerMask {
                period: every,
                bits: (1u64 << (every - 1)) - 1,
            }
        }
    };
    arch.attention_output_gate = true;
    arch.linear_attention = Some(LinearAttention {
        key_heads: f.u64("linear_num_key_heads")?,
        key_head_dim: f.u64("linear_key_head_dim")?,
        value_heads: f.u64("linear_num_value_heads")?,
        value_head_dim: f.u64("linear_value_head_dim")?,
        conv_kernel: f.u64("linear_conv_kernel_dim")?,
        layers,
    });
    Ok(arch)
}

// ---------------------------------------------------------------------------------------------
// Native TOML

/// The native form, for architectures that exist only on paper. See `examples/paper-model.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeArch {
    name: String,
    vocab_size: u64,
    hidden_size: u64,
    num_layers: u64,
    num_heads: u64,
    #[serde(default)]
    num_kv_heads: Option<u64>,
    #[serde(default)]
    head_dim: Option<u64>,
    intermediate_size: u64,
    /// swiglu, geglu, reglu (gated) or gelu, silu, relu (plain).
    mlp: String,
    #[serde(default = "default_norm")]
    norm: Norm,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default = "default_norms_per_layer")]
    norms_per_layer: u64,
    #[serde(default = "default_positions")]
    positions: Positions,
    max_position_embeddings: u64,
    #[serde(default)]
    tie_embeddings: bool,
    #[serde(default)]
    qkv_bias: bool,
    #[serde(default)]
    attn_out_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    sliding_window: Option<u64>,
    /// The layers of a repeating period (at most 64) or of the whole model, one character each:
    /// `L` local (windowed attention), `G` global attention, `S` linear attention (a scan;
    /// needs `[linear_attention]`), each followed by the feed-forward block; or a block alone
    /// with its own norm: `M` a Mamba-2 mixer (needs `[mamba]`), `*` global attention, `-` the
    /// feed-forward block. Without it every layer attends, windowed when `sliding_window` is
    /// given.
    #[serde(default)]
    layer_pattern: Option<String>,
    #[serde(default)]
    attention_output_gate: bool,
    #[serde(default)]
    linear_attention: Option<NativeLinearAttention>,
    #[serde(default)]
    mamba: Option<NativeMamba>,
    #[serde(default)]
    qk_norm: bool,
    #[serde(default)]
    attention_sinks: bool,
    #[serde(default)]
    mtp_layers: u64,
    #[serde(default)]
    moe: Option<NativeMoe>,
    #[serde(default)]
    mla: Option<NativeMla>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeLinearAttention {
    key_heads: u64,
    key_head_dim: u64,
    value_heads: u64,
    value_head_dim: u64,
    conv_kernel: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeMamba {
    heads: u64,
    head_dim: u64,
    state_size: u64,
    #[serde(default = "one")]
    groups: u64,
    conv_kernel: u64,
    #[serde(default = "yes")]
    conv_bias: bool,
    #[serde(default)]
    projection_bias: bool,
}

fn one() -> u64 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeMla {
    #[serde(default)]
    q_lora_rank: u64,
    kv_lora_rank: u64,
    qk_nope_head_dim: u64,
    qk_rope_head_dim: u64,
    v_head_dim: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeMoe {
    num_experts: u64,
    top_k: u64,
    expert_intermediate_size: u64,
    #[serde(default)]
    shared_experts: u64,
    #[serde(default)]
    shared_intermediate_size: Option<u64>,
    #[serde(default)]
    first_dense_layers: u64,
    #[serde(default)]
    router_bias: bool,
    /// A learned scalar gate on the shared experts' output (Qwen MoE).
    #[serde(default)]
    shared_expert_gate: bool,
}

fn default_norm() -> Norm {
    Norm::RmsNorm
}
fn default_norms_per_layer() -> u64 {
    2
}
fn default_positions() -> Positions {
    Positions::Rotary
}

fn parse_mlp(file: &str, s: &str) -> Result<Mlp> {
    let (gated, act) = match s {
        "swiglu" => (true, Activation::Silu),
        "geglu" => (true, Activation::Gelu),
        "reglu" => (true, Activation::Relu),
        "gelu" => (false, Activation::Gelu),
        "silu" => (false, Activation::Silu),
        "relu" => (false, Activation::Relu),
        "relu2" => (false, Activation::Relu2),
        other => {
            return Err(Error::field(
                file,
                "mlp",
                format!(
                    "unknown MLP '{other}' (expected swiglu, geglu, reglu, gelu, silu, relu or relu2)"
                ),
            ));
        }
    };
    Ok(Mlp {
        gated,
        activation: act,
    })
}

/// A native `layer_pattern`: the local and scan layers of a repeating pattern of L, G and S
/// ("LLLLLG", "SSSG"), or, when it has single-block layers or is longer than a period may be,
/// every layer's block.
enum NativePattern {
    Masks { local: LayerMask, scan: LayerMask },
    Listed(Vec<LayerBlock>),
}

fn parse_layer_pattern(file: &str, pattern: &str) -> Result<NativePattern> {
    let blocks = pattern
        .chars()
        .map(|c| {
            LayerBlock::of_char(c).ok_or_else(|| {
                Error::field(
                    file,
                    "layer_pattern",
                    format!(
                        "unknown layer '{c}' (expected L for local, G for global, S for linear \
                         attention, M for Mamba-2, * for attention alone, - for an MLP alone, E \
                         for MoE alone)"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = blocks.len() as u64;
    if n == 0 {
        return Err(Error::field(file, "layer_pattern", "has 0 layers"));
    }
    let paired = blocks
        .iter()
        .all(|b| matches!(b, LayerBlock::Local | LayerBlock::Global | LayerBlock::Scan));
    if !paired || n > LayerMask::MAX_PERIOD {
        return Ok(NativePattern::Listed(blocks));
    }
    let bits = |which: LayerBlock| {
        let bits = blocks
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == which)
            .fold(0u64, |bits, (i, _)| bits | 1 << i);
        LayerMask { period: n, bits }
    };
    Ok(NativePattern::Masks {
        local: bits(LayerBlock::Local),
        scan: bits(LayerBlock::Scan),
    })
}

/// The mixers of a native model: the window, linear attention and Mamba-2, and the layer list
/// when the pattern gives one.
struct NativeMixers {
    window: Option<SlidingWindow>,
    linear: Option<LinearAttention>,
    mamba: Option<Mamba2>,
    blocks: Option<Vec<LayerBlock>>,
}

/// The window over the layers `layer_pattern` marks local (else every layer), the scan over
/// those it marks `S`, and Mamba-2 over those it marks `M`.
fn native_mixers(file: &str, n: &NativeArch) -> Result<NativeMixers> {
    let pattern = match n.layer_pattern.as_deref() {
        Some(p) => Some(parse_layer_pattern(file, p)?),
        None => None,
    };
    let (local, scan, blocks) = match pattern {
        Some(NativePattern::Masks { local, scan }) => (Some(local), Some(scan), None),
        Some(NativePattern::Listed(blocks)) => (None, None, Some(blocks)),
        None => (None, None, None),
    };
    let listed = |which: LayerBlock| blocks.as_ref().is_some_and(|b| b.contains(&which));
    let has_local = local.is_some_and(|m| m.bits != 0) || listed(LayerBlock::Local);
    let has_scan = scan.is_some_and(|m| m.bits != 0) || listed(LayerBlock::Scan);
    let window = match (n.sliding_window, local, &blocks) {
        (None, _, _) if has_local => {
            return Err(Error::field(
                file,
                "sliding_window",
                "missing while layer_pattern has local (L) layers",
            ));
        }
        (None, _, _) => None,
        (Some(size), _, Some(_)) => Some(SlidingWindow {
            size,
            layers: WindowLayers::Listed,
        }),
        (Some(size), Some(mask), None) => Some(SlidingWindow {
            size,
            layers: WindowLayers::Pattern(mask),
        }),
        (Some(size), None, None) => Some(SlidingWindow {
            size,
            layers: WindowLayers::All,
        }),
    };
    let linear = paired_table(
        file,
        n.linear_attention.as_ref(),
        has_scan,
        ("linear_attention", "linear-attention", 'S'),
    )?
    .map(|l| LinearAttention {
        key_heads: l.key_heads,
        key_head_dim: l.key_head_dim,
        value_heads: l.value_heads,
        value_head_dim: l.value_head_dim,
        conv_kernel: l.conv_kernel,
        // A layer list says which layers scan.
        layers: scan.unwrap_or(LayerMask { period: 1, bits: 0 }),
    });
    let mamba = paired_table(
        file,
        n.mamba.as_ref(),
        listed(LayerBlock::Mamba),
        ("mamba", "Mamba-2", 'M'),
    )?
    .map(|m| Mamba2 {
        heads: m.heads,
        head_dim: m.head_dim,
        state_size: m.state_size,
        groups: m.groups,
        conv_kernel: m.conv_kernel,
        conv_bias: m.conv_bias,
        projection_bias: m.projection_bias,
    });
    Ok(NativeMixers {
        window,
        linear,
        mamba,
        blocks,
    })
}

/// Builds an architecture from the native TOML form.
pub fn from_native_toml(file: &str, text: &str) -> Result<Architecture> {
    let n: NativeArch = parse_toml(file, text)?;
    if n.num_heads == 0 {
        return Err(Error::field(file, "num_heads", "must be positive, got 0"));
    }
    let mla = n.mla.as_ref().map(|m| Mla {
        q_lora_rank: m.q_lora_rank,
        kv_lora_rank: m.kv_lora_rank,
        qk_nope_head_dim: m.qk_nope_head_dim,
        qk_rope_head_dim: m.qk_rope_head_dim,
        v_head_dim: m.v_head_dim,
    });
    let head_dim = match (n.head_dim, mla) {
        (Some(d), _) => d,
        (None, Some(m)) => m.qk_nope_head_dim.saturating_add(m.qk_rope_head_dim),
        (None, None) => {
            implied_head_dim(file, "num_heads", "hidden_size", n.num_heads, n.hidden_size)?
        }
    };
    let mixers = native_mixers(file, &n)?;
    let moe = n.moe.map(|m| Moe {
        num_experts: m.num_experts,
        top_k: m.top_k,
        expert_intermediate_size: m.expert_intermediate_size,
        shared_experts: m.shared_experts,
        shared_intermediate_size: m
            .shared_intermediate_size
            .unwrap_or(m.expert_intermediate_size),
        shared_expert_gate: m.shared_expert_gate,
        first_dense_layers: m.first_dense_layers,
        router_bias: m.router_bias,
    });
    let arch = Architecture {
        name: n.name,
        source: file.to_string(),
        vocab_size: n.vocab_size,
        hidden_size: n.hidden_size,
        num_layers: n.num_layers,
        num_heads: n.num_heads,
        num_kv_heads: n.num_kv_heads.unwrap_or(n.num_heads),
        head_dim,
        intermediate_size: n.intermediate_size,
        mlp: parse_mlp(file, &n.mlp)?,
        norm: n.norm,
        norm_bias: n.norm_bias,
        norms_per_layer: n.norms_per_layer,
        positions: n.positions,
        max_position_embeddings: n.max_position_embeddings,
        tie_embeddings: n.tie_embeddings,
        biases: Biases {
            qkv: n.qkv_bias,
            attn_out: n.attn_out_bias,
            mlp: n.mlp_bias,
        },
        sliding_window: mixers.window,
        moe,
        qk_norm: n.qk_norm,
        attention_sinks: n.attention_sinks,
        mla,
        mtp_layers: n.mtp_layers,
        attention_output_gate: n.attention_output_gate,
        linear_attention: mixers.linear,
        mamba: mixers.mamba,
        layer_blocks: mixers.blocks,
    };
    arch.validate(file)?;
    Ok(arch)
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Short names for the embedded configs (verbatim Hugging Face `config.json` files in `models/`).
const NAMED: &[(&str, &str, &str)] = &[
    (
        "gpt2",
        "models/gpt2.json",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt2.json")),
    ),
    (
        "gpt2-xl",
        "models/gpt2-xl.json",
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/gpt2-xl.json")),
    ),
    (
        "llama-2-7b",
        "models/Llama-2-7b-hf.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Llama-2-7b-hf.json"
        )),
    ),
    (
        "llama-2-13b",
        "models/Llama-2-13b-hf.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Llama-2-13b-hf.json"
        )),
    ),
    (
        "llama-3-8b",
        "models/Meta-Llama-3-8B.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Meta-Llama-3-8B.json"
        )),
    ),
    (
        "llama-3.1-8b",
        "models/Llama-3.1-8B.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Llama-3.1-8B.json"
        )),
    ),
    (
        "llama-3.1-70b",
        "models/Llama-3.1-70B.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Llama-3.1-70B.json"
        )),
    ),
    (
        "llama-3.1-405b",
        "models/Llama-3.1-405B.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Llama-3.1-405B.json"
        )),
    ),
    (
        "mistral-7b",
        "models/Mistral-7B-Instruct-v0.1.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Mistral-7B-Instruct-v0.1.json"
        )),
    ),
    (
        "mixtral-8x7b",
        "models/Mixtral-8x7B-Instruct-v0.1.json",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/Mixtral-8x7B-Instruct-v0.1.json"
        )),
    ),
];

pub fn model_names() -> Vec<&'static str> {
    NAMED.iter().map(|(n, _, _)| *n).collect()
}

/// A model by short name, or from a `config.json` (Hugging Face) or `.toml` (native) file.
pub fn load(name_or_path: &str) -> Result<Architecture> {
    let key = name_or_path.trim().to_ascii_lowercase();
    if let Some((name, file, text)) = NAMED.iter().find(|(n, _, _)| *n == key) {
        let mut arch = from_hf_config(file, text)?;
        arch.name = (*name).to_string();
        return Ok(arch);
    }
    let path = Path::new(name_or_path);
    let looks_like_file = path.exists()
        || name_or_path.ends_with(".json")
        || name_or_path.ends_with(".toml")
        || name_or_path.contains('/');
    if !looks_like_file {
        return Err(Error::Unknown(format!(
            "unknown model '{name_or_path}' (known: {}; or pass a config.json or .toml file)",
            model_names().join(", ")
        )));
    }
    let text = read_to_string(path)?;
    if name_or_path.ends_with(".toml") {
        from_native_toml(name_or_path, &text)
    } else {
        from_hf_config(name_or_path, &text)
    }
}

/// A native table that goes with one kind of layer (`[mamba]` with `M` layers): given exactly
/// when the layer pattern has such layers. `(table, name, letter)` name them in the errors.
fn paired_table<'a, T>(
    file: &str,
    given: Option<&'a T>,
    marked: bool,
    (table, name, letter): (&str, &str, char),
) -> Result<Option<&'a T>> {
    match (given, marked) {
        (None, true) => Err(Error::field(
            file,
            table,
            format!("missing while layer_pattern has {name} ({letter}) layers"),
        )),
        (Some(_), false) => Err(Error::field(
            file,
            "layer_pattern",
            format!("must mark the {name} layers ({letter}) when [{table}] is given"),
        )),
        (given, _) => Ok(given),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixtral_counts_router_and_top_k_experts() {
        let m = load("mixtral-8x7b").unwrap();
        let p = m.params();
        assert_eq!(p.total, 46_702_792_704);
        assert_eq!(p.active, 12_879_925_248);
        assert_eq!(m.layer_groups().len(), 1);
    }

    /// The closed-form count agrees with walking every layer, for every mix of dense-first MoE
    /// layers and window patterns.
    #[test]
    fn layer_groups_match_a_walk_over_the_layers() {
        let base = load("mixtral-8x7b").unwrap();
        let walk = |a: &Architecture| {
            let mut groups: Vec<(LayerKind, u64)> = Vec::new();
            for i in 0..a.num_layers {
                let kind = a.layer_kind(i);
                match groups.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => groups.push((kind, 1)),
                }
            }
            groups
        };
        let windows = [
            None,
            Some(WindowLayers::All),
            Some(WindowLayers::Even),
            Some(WindowLayers::From(0)),
            Some(WindowLayers::From(3)),
            Some(WindowLayers::From(40)),
            Some(WindowLayers::Pattern(LayerMask {
                period: 6,
                bits: 0b11111,
            })),
            Some(WindowLayers::Pattern(LayerMask {
                period: 3,
                bits: 0b010,
            })),
        ];
        let scans = [
            None,
            Some(LayerMask {
                period: 4,
                bits: 0b0111,
            }),
            Some(LayerMask {
                period: 5,
                bits: 0b10010,
            }),
        ];
        let linear = |layers| LinearAttention {
            key_heads: 2,
            key_head_dim: 16,
            value_heads: 4,
            value_head_dim: 16,
            conv_kernel: 4,
            layers,
        };
        for layers in [1, 2, 3, 7, 8, 32, 61] {
            for first_dense in [None, Some(0), Some(1), Some(2), Some(5), Some(50)] {
                for pattern in ["M-M*-", "LGSM*-E", "M-L", "MEM*E-"] {
                    let mut a = base.clone();
                    a.num_layers = layers;
                    a.moe = first_dense.map(|f| Moe {
                        first_dense_layers: f,
                        ..base.moe.unwrap()
                    });
                    a.sliding_window = Some(SlidingWindow {
                        size: 64,
                        layers: WindowLayers::Listed,
                    });
                    a.linear_attention = Some(linear(LayerMask { period: 1, bits: 0 }));
                    a.mamba = Some(Mamba2 {
                        heads: 8,
                        head_dim: 16,
                        state_size: 16,
                        groups: 2,
                        conv_kernel: 4,
                        conv_bias: true,
                        projection_bias: false,
                    });
                    a.layer_blocks =
                        Some(pattern.chars().filter_map(LayerBlock::of_char).collect());
                    assert_eq!(
                        a.layer_groups().to_vec(),
                        walk(&a),
                        "{layers} {first_dense:?} {pattern}"
                    );
                }
                for window in windows {
                    for scan in scans {
                        let mut a = base.clone();
                        a.num_layers = layers;
                        a.moe = first_dense.map(|f| Moe {
                            first_dense_layers: f,
                            ..base.moe.unwrap()
                        });
                        a.sliding_window = window.map(|layers| SlidingWindow { size: 64, layers });
                        a.linear_attention = scan.map(linear);
                        assert_eq!(
                            a.layer_groups().to_vec(),
                            walk(&a),
                            "{layers} {first_dense:?} {window:?} {scan:?}"
                        );
                    }
                }
            }
        }
    }

    /// Nemotron-H's layers hold one block each with its own norm: a Mamba-2 layer is its mixer
    /// and a norm, an MLP layer its up and down projections and a norm; only the attention
    /// layers cache keys and values.
    #[test]
    fn nemotron_h_layers_hold_one_block() {
        let path = format!(
            "{}/tests/fixtures/nemotron-nano-9b-v2.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let a = load(&path).unwrap();
        let (h, norm) = (4480, 4480);
        let (inner, groups_state, heads) = (128 * 80, 8 * 128, 128);
        let conv = inner + 2 * groups_state;
        let mamba = h * (inner + conv + heads) + conv * 4 + conv + 3 * heads + inner + inner * h;
        let attention = h * 40 * 128 + 2 * h * 8 * 128 + 40 * 128 * h;
        let mlp = 2 * h * 15680;
        let kind = |block| LayerKind {
            block,
            ..LayerKind::default()
        };
        assert_eq!(
            a.layer_params(kind(Block::Mamba)),
            Some((mamba + norm, mamba + norm))
        );
        assert_eq!(
            a.layer_params(kind(Block::Attention)),
            Some((attention + norm, attention + norm))
        );
        assert_eq!(
            a.layer_params(kind(Block::Mlp)),
            Some((mlp + norm, mlp + norm))
        );
        assert_eq!(
            (a.attention_layers(), a.mamba_layers(), a.linear_layers()),
            (4, 27, 0)
        );
        assert_eq!(a.kv_elements_per_token(), 4 * 2 * 8 * 128);
        assert_eq!(a.positions, Positions::None);
        assert_eq!(a.mlp.activation, Activation::Relu2);
        assert!(!a.mlp.gated && !a.tie_embeddings);
    }

    #[test]
    fn gemma2_alternates_window_layers() {
        let cfg = r#"{"model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216,
            "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
            "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192,
            "sliding_window": 4096, "hidden_activation": "gelu_pytorch_tanh"}"#;
        let a = from_hf_config("gemma-2-2b.json", cfg).unwrap();
        assert_eq!(a.layer_kind(0).window, Some(4096));
        assert_eq!(a.layer_kind(1).window, None);
        assert_eq!(
            a.layer_groups().to_vec(),
            vec![
                (
                    LayerKind {
                        moe: false,
                        window: Some(4096),
                        linear: false,
                        block: Block::Pair,
                    },
                    13
                ),
                (
                    LayerKind {
                        moe: false,
                        window: None,
                        linear: false,
                        block: Block::Pair,
                    },
                    13
                ),
            ]
        );
        assert!(a.tie_embeddings && a.mlp.gated && a.mlp.activation == Activation::Gelu);
    }

    #[test]
    fn native_moe_with_dense_first_layers_and_shared_experts() {
        let text = r#"
name = "paper-moe"
vocab_size = 1000
hidden_size = 64
num_layers = 4
num_heads = 4
num_kv_heads = 2
intermediate_size = 256
mlp = "swiglu"
max_position_embeddings = 512
tie_embeddings = true
[moe]
num_experts = 8
top_k = 2
expert_intermediate_size = 32
shared_experts = 1
first_dense_layers = 1
"#;
        let a = from_native_toml("paper.toml", text).unwrap();
        let h = 64;
        let attn = h * 64 + 2 * h * 32 + 64 * h;
        let norms = 2 * h;
        let dense = attn + norms + 3 * h * 256;
        let expert = 3 * h * 32;
        let moe_total = attn + norms + h * 8 + expert + 8 * expert;
        let moe_active = attn + norms + h * 8 + expert + 2 * expert;
        let p = a.params();
        assert_eq!(p.total, 1000 * h + dense + 3 * moe_total + h);
        assert_eq!(p.active, 1000 * h + dense + 3 * moe_active + h);
        assert_eq!(p.lm_head, 0);
    }

    /// Sizes whose parameter count overflows a u64 are refused by name, and counting them
    /// without validation saturates instead of wrapping.
    #[test]
    fn parameter_counts_never_wrap() {
        let mut a = load("llama-2-7b").unwrap();
        a.hidden_size = 1 << 31;
        a.num_heads = 1 << 24;
        a.num_kv_heads = 1 << 24;
        a.vocab_size = 1 << 40;
        assert_eq!(a.checked_params(), None);
        assert_eq!(a.params().total, u64::MAX);
        let e = a.validate("x.json").unwrap_err().to_string();
        assert_eq!(
            e,
            "x.json: vocab_size: 1099511627776 exceeds the limit of 2^24"
        );
        let mut a = load("llama-2-7b").unwrap();
        a.hidden_size = limits::HIDDEN;
        a.intermediate_size = limits::INTERMEDIATE;
        a.num_layers = limits::LAYERS;
        a.head_dim = limits::HIDDEN / a.num_heads;
        let e = a.validate("x.json").unwrap_err().to_string();
        assert!(
            e.starts_with("x.json: (parameters): ") && e.ends_with("exceeds the limit of 2^50"),
            "{e}"
        );
    }
}

/// Counts of the families with QK-norm, window patterns, sinks, MLA and MTP, from the configs
/// in `tests/fixtures/` (their sources are in the README there).
#[cfg(test)]
mod family_tests {
    use super::*;

    fn fixture(name: &str) -> Architecture {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        load(&path).unwrap()
    }

    #[test]
    fn family_totals() {
        for (name, total, active) in [
            ("qwen3-0.6b.json", 596_049_920, 596_049_920),
            ("qwen3-30b-a3b.json", 30_532_122_624, 3_353_032_704),
            ("gemma-3-1b.json", 999_885_952, 999_885_952),
            ("gemma-3-4b.json", 3_880_263_168, 3_880_263_168),
            ("gpt-oss-20b.json", 20_914_757_184, 4_187_440_704),
            ("gpt-oss-120b.json", 116_829_156_672, 5_711_982_912),
            ("deepseek-v3.json", 671_026_419_200, 37_552_297_472),
            ("qwen3-coder-next.json", 79_674_391_296, 3_874_929_408),
            ("nemotron-nano-9b-v2.json", 8_888_227_328, 8_888_227_328),
            (
                "nemotron-3-nano-30b-a3b.json",
                31_577_940_288,
                3_580_076_352,
            ),
        ] {
            let p = fixture(name).params();
            assert_eq!(p.total, total, "{name}");
            assert_eq!(p.active, active, "{name}");
        }
    }

    /// A config read with `layer_types` in place of its interval field.
    fn with_layer_types(name: &str, types: impl Fn(u64) -> &'static str) -> Architecture {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let obj = v.as_object_mut().unwrap();
        let layers = obj["num_hidden_layers"].as_u64().unwrap();
        obj.remove("sliding_window_pattern");
        obj.remove("full_attention_interval");
        obj.insert(
            "layer_types".into(),
            (0..layers).map(types).collect::<Vec<_>>().into(),
        );
        from_hf_config(name, &v.to_string()).unwrap()
    }

    /// `layer_types` and the interval fields describe the same layers.
    #[test]
    fn layer_types_read_as_the_intervals_do() {
        let gemma = with_layer_types("gemma-3-1b.json", |i| {
            if (i + 1) % 6 == 0 {
                "full_attention"
            } else {
                "sliding_attention"
            }
        });
        let original = fixture("gemma-3-1b.json");
        assert_eq!(gemma.layer_groups(), original.layer_groups());
        assert_eq!(gemma.params(), original.params());
        let next = with_layer_types("qwen3-coder-next.json", |i| {
            if (i + 1) % 4 == 0 {
                "full_attention"
            } else {
                "linear_attention"
            }
        });
        let original = fixture("qwen3-coder-next.json");
        assert_eq!(next.layer_groups(), original.layer_groups());
        assert_eq!((next.attention_layers(), next.linear_layers()), (12, 36));
        // gpt-oss's list alternates from a banded layer: Gemma 2's even layers.
        let oss = fixture("gpt-oss-20b.json");
        assert_eq!(oss.sliding_window.unwrap().layers, WindowLayers::Even);
    }

    /// Each family written in the native form counts as its Hugging Face config does, so a
    /// paper design can start from any of them.
    #[test]
    fn native_forms_of_each_family_count_alike() {
        let gemma3 = r#"
name = "gemma-3-1b"
vocab_size = 262144
hidden_size = 1152
num_layers = 26
num_heads = 4
num_kv_heads = 1
head_dim = 256
intermediate_size = 6912
mlp = "geglu"
norms_per_layer = 4
max_position_embeddings = 32768
tie_embeddings = true
qk_norm = true
sliding_window = 512
layer_pattern = "LLLLLG"
"#;
        let gpt_oss = r#"
name = "gpt-oss-20b"
vocab_size = 201088
hidden_size = 2880
num_layers = 24
num_heads = 64
num_kv_heads = 8
head_dim = 64
intermediate_size = 2880
mlp = "swiglu"
max_position_embeddings = 131072
qkv_bias = true
attn_out_bias = true
mlp_bias = true
attention_sinks = true
sliding_window = 128
layer_pattern = "LG"
[moe]
num_experts = 32
top_k = 4
expert_intermediate_size = 2880
router_bias = true
"#;
        let deepseek = r#"
name = "deepseek-v3"
vocab_size = 129280
hidden_size = 7168
num_layers = 61
num_heads = 128
intermediate_size = 18432
mlp = "swiglu"
max_position_embeddings = 163840
mtp_layers = 1
[mla]
q_lora_rank = 1536
kv_lora_rank = 512
qk_nope_head_dim = 128
qk_rope_head_dim = 64
v_head_dim = 128
[moe]
num_experts = 256
top_k = 8
expert_intermediate_size = 2048
shared_experts = 1
first_dense_layers = 3
router_bias = true
"#;
        let qwen3_next = r#"
name = "qwen3-next"
vocab_size = 151936
hidden_size = 2048
num_layers = 48
num_heads = 16
num_kv_heads = 2
head_dim = 256
intermediate_size = 5120
mlp = "swiglu"
max_position_embeddings = 262144
qk_norm = true
attention_output_gate = true
layer_pattern = "SSSG"
[linear_attention]
key_heads = 16
key_head_dim = 128
value_heads = 32
value_head_dim = 128
conv_kernel = 4
[moe]
num_experts = 512
top_k = 10
expert_intermediate_size = 512
shared_experts = 1
shared_expert_gate = true
"#;
        let nemotron_h = r#"
name = "nemotron-nano-9b-v2"
vocab_size = 131072
hidden_size = 4480
num_layers = 56
num_heads = 40
num_kv_heads = 8
head_dim = 128
intermediate_size = 15680
mlp = "relu2"
positions = "none"
max_position_embeddings = 131072
layer_pattern = "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-"
[mamba]
heads = 128
head_dim = 80
state_size = 128
groups = 8
conv_kernel = 4
"#;
        let nemotron_moe = r#"
name = "nemotron-3-nano-30b-a3b"
vocab_size = 131072
hidden_size = 2688
num_layers = 52
num_heads = 32
num_kv_heads = 2
head_dim = 128
intermediate_size = 1856
mlp = "relu2"
positions = "none"
max_position_embeddings = 262144
layer_pattern = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"
[mamba]
heads = 64
head_dim = 64
state_size = 128
groups = 8
conv_kernel = 4
[moe]
num_experts = 128
top_k = 6
expert_intermediate_size = 1856
shared_experts = 1
shared_intermediate_size = 3712
router_bias = true
"#;
        for (toml_text, config) in [
            (gemma3, "gemma-3-1b.json"),
            (gpt_oss, "gpt-oss-20b.json"),
            (deepseek, "deepseek-v3.json"),
            (qwen3_next, "qwen3-coder-next.json"),
            (nemotron_h, "nemotron-nano-9b-v2.json"),
            (nemotron_moe, "nemotron-3-nano-30b-a3b.json"),
        ] {
            let native = from_native_toml("paper.toml", toml_text).unwrap();
            let hf = fixture(config);
            assert_eq!(native.params(), hf.params(), "{config}");
            assert_eq!(native.layer_groups(), hf.layer_groups(), "{config}");
            assert_eq!(native.kv_elements_per_token(), hf.kv_elements_per_token());
            assert_eq!(
                (native.linear_layers(), native.mamba_layers()),
                (hf.linear_layers(), hf.mamba_layers()),
                "{config}"
            );
        }
    }

    /// A list that is cut mid-period still reads as its repeating pattern (Gemma 3 27B: 62
    /// layers, five local then one global).
    #[test]
    fn a_truncated_period_is_still_found() {
        let flags: Vec<bool> = (0..62).map(|i| (i + 1) % 6 != 0).collect();
        assert_eq!(
            LayerMask::of_flags(&flags),
            Some(LayerMask {
                period: 6,
                bits: 0b11111
            })
        );
        let irregular: Vec<bool> = (0..100).map(|i| i == 70).collect();
        assert_eq!(LayerMask::of_flags(&irregular), None);
        assert_eq!(LayerMask::of_flags(&[]).map(|m| m.bits), Some(0));
    }
}
