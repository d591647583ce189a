//! A search space: a base architecture, lists of values for the fields that vary, the fixed
//! workload, constraints, the quality law and the objectives — read from TOML (docs/frontier.md).
//! Candidates are the grid's points, or seeded samples of it (random or Latin hypercube).

use crate::error::{Error, Result, parse_toml};
use crate::model::arch::{self, Architecture, Moe};
use crate::model::dtype::DType;
use crate::model::execution::{
    Execution, InferenceSetup, Parallelism, Recompute, TrainingSetup, attention_dtype,
};
use crate::model::frontier::measured::{self, Measured};
use crate::model::frontier::quality::{ParameterCount, ScalingLaw};
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

/// The most candidates a space may hold or sample (each is priced).
pub const MAX_CANDIDATES: u64 = 100_000_000;

/// A field a space varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Layers,
    HiddenSize,
    Heads,
    KvHeads,
    HeadDim,
    IntermediateSize,
    /// Intermediate size as a multiple of the hidden size (rounded to `intermediate_multiple`).
    MlpRatio,
    Experts,
    TopK,
    ExpertIntermediateSize,
    SharedExperts,
    VocabSize,
    /// Training sequence length.
    Seq,
    Dtype,
    KvDtype,
}

impl Field {
    pub const ALL: [Field; 15] = [
        Field::Layers,
        Field::HiddenSize,
        Field::Heads,
        Field::KvHeads,
        Field::HeadDim,
        Field::IntermediateSize,
        Field::MlpRatio,
        Field::Experts,
        Field::TopK,
        Field::ExpertIntermediateSize,
        Field::SharedExperts,
        Field::VocabSize,
        Field::Seq,
        Field::Dtype,
        Field::KvDtype,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Layers => "layers",
            Field::HiddenSize => "hidden_size",
            Field::Heads => "heads",
            Field::KvHeads => "kv_heads",
            Field::HeadDim => "head_dim",
            Field::IntermediateSize => "intermediate_size",
            Field::MlpRatio => "mlp_ratio",
            Field::Experts => "experts",
            Field::TopK => "top_k",
            Field::ExpertIntermediateSize => "expert_intermediate_size",
            Field::SharedExperts => "shared_experts",
            Field::VocabSize => "vocab_size",
            Field::Seq => "seq",
            Field::Dtype => "dtype",
            Field::KvDtype => "kv_dtype",
        }
    }

    pub fn by_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// One value of a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Ratio(f64),
    Dtype(DType),
}

impl Value {
    /// A value of `field` as JSON gives it (the score stream, measured losses), or why not.
    pub fn from_json(field: Field, v: &serde_json::Value) -> std::result::Result<Value, String> {
        match (field, v) {
            (Field::Dtype | Field::KvDtype, serde_json::Value::String(s)) => {
                s.parse().map(Value::Dtype).map_err(|e| e.to_string())
            }
            (Field::MlpRatio, serde_json::Value::Number(x)) => match x.as_f64() {
                Some(r) if r.is_finite() && r > 0.0 => Ok(Value::Ratio(r)),
                _ => Err("must be a positive number".into()),
            },
            (_, serde_json::Value::Number(x)) => match x.as_u64() {
                Some(n) if n > 0 => Ok(Value::Int(n)),
                _ => Err("must be a positive integer".into()),
            },
            (_, other) => Err(format!("{other} is not a valid value")),
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        match self {
            Value::Int(v) => v.into(),
            Value::Ratio(v) => v.into(),
            Value::Dtype(d) => d.name().into(),
        }
    }
}

/// A field and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub field: Field,
    pub values: Vec<Value>,
}

/// How candidates are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every point of the grid.
    Grid,
    /// Each field's value drawn uniformly and independently.
    Random,
    /// Latin hypercube: every field's values used equally often across the samples.
    LatinHypercube,
    /// A Sobol low-discrepancy sequence (Joe and Kuo's direction numbers), randomized by a
    /// seeded digital shift: every prefix covers the space more evenly than random draws.
    Sobol,
}

/// The fixed workload every candidate is priced under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// A catalog GPU or a profile file (overridden by `--hw`).
    pub hw: Option<String>,
    /// Tokens to train on; or `compute_budget_flops`, which gives each candidate D = C / (6 N).
    pub training_tokens: Option<f64>,
    pub compute_budget_flops: Option<f64>,
    #[serde(default = "default_train_batch")]
    pub train_batch: u64,
    #[serde(default = "default_seq")]
    pub seq: u64,
    #[serde(default = "default_dtype")]
    pub dtype: String,
    pub kv_dtype: Option<String>,
    #[serde(default = "default_serve_batch")]
    pub serve_batch: u64,
    #[serde(default = "default_prompt")]
    pub prompt: u64,
    #[serde(default = "default_generate")]
    pub generate: u64,
    pub price_per_gpu_hour: Option<f64>,
    /// How a training step is split over GPUs (`[workload.training_layout]`: tp, pp, dp, …;
    /// see docs/clusters.md); one GPU by default.
    #[serde(default)]
    pub training_layout: Parallelism,
    /// How serving is split (tp, pp, and dp for replicas).
    #[serde(default)]
    pub serving_layout: Parallelism,
}

fn default_train_batch() -> u64 {
    1
}
fn default_seq() -> u64 {
    4096
}
fn default_dtype() -> String {
    "bf16".into()
}
fn default_serve_batch() -> u64 {
    1
}
fn default_prompt() -> u64 {
    1024
}
fn default_generate() -> u64 {
    256
}

/// Candidates that break one of these are counted as invalid, by reason.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    #[serde(default)]
    pub fits_training: bool,
    #[serde(default)]
    pub fits_serving: bool,
    pub params_min: Option<f64>,
    pub params_max: Option<f64>,
    pub ttft_max_s: Option<f64>,
    pub tpot_max_s: Option<f64>,
    /// The hidden size must be a multiple of this.
    pub hidden_multiple_of: Option<u64>,
}

/// The quality proxy: a named law or the coefficients of one, and the parameter count it uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    pub law: Option<String>,
    pub e: Option<f64>,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    #[serde(default = "default_parameters")]
    pub parameters: ParameterCount,
    /// For mixture-of-experts candidates: which count stands for N. The literature has no
    /// settled rule (Clark et al. 2022; Krajewski et al. 2024), so there is no default.
    pub moe_parameters: Option<ParameterCount>,
    /// Measured losses (JSONL or CSV, relative to the space file) that replace the proxy for
    /// the candidates they match.
    pub measured: Option<String>,
}

fn default_parameters() -> ParameterCount {
    ParameterCount::Total
}

/// The objectives and their senses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    #[serde(default)]
    pub minimize: Vec<String>,
    #[serde(default)]
    pub maximize: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSpec {
    pub method: Method,
    pub samples: Option<u64>,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceFile {
    name: Option<String>,
    base: String,
    #[serde(default = "default_intermediate_multiple")]
    intermediate_multiple: u64,
    grid: toml::Table,
    workload: Workload,
    #[serde(default)]
    constraints: Constraints,
    quality: Option<QualitySpec>,
    objectives: ObjectiveSpec,
    sampling: Option<SamplingSpec>,
}

fn default_intermediate_multiple() -> u64 {
    256
}

/// A parsed, checked search space.
#[derive(Debug, Clone)]
pub struct Space {
    pub name: String,
    pub file: String,
    pub base: Architecture,
    pub intermediate_multiple: u64,
    pub axes: Vec<Axis>,
    pub workload: Workload,
    pub constraints: Constraints,
    pub law: ScalingLaw,
    pub parameters: ParameterCount,
    pub moe_parameters: Option<ParameterCount>,
    /// Measured losses joined in by field values.
    pub measured: Vec<Measured>,
    pub objectives: ObjectiveSpec,
    pub sampling: SamplingSpec,
}

/// One candidate: an index into each axis's values.
pub type Point = Vec<u32>;

impl Space {
    pub fn parse(file: &str, text: &str) -> Result<Space> {
        let f: SpaceFile = parse_toml(file, text)?;
        let base = arch::load(&f.base).map_err(|e| Error::field(file, "base", e.to_string()))?;
        let mut axes = Vec::new();
        for (key, value) in &f.grid {
            let field = Field::by_name(key).ok_or_else(|| {
                Error::field(
                    file,
                    &format!("grid.{key}"),
                    format!(
                        "unknown field (known: {})",
                        Field::ALL.map(Field::name).join(", ")
                    ),
                )
            })?;
            axes.push(Axis {
                field,
                values: axis_values(file, key, field, value)?,
            });
        }
        if axes.is_empty() {
            return Err(Error::field(file, "grid", "names no field to vary"));
        }
        // Fields in a fixed order (tables and CSV columns), whatever the file's order.
        axes.sort_by_key(|a: &Axis| Field::ALL.iter().position(|f| *f == a.field));
        let measured = match f.quality.as_ref().and_then(|q| q.measured.as_ref()) {
            None => Vec::new(),
            Some(rel) => {
                let path = std::path::Path::new(file)
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(rel);
                let name = path.display().to_string();
                measured::parse(&name, &crate::error::read_to_string(&path)?)?
            }
        };
        let (law, parameters, moe_parameters) = match &f.quality {
            None => (ScalingLaw::HOFFMANN, ParameterCount::Total, None),
            Some(q) => {
                let law = match (&q.law, q.e, q.a, q.b, q.alpha, q.beta) {
                    (Some(name), None, None, None, None, None) => ScalingLaw::named(name)
                        .ok_or_else(|| {
                            Error::field(
                                file,
                                "quality.law",
                                format!("unknown law '{name}' (known: hoffmann, besiroglu)"),
                            )
                        })?,
                    (None, Some(e), Some(a), Some(b), Some(alpha), Some(beta)) => ScalingLaw {
                        e,
                        a,
                        b,
                        alpha,
                        beta,
                    },
                    (None, None, None, None, None, None) => ScalingLaw::HOFFMANN,
                    _ => {
                        return Err(Error::field(
                            file,
                            "quality",
                            "give either law = NAME or all of e, a, b, alpha, beta",
                        ));
                    }
                };
                law.validate(file)?;
                (law, q.parameters, q.moe_parameters)
            }
        };
        let sampling = f.sampling.unwrap_or(SamplingSpec {
            method: Method::Grid,
            samples: None,
            seed: 0,
        });
        let w = &f.workload;
        match (w.training_tokens, w.compute_budget_flops) {
            (Some(d), None) if d.is_finite() && d > 0.0 => {}
            (None, Some(c)) if c.is_finite() && c > 0.0 => {}
            _ => {
                return Err(Error::field(
                    file,
                    "workload",
                    "give one positive, finite training_tokens or compute_budget_flops",
                ));
            }
        }
        if f.intermediate_multiple == 0 {
            return Err(Error::field(
                file,
                "intermediate_multiple",
                "must be positive",
            ));
        }
        let space = Space {
            name: f.name.unwrap_or_else(|| file.to_string()),
            file: file.to_string(),
            base,
            intermediate_multiple: f.intermediate_multiple,
            axes,
            workload: f.workload,
            constraints: f.constraints,
            law,
            parameters,
            moe_parameters,
            measured,
            objectives: f.objectives,
            sampling,
        };
        space.size()?;
        Ok(space)
    }

    /// Points in the full grid (refused past `MAX_CANDIDATES` for the grid method).
    pub fn size(&self) -> Result<u64> {
        let mut n: u64 = 1;
        for a in &self.axes {
            n = n.saturating_mul(a.values.len() as u64);
        }
        let drawn = match self.sampling.method {
            Method::Grid => n,
            _ => self.sampling.samples.unwrap_or(0),
        };
        if drawn == 0 || drawn > MAX_CANDIDATES {
            return Err(Error::field(
                &self.file,
                match self.sampling.method {
                    Method::Grid => "grid",
                    _ => "sampling.samples",
                },
                format!(
                    "{drawn} candidates: between 1 and {MAX_CANDIDATES} (sample a large grid: [sampling] method = \"random\", \"latin_hypercube\" or \"sobol\", samples = N)"
                ),
            ));
        }
        Ok(n)
    }

    /// The candidates to price: every grid point, or the distinct points among `samples` seeded
    /// draws (a draw can repeat an earlier one when the lists are short).
    pub fn points(&self) -> Vec<Point> {
        let mut points = self.draws();
        if self.sampling.method != Method::Grid {
            // A point's mixed-radix number names it: compare those, not the index vectors.
            let lens: Vec<u128> = self.axes.iter().map(|a| a.values.len() as u128).collect();
            let code = |p: &[u32]| {
                p.iter().zip(&lens).try_fold(0u128, |acc, (&i, &l)| {
                    acc.checked_mul(l)?.checked_add(i.into())
                })
            };
            if lens
                .iter()
                .try_fold(1u128, |a, &l| a.checked_mul(l))
                .is_some()
            {
                let mut seen = rustc_hash::FxHashSet::default();
                seen.reserve(points.len());
                points.retain(|p| code(p).is_some_and(|c| seen.insert(c)));
            } else {
                let mut seen = rustc_hash::FxHashSet::default();
                seen.reserve(points.len());
                points.retain(|p| seen.insert(p.clone()));
            }
        }
        points
    }

    fn draws(&self) -> Vec<Point> {
        let lens: Vec<u32> = self.axes.iter().map(|a| a.values.len() as u32).collect();
        match self.sampling.method {
            Method::Grid => {
                let total: usize = lens.iter().map(|&l| l as usize).product();
                (0..total)
                    .map(|mut i| {
                        lens.iter()
                            .map(|&l| {
                                let v = (i % l as usize) as u32;
                                i /= l as usize;
                                v
                            })
                            .collect()
                    })
                    .collect()
            }
            Method::Random => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.sampling.seed);
                let n = self.sampling.samples.unwrap_or(0);
                (0..n)
                    .map(|_| lens.iter().map(|&l| rng.random_range(0..l)).collect())
                    .collect()
            }
            Method::LatinHypercube => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.sampling.seed);
                let n = self.sampling.samples.unwrap_or(0) as usize;
                // Per field: n strata of [0, 1) in a random order, one draw in each.
                let columns: Vec<Vec<u32>> = lens
                    .iter()
                    .map(|&l| {
                        let mut strata: Vec<usize> = (0..n).collect();
                        for i in (1..n).rev() {
                            strata.swap(i, rng.random_range(0..=i));
                        }
                        strata
                            .into_iter()
                            .map(|s| {
                                let u = (s as f64 + rng.random::<f64>()) / n as f64;
                                ((u * l as f64) as u32).min(l - 1)
                            })
                            .collect()
                    })
                    .collect();
                (0..n)
                    .map(|i| columns.iter().map(|c| c[i]).collect())
                    .collect()
            }
            Method::Sobol => {
                use sobol::{Sobol, params::JoeKuoD6};
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.sampling.seed);
                let shifts: Vec<u32> = lens.iter().map(|_| rng.random()).collect();
                let n = self.sampling.samples.unwrap_or(0) as usize;
                // Each coordinate spans the u32 range; its top bits pick the value.
                Sobol::<u32>::new(lens.len(), &JoeKuoD6::minimal())
                    .take(n)
                    .map(|x| {
                        x.iter()
                            .zip(&shifts)
                            .zip(&lens)
                            .map(|((&x, &shift), &l)| {
                                ((u64::from(x ^ shift) * u64::from(l)) >> 32) as u32
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The value of `field` at `point`, if the space varies it.
    pub fn value(&self, point: &[u32], field: Field) -> Option<Value> {
        self.axes
            .iter()
            .zip(point)
            .find(|(a, _)| a.field == field)
            .map(|(a, &i)| a.values[i as usize])
    }

    /// The measured loss of a point, where a measured row matches its field values.
    pub fn measured_loss(&self, point: &[u32]) -> Option<f64> {
        if self.measured.is_empty() {
            return None;
        }
        measured::lookup(&self.measured, |f| self.value(point, f))
    }

    /// The architecture and execution of a point, or why the combination is not a model.
    pub fn realize(&self, point: &[u32]) -> std::result::Result<(Architecture, Execution), String> {
        let int = |f: Field| match self.value(point, f) {
            Some(Value::Int(v)) => Some(v),
            _ => None,
        };
        let dtype_of = |f: Field| match self.value(point, f) {
            Some(Value::Dtype(d)) => Some(d),
            _ => None,
        };
        let mut a = self.base.clone();
        if let Some(v) = int(Field::Layers) {
            a.num_layers = v;
        }
        if let Some(v) = int(Field::HiddenSize) {
            a.hidden_size = v;
        }
        if let Some(v) = int(Field::Heads) {
            a.num_heads = v;
            if int(Field::KvHeads).is_none() && self.base.num_kv_heads == self.base.num_heads {
                a.num_kv_heads = v;
            }
        }
        if let Some(v) = int(Field::KvHeads) {
            a.num_kv_heads = v;
        }
        match int(Field::HeadDim) {
            Some(v) => a.head_dim = v,
            None if int(Field::HiddenSize).is_some() || int(Field::Heads).is_some() => {
                if a.num_heads == 0 || !a.hidden_size.is_multiple_of(a.num_heads) {
                    return Err("heads must divide hidden_size".into());
                }
                a.head_dim = a.hidden_size / a.num_heads;
            }
            None => {}
        }
        if let Some(v) = int(Field::IntermediateSize) {
            a.intermediate_size = v;
        }
        if let Some(Value::Ratio(r)) = self.value(point, Field::MlpRatio) {
            let m = self.intermediate_multiple as f64;
            a.intermediate_size = ((r * a.hidden_size as f64 / m).round() * m) as u64;
        }
        let moe_fields = [
            Field::Experts,
            Field::TopK,
            Field::ExpertIntermediateSize,
            Field::SharedExperts,
        ];
        if moe_fields.iter().any(|&f| int(f).is_some()) {
            let mut m = a.moe.unwrap_or(Moe {
                num_experts: 1,
                top_k: 1,
                expert_intermediate_size: a.intermediate_size,
                shared_experts: 0,
                shared_intermediate_size: a.intermediate_size,
                shared_expert_gate: false,
                first_dense_layers: 0,
                router_bias: false,
            });
            if let Some(v) = int(Field::Experts) {
                m.num_experts = v;
            }
            if let Some(v) = int(Field::TopK) {
                m.top_k = v;
            }
            if let Some(v) = int(Field::ExpertIntermediateSize) {
                m.expert_intermediate_size = v;
            }
            if let Some(v) = int(Field::SharedExperts) {
                m.shared_experts = v;
            }
            if m.top_k > m.num_experts {
                return Err("top_k exceeds experts".into());
            }
            a.moe = Some(m);
        }
        if let Some(v) = int(Field::VocabSize) {
            a.vocab_size = v;
        }
        if a.num_kv_heads == 0 || !a.num_heads.is_multiple_of(a.num_kv_heads) {
            return Err("kv_heads must divide heads".into());
        }
        if let Some(m) = self.constraints.hidden_multiple_of
            && m > 0
            && !a.hidden_size.is_multiple_of(m)
        {
            return Err(format!("hidden_size not a multiple of {m}"));
        }
        a.validate(&self.file).map_err(|e| e.to_string())?;
        let w = &self.workload;
        let dtype = match dtype_of(Field::Dtype) {
            Some(d) => d,
            None => w
                .dtype
                .parse()
                .map_err(|e| format!("workload.dtype: {e}"))?,
        };
        let kv_dtype = match (dtype_of(Field::KvDtype), &w.kv_dtype) {
            (Some(d), _) => d,
            (None, Some(s)) => s.parse().map_err(|e| format!("workload.kv_dtype: {e}"))?,
            (None, None) => attention_dtype(dtype),
        };
        let execution = Execution {
            training: TrainingSetup {
                batch: w.train_batch,
                seq: int(Field::Seq).unwrap_or(w.seq),
                dtype,
                recompute: Recompute::None,
                dropout: false,
                fused_attention: true,
                parallelism: w.training_layout,
            },
            serving: InferenceSetup {
                batch: w.serve_batch,
                prompt: w.prompt,
                generate: w.generate,
                dtype,
                kv_dtype,
                fused_attention: true,
                parallelism: w.serving_layout,
                speculative_acceptance: None,
            },
        };
        execution.validate().map_err(|e| e.to_string())?;
        for layout in [&w.training_layout, &w.serving_layout] {
            crate::model::parallel::check_layout(&a, layout).map_err(|e| e.to_string())?;
        }
        Ok((a, execution))
    }
}

/// The values of one grid field, checked for its kind.
fn axis_values(file: &str, key: &str, field: Field, value: &toml::Value) -> Result<Vec<Value>> {
    let path = format!("grid.{key}");
    let items = match value {
        toml::Value::Array(items) if !items.is_empty() => items.clone(),
        toml::Value::Array(_) => return Err(Error::field(file, &path, "is an empty list")),
        single => vec![single.clone()],
    };
    items
        .iter()
        .map(|v| match (field, v) {
            (Field::Dtype | Field::KvDtype, toml::Value::String(s)) => s
                .parse()
                .map(Value::Dtype)
                .map_err(|e| Error::field(file, &path, e.to_string())),
            (Field::MlpRatio, toml::Value::Float(r)) if r.is_finite() && *r > 0.0 => {
                Ok(Value::Ratio(*r))
            }
            (Field::MlpRatio, toml::Value::Integer(r)) if *r > 0 => Ok(Value::Ratio(*r as f64)),
            (Field::Dtype | Field::KvDtype | Field::MlpRatio, other) => Err(Error::field(
                file,
                &path,
                format!("{other} is not a valid value"),
            )),
            (_, toml::Value::Integer(n)) if *n > 0 => Ok(Value::Int(*n as u64)),
            (_, other) => Err(Error::field(
                file,
                &path,
                format!("{other} is not a positive integer"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(grid: &str, sampling: &str) -> Result<Space> {
        Space::parse(
            "space.toml",
            &format!(
                r#"
base = "llama-3-8b"
[grid]
{grid}
[workload]
training_tokens = 1e11
[objectives]
minimize = ["loss", "training_gpu_hours"]
{sampling}
"#
            ),
        )
    }

    #[test]
    fn the_grid_is_every_combination() {
        let s = space("layers = [8, 16, 24]\nhidden_size = [1024, 2048]", "").unwrap();
        let points = s.points();
        assert_eq!(points.len(), 6);
        let mut seen: Vec<(u64, u64)> = points
            .iter()
            .map(|p| {
                let (a, _) = s.realize(p).unwrap();
                (a.num_layers, a.hidden_size)
            })
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn sampling_is_seeded_and_latin_hypercube_balances_each_field() {
        let grid = "layers = [8, 16, 24, 32]\nhidden_size = [1024, 2048, 3072, 4096]";
        let lhs = "[sampling]\nmethod = \"latin_hypercube\"\nsamples = 400\nseed = 7";
        let s = space(grid, lhs).unwrap();
        let p = s.draws();
        assert_eq!(p, s.draws());
        for axis in 0..2 {
            for v in 0..4u32 {
                let n = p.iter().filter(|x| x[axis] == v).count();
                assert_eq!(n, 100, "axis {axis} value {v}");
            }
        }
        // 16 grid points: the 400 draws hold each once.
        assert_eq!(s.points().len(), 16);
        let random = space(
            grid,
            "[sampling]\nmethod = \"random\"\nsamples = 50\nseed = 1",
        )
        .unwrap()
        .points();
        assert!(random.len() <= 16 && !random.is_empty());
    }

    /// A Sobol sample is seeded, and every field's values come up in equal shares over a
    /// power-of-two prefix (each coordinate is a (0, m, 1)-net); another seed shifts it.
    #[test]
    fn sobol_sampling_is_seeded_and_balanced() {
        let grid =
            "layers = [8, 16, 24, 32]\nhidden_size = [1024, 2048, 3072, 4096]\nheads = [8, 16]";
        let sobol = |seed| {
            space(
                grid,
                &format!("[sampling]\nmethod = \"sobol\"\nsamples = 256\nseed = {seed}"),
            )
            .unwrap()
        };
        let s = sobol(7);
        let p = s.draws();
        assert_eq!(p.len(), 256);
        assert_eq!(p, s.draws());
        assert_ne!(p, sobol(8).draws());
        for (axis, values) in [(0, 4u32), (1, 4), (2, 2)] {
            for v in 0..values {
                let n = p.iter().filter(|x| x[axis] == v).count();
                assert_eq!(n, 256 / values as usize, "axis {axis} value {v}");
            }
        }
        // Pairs of fields are balanced too: each of the 16 (layers, hidden) cells 16 times.
        for a in 0..4u32 {
            for b in 0..4u32 {
                let n = p.iter().filter(|x| x[0] == a && x[1] == b).count();
                assert_eq!(n, 16, "cell ({a}, {b})");
            }
        }
        assert_eq!(s.points().len(), 32);
    }

    #[test]
    fn impossible_combinations_are_explained() {
        let s = space("heads = [32, 48]\nkv_heads = [8, 7]", "").unwrap();
        let reasons: Vec<String> = s
            .points()
            .iter()
            .filter_map(|p| s.realize(p).err())
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("kv_heads must divide heads"))
        );
        // 48 heads do not divide 4096: the head dim is not whole.
        let s = space("heads = [48]", "").unwrap();
        assert!(
            s.realize(&s.points()[0])
                .unwrap_err()
                .contains("divide hidden_size")
        );
    }

    #[test]
    fn bad_spaces_name_the_field() {
        let e = space("depth = [1]", "").unwrap_err().to_string();
        assert!(
            e.contains("grid.depth") && e.contains("unknown field"),
            "{e}"
        );
        let e = space("layers = []", "").unwrap_err().to_string();
        assert!(e.contains("grid.layers"), "{e}");
        let e = space("layers = [-3]", "").unwrap_err().to_string();
        assert!(e.contains("positive integer"), "{e}");
        let e = space("layers = [1]", "[sampling]\nmethod = \"random\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sampling.samples"), "{e}");
    }
}
