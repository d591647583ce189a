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
    /// Layers 0, 2, 4, … (Gemma 2 alternates local and global attention).
    Even,
    /// Layers from this index on (Qwen2's `max_window_layers`).
    From(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingWindow {
    pub size: u64,
    pub layers: WindowLayers,
}

/// The distinct layer kinds of a model and how many layers have each: at most four (MoE or
/// dense × windowed or global).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerGroups {
    groups: [(LayerKind, u64); 4],
    len: usize,
}

impl LayerGroups {
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
    type IntoIter = std::iter::Take<std::array::IntoIter<(LayerKind, u64), 4>>;

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
}

/// How one layer is built, for the layers that share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct LayerKind {
    pub moe: bool,
    pub window: Option<u64>,
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

    fn attention_params(&self) -> Option<u64> {
        let h = self.hidden_size;
        let (q, kv) = (
            self.num_heads.checked_mul(self.head_dim)?,
            self.num_kv_heads.checked_mul(self.head_dim)?,
        );
        let weights = sum(&[
            h.checked_mul(q)?,
            limits::product(&[2, h, kv])?,
            q.checked_mul(h)?,
        ])?;
        let qkv_bias = if self.biases.qkv {
            q.checked_add(kv.checked_mul(2)?)?
        } else {
            0
        };
        let out_bias = if self.biases.attn_out { h } else { 0 };
        sum(&[weights, qkv_bias, out_bias])
    }

    fn norm_params(&self) -> Option<u64> {
        self.hidden_size
            .checked_mul(if self.norm_bias { 2 } else { 1 })
    }

    /// The kind of layer `index`.
    pub fn layer_kind(&self, index: u64) -> LayerKind {
        let moe = self.moe.is_some_and(|m| index >= m.first_dense_layers);
        let window = self.sliding_window.and_then(|w| {
            let applies = match w.layers {
                WindowLayers::All => true,
                WindowLayers::Even => index.is_multiple_of(2),
                WindowLayers::From(first) => index >= first,
            };
            applies.then_some(w.size)
        });
        LayerKind { moe, window }
    }

    /// Distinct layer kinds and how many layers have each, in first-seen order. Counted in closed
    /// form (the kinds change only at the first MoE layer, the first windowed layer, and with
    /// parity), so the work does not grow with the number of layers, and kept inline (no
    /// allocation: pricing calls this for every candidate).
    pub fn layer_groups(&self) -> LayerGroups {
        let layers = self.num_layers;
        // Indices where a kind can change, besides parity: at most four, sorted below.
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
        let alternates = matches!(
            self.sliding_window,
            Some(SlidingWindow {
                layers: WindowLayers::Even,
                ..
            })
        );
        let mut groups = LayerGroups::default();
        let mut firsts = [0u64; 4];
        let mut add = |first: u64, count: u64| {
            if count == 0 {
                return;
            }
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
            if alternates && hi > lo + 1 {
                // Indices lo, lo+2, … and lo+1, lo+3, … below hi.
                add(lo, (hi - lo).div_ceil(2));
                add(lo + 1, (hi - lo) / 2);
            } else {
                add(lo, hi - lo);
            }
        }
        // First-seen order (insertion sort on at most four).
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

    /// (total, active) parameters of one layer of `kind`; None on overflow.
    fn layer_params(&self, kind: LayerKind) -> Option<(u64, u64)> {
        let fixed = self
            .attention_params()?
            .checked_add(self.norms_per_layer.checked_mul(self.norm_params()?)?)?;
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
                let router = self.hidden_size.checked_mul(m.num_experts)?;
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
            Positions::Rotary => 0,
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
        })
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
        })
    }

    /// KV-cache elements per token (keys and values, all layers). Multiply by the cache dtype's
    /// size for bytes.
    pub fn kv_elements_per_token(&self) -> u64 {
        self.num_layers
            .saturating_mul(self.kv_width())
            .saturating_mul(2)
    }

    /// Checks sizes are positive and within `limits`, shapes are consistent, and the parameter
    /// count fits; `file` names the input in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        use limits::{at_most, product_at_most, show};
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
            if let WindowLayers::From(first) = w.layers {
                at_most(first, limits::LAYERS)
                    .map_err(|e| Error::field(file, "max_window_layers", e))?;
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
                format!("unsupported activation '{name}' (supported: silu, gelu*, relu)"),
            )
        })
    }
}

fn parse_activation(name: &str) -> Option<Activation> {
    match name {
        "silu" | "swish" => Some(Activation::Silu),
        "relu" => Some(Activation::Relu),
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
    "gemma",
    "gemma2",
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
    let arch = match model_type {
        "gpt2" => gpt2(&f, name)?,
        "llama" | "mistral" | "mixtral" | "qwen2" | "qwen2_moe" | "gemma" | "gemma2" => {
            llama_family(&f, model_type, name)?
        }
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
        ("mixtral", "moe.num_experts") => "num_local_experts",
        ("mixtral", "moe.expert_intermediate_size") => "intermediate_size",
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
        "qwen2" | "qwen2_moe" if f.bool_or("use_sliding_window", false)? => match window_size {
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
        },
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
        }),
        "qwen2_moe" => {
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
        norms_per_layer: if model_type == "gemma2" { 4 } else { 2 },
        positions: Positions::Rotary,
        max_position_embeddings: f.u64_any(&["max_position_embeddings"])?,
        tie_embeddings: f.bool_or("tie_word_embeddings", gemma)?,
        biases,
        sliding_window,
        moe,
    })
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
    #[serde(default)]
    moe: Option<NativeMoe>,
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
        other => {
            return Err(Error::field(
                file,
                "mlp",
                format!(
                    "unknown MLP '{other}' (expected swiglu, geglu, reglu, gelu, silu or relu)"
                ),
            ));
        }
    };
    Ok(Mlp {
        gated,
        activation: act,
    })
}

/// Builds an architecture from the native TOML form.
pub fn from_native_toml(file: &str, text: &str) -> Result<Architecture> {
    let n: NativeArch = parse_toml(file, text)?;
    if n.num_heads == 0 {
        return Err(Error::field(file, "num_heads", "must be positive, got 0"));
    }
    let head_dim = match n.head_dim {
        Some(d) => d,
        None => implied_head_dim(file, "num_heads", "hidden_size", n.num_heads, n.hidden_size)?,
    };
    let moe = n.moe.map(|m| Moe {
        num_experts: m.num_experts,
        top_k: m.top_k,
        expert_intermediate_size: m.expert_intermediate_size,
        shared_experts: m.shared_experts,
        shared_intermediate_size: m
            .shared_intermediate_size
            .unwrap_or(m.expert_intermediate_size),
        shared_expert_gate: false,
        first_dense_layers: m.first_dense_layers,
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
        sliding_window: n.sliding_window.map(|size| SlidingWindow {
            size,
            layers: WindowLayers::All,
        }),
        moe,
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
        ];
        for layers in [1, 2, 3, 7, 8, 32] {
            for first_dense in [None, Some(0), Some(1), Some(2), Some(5), Some(50)] {
                for window in windows {
                    let mut a = base.clone();
                    a.num_layers = layers;
                    a.moe = first_dense.map(|f| Moe {
                        first_dense_layers: f,
                        ..base.moe.unwrap()
                    });
                    a.sliding_window = window.map(|layers| SlidingWindow { size: 64, layers });
                    assert_eq!(
                        a.layer_groups().to_vec(),
                        walk(&a),
                        "{layers} {first_dense:?} {window:?}"
                    );
                }
            }
        }
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
                        window: Some(4096)
                    },
                    13
                ),
                (
                    LayerKind {
                        moe: false,
                        window: None
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
