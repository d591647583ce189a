//! The library's entry points for programs: what `gpucost predict`, `gpucost frontier` and
//! `gpucost score` compute, from plain inputs to the JSON documents they print. The command line
//! and the Python package (`python/`) both call these, so a program gets the CLI's answers, and
//! its refusals, word for word. Needs no GPU crate.

use crate::error::{Error, Result};
use crate::model::arch::{self, Architecture};
use crate::model::execution::{
    Execution, InferenceSetup, Parallelism, Recompute, TrainingSetup, attention_dtype,
};
use crate::model::frontier::objectives::{Objective, Scores, score, use_measured_loss};
use crate::model::frontier::search::{self, Frontier};
use crate::model::frontier::space::{Axis, Field, Space, Value};
use crate::model::ops::limits;
use crate::model::plan::{Plan, plan_into};
use crate::model::price::{Pricer, Scorer, price};
use crate::model::report::{Estimate, Options, estimate};
use crate::model::schema;
use crate::model::system::{Stack, System};
use serde::Deserialize;
use serde_json::{Map, json};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Spaces and the system they are priced on (`frontier`, `score`)

/// What a space is priced on: `--hw` (default: the space's `workload.hw`), `--roofline` and
/// `--stack` of `frontier` and `score`.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    pub hw: Option<String>,
    pub roofline: bool,
    pub stack: String,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            hw: None,
            roofline: false,
            stack: "production".into(),
        }
    }
}

/// Where a search space comes from.
#[derive(Debug, Clone, Copy)]
pub enum SpaceSource<'a> {
    /// A TOML file; its errors name it, and a measured-loss file is relative to its folder.
    File(&'a Path),
    /// TOML text; its errors name `name`, and a measured-loss file is relative to the current
    /// folder.
    Text { name: &'a str, toml: &'a str },
}

/// Reads and checks a space, and loads the system it is priced on.
pub fn load_space(source: SpaceSource, opts: &SystemOptions) -> Result<(Space, System)> {
    let space = match source {
        SpaceSource::File(path) => {
            let text = crate::error::read_to_string(path)?;
            Space::parse(&path.display().to_string(), &text)?
        }
        SpaceSource::Text { name, toml } => Space::parse(name, toml)?,
    };
    let hw = match (&opts.hw, &space.workload.hw) {
        (Some(h), _) => h.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => {
            return Err(Error::field(
                &space.file,
                "workload.hw",
                "no GPU: give it here or pass --hw",
            ));
        }
    };
    let system = System::load_with(&hw, None, opts.roofline, Stack::parse(&opts.stack))?;
    Ok((space, system))
}

/// A finite number, or null.
fn num(v: f64) -> serde_json::Value {
    if v.is_finite() {
        json!(v)
    } else {
        serde_json::Value::Null
    }
}

/// Every objective by name: its value where finite, else null (also null without scores).
pub fn objectives_json(s: Option<&Scores>) -> Map<String, serde_json::Value> {
    Objective::ALL
        .iter()
        .map(|o| (o.name().to_string(), num(s.map_or(f64::NAN, |s| s.get(*o)))))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `score`: one candidate at a time

/// Scores candidates of one space, one at a time, with op prices memoized across them (a search
/// that revisits shapes is fast).
pub struct Scoring<'s> {
    /// One copy of the space whose axes each candidate replaces (a clone per candidate would
    /// dominate).
    one: Space,
    system: &'s System,
    pricer: Pricer<'s>,
    plan: Plan,
}

impl<'s> Scoring<'s> {
    pub fn new(space: &Space, system: &'s System) -> Self {
        Scoring {
            one: space.clone(),
            system,
            pricer: Pricer::new(system),
            plan: Plan::default(),
        }
    }

    /// The answer for one candidate — a JSON object of space fields, as text — or why it cannot
    /// be scored: `{"error_pct", "fits_serving", "fits_training", "loss_source", "objectives",
    /// "schema_version"}`.
    pub fn answer(&mut self, candidate: &[u8]) -> std::result::Result<Answer, String> {
        let fields: Map<String, serde_json::Value> =
            serde_json::from_slice(candidate).map_err(|e| format!("not a JSON object: {e}"))?;
        let one = &mut self.one;
        one.axes.clear();
        for (key, v) in &fields {
            let field = Field::by_name(key).ok_or_else(|| format!("{key}: unknown field"))?;
            let value = Value::from_json(field, v).map_err(|e| format!("{key}: {e}"))?;
            one.axes.push(Axis {
                field,
                values: vec![value],
            });
        }
        let point = vec![0u32; one.axes.len()];
        let (arch, execution) = one.realize(&point)?;
        // `realize` checked the model and the execution.
        plan_into(&mut self.plan, &arch, &execution);
        let cost =
            price(&arch, &execution, &self.plan, &mut self.pricer).map_err(|e| e.to_string())?;
        let mut s = score(one, &arch, &execution, &cost, &self.system.hw);
        if let Some(loss) = one.measured_loss(&point) {
            use_measured_loss(&mut s, loss);
        }
        Ok(Answer(s))
    }

    /// `answer`, or `{"error": "WHERE: why"}` in its place (`at` says where, only when needed).
    pub fn answer_or_error(&mut self, candidate: &[u8], at: impl FnOnce() -> String) -> Reply {
        match self.answer(candidate) {
            Ok(a) => Reply::Scored(Box::new(a)),
            Err(e) => Reply::error(&at(), &e),
        }
    }
}

/// One candidate's scores as the `score` stream writes them, serialized straight from the
/// numbers (keys in alphabetical order, as a JSON object map orders them).
#[derive(Debug, Clone)]
pub struct Answer(pub Scores);

/// What the stream answers for one line.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// Boxed: the scores are much larger than a refusal.
    Scored(Box<Answer>),
    Refused {
        error: String,
    },
}

impl Reply {
    /// The answer given in place of a candidate that cannot be scored.
    pub fn error(at: &str, why: &str) -> Reply {
        Reply::Refused {
            error: format!("{at}: {why}"),
        }
    }
}

/// The objectives in the order their names sort.
fn objectives_by_name() -> &'static [Objective] {
    static ORDER: std::sync::OnceLock<Vec<Objective>> = std::sync::OnceLock::new();
    ORDER.get_or_init(|| {
        let mut all = Objective::ALL.to_vec();
        all.sort_by_key(|o| o.name());
        all
    })
}

/// Every objective by name, its value where finite, else null.
struct Values<'a>(&'a Scores);

/// The objectives with an error bar, by name.
struct Bars<'a>(&'a Scores);

impl serde::Serialize for Values<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(Some(Objective::ALL.len()))?;
        for o in objectives_by_name() {
            let v = self.0.get(*o);
            m.serialize_entry(o.name(), &v.is_finite().then_some(v))?;
        }
        m.end()
    }
}

impl serde::Serialize for Bars<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        for o in objectives_by_name()
            .iter()
            .filter(|o| self.0.bar(**o) > 0.0)
        {
            m.serialize_entry(o.name(), &self.0.bar(*o))?;
        }
        m.end()
    }
}

impl serde::Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = &self.0;
        let mut m = ser.serialize_map(Some(6))?;
        m.serialize_entry("error_pct", &Bars(s))?;
        m.serialize_entry("fits_serving", &s.fits_serving)?;
        m.serialize_entry("fits_training", &s.fits_training)?;
        let source = if s.loss_measured {
            "measured"
        } else {
            "scaling_law"
        };
        m.serialize_entry("loss_source", source)?;
        m.serialize_entry("objectives", &Values(s))?;
        m.serialize_entry("schema_version", &schema::SCORE)?;
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// `frontier`: every candidate ranked

/// The candidates shown, frontier first: the first `top`, or all for 0.
pub fn shown(f: &Frontier, top: usize) -> Vec<usize> {
    let order = f.ordered();
    if top == 0 {
        order
    } else {
        order.into_iter().take(top).collect()
    }
}

/// A candidate's varied fields, as JSON.
fn fields(space: &Space, point: &[u32]) -> Map<String, serde_json::Value> {
    space
        .axes
        .iter()
        .zip(point)
        .map(|(ax, &i)| (ax.field.name().to_string(), ax.values[i as usize].to_json()))
        .collect()
}

/// The `frontier --format json` document for the `shown` candidates of `f`.
pub fn frontier_document(
    space: &Space,
    scorer: &Scorer,
    f: &Frontier,
    shown: &[usize],
) -> serde_json::Value {
    let system = scorer.system();
    let candidates: Vec<serde_json::Value> = shown
        .iter()
        .map(|&i| {
            let c = &f.candidates[i];
            // Every objective, not only the ranked ones: recomputed for what is shown.
            let s = search::scores_of(space, scorer, &c.point);
            let bars: Map<String, serde_json::Value> = f
                .goals
                .iter()
                .zip(&c.bars_pct)
                .map(|(g, b)| (g.objective.name().to_string(), json!(b)))
                .collect();
            json!({
                "fields": fields(space, &c.point),
                "objectives": objectives_json(s.as_ref()),
                "error_pct": bars,
                "fits_training": s.is_some_and(|s| s.fits_training),
                "fits_serving": s.is_some_and(|s| s.fits_serving),
                "loss_source": if c.loss_measured { "measured" } else { "scaling_law" },
                "pareto_rank": f.ranks[i],
                "crowding": num(f.crowding[i]),
                "possibly_optimal": f.possibly_optimal[i],
            })
        })
        .collect();
    json!({
        "schema_version": schema::FRONTIER,
        "space": space.name,
        "file": space.file,
        "hardware": system.hw.name,
        "cost_model": system.describe(),
        "scaling_law": space.law,
        "objectives": f.goals.iter().map(|g| json!({
            "name": g.objective.name(),
            "sense": if g.minimize() { "minimize" } else { "maximize" },
        })).collect::<Vec<_>>(),
        "drawn": f.drawn,
        "valid": f.candidates.len(),
        "invalid": f.invalid.iter().map(|(r, n)| json!({"reason": r, "count": n})).collect::<Vec<_>>(),
        "frontier_size": f.ranks.iter().filter(|r| **r == 0).count(),
        "possibly_optimal": f.possibly_optimal.iter().filter(|p| **p).count(),
        "hypervolume": f.hypervolume.map(num),
        "candidates": candidates,
    })
}

/// Prices and ranks every candidate of `space` on `system`: the `frontier --format json`
/// document with the first `top` candidates (0: all).
pub fn frontier(space: &Space, system: &System, top: usize) -> Result<serde_json::Value> {
    let scorer = Scorer::new(system);
    let f = search::run(space, &scorer, &|_| {})?;
    Ok(frontier_document(space, &scorer, &f, &shown(&f, top)))
}

// ---------------------------------------------------------------------------------------------
// `predict`: one architecture on one GPU

/// The model to predict: a short name or a file path, or a Hugging Face `config.json` as an
/// object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ModelSpec {
    Name(String),
    Config(Map<String, serde_json::Value>),
}

impl ModelSpec {
    pub fn load(&self) -> Result<Architecture> {
        match self {
            ModelSpec::Name(name) => arch::load(name),
            // Errors name the argument: "model: num_attention_heads: missing".
            ModelSpec::Config(config) => arch::from_hf_config(
                "model",
                &serde_json::Value::Object(config.clone()).to_string(),
            ),
        }
    }
}

/// Everything `gpucost predict` takes, with its defaults. Integers are signed so that a negative
/// value gets the same one-line refusal as on the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    pub model: ModelSpec,
    pub hw: String,
    #[serde(default = "defaults::dtype")]
    pub dtype: String,
    /// Default: the attention dtype.
    #[serde(default)]
    pub kv_dtype: Option<String>,
    #[serde(default = "defaults::batch")]
    pub batch: i64,
    #[serde(default = "defaults::seq")]
    pub seq: i64,
    #[serde(default = "defaults::prompt")]
    pub prompt: i64,
    #[serde(default = "defaults::generate", rename = "gen")]
    pub generate: i64,
    #[serde(default = "defaults::recompute")]
    pub recompute: Recompute,
    #[serde(default = "defaults::yes")]
    pub fused_attention: bool,
    /// Train with dropout on the attention probabilities and the residual stream.
    #[serde(default)]
    pub dropout: bool,
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    #[serde(default)]
    pub roofline: bool,
    #[serde(default = "defaults::stack")]
    pub stack: String,
    #[serde(default)]
    pub calibration: Option<PathBuf>,
    #[serde(default)]
    pub breakdown: bool,
    /// How the training step is split over GPUs (docs/clusters.md); serving takes its tensor
    /// and pipeline split, and its data-parallel ranks as replicas. One GPU by default.
    #[serde(default)]
    pub layout: Parallelism,
    /// GPUs per node (default: the hardware profile's).
    #[serde(default)]
    pub gpus_per_node: Option<u64>,
    /// Decode speculatively with the model's multi-token-prediction modules, each drafted token
    /// accepted with this probability.
    #[serde(default)]
    pub speculative_acceptance: Option<f64>,
}

/// `gpucost predict`'s defaults.
mod defaults {
    use crate::model::execution::Recompute;
    pub fn dtype() -> String {
        "bf16".into()
    }
    pub fn batch() -> i64 {
        1
    }
    pub fn seq() -> i64 {
        4096
    }
    pub fn prompt() -> i64 {
        1024
    }
    pub fn generate() -> i64 {
        256
    }
    pub fn recompute() -> Recompute {
        Recompute::None
    }
    pub fn yes() -> bool {
        true
    }
    pub fn stack() -> String {
        "production".into()
    }
}

/// A prediction with the model and execution it was made for, and what a reader should be
/// warned of.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub model: Architecture,
    pub execution: Execution,
    pub estimate: Estimate,
    pub warnings: Vec<String>,
}

impl PredictRequest {
    /// A request with `gpucost predict`'s defaults.
    pub fn new(model: ModelSpec, hw: impl Into<String>) -> Self {
        PredictRequest {
            model,
            hw: hw.into(),
            dtype: defaults::dtype(),
            kv_dtype: None,
            batch: defaults::batch(),
            seq: defaults::seq(),
            prompt: defaults::prompt(),
            generate: defaults::generate(),
            recompute: defaults::recompute(),
            fused_attention: true,
            dropout: false,
            price_per_hour: None,
            roofline: false,
            stack: defaults::stack(),
            calibration: None,
            breakdown: false,
            layout: Parallelism::default(),
            gpus_per_node: None,
            speculative_acceptance: None,
        }
    }

    /// A request from JSON (`{"model": "llama-3-8b", "hw": "h100-sxm", "batch": 8}`); a field
    /// that is not understood is refused naming it ("predict: batch: invalid type: ...").
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::File {
            file: "predict".into(),
            message: format!("invalid JSON: {e}"),
        })?;
        // From a parsed value, so that messages carry the field and no text position.
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = match e.path().to_string() {
                p if p == "." => "(top level)".to_string(),
                p => p,
            };
            Error::field("predict", &field, e.into_inner().to_string())
        })
    }

    /// Checks every input, in the command line's order: the model, the execution (checked
    /// before anything multiplies its sizes), the system and the options.
    fn prepare(&self) -> Result<(Architecture, Execution, System, Options)> {
        let dtype = flags::dtype("dtype", &self.dtype)?;
        let kv_dtype = match &self.kv_dtype {
            Some(s) => flags::dtype("kv-dtype", s)?,
            None => attention_dtype(dtype),
        };
        if let Some(p) = self.price_per_hour
            && !(p.is_finite() && (0.0..=limits::PRICE_PER_HOUR).contains(&p))
        {
            return Err(Error::Unsupported(format!(
                "--price-per-hour must be a number from 0 to {:e}, got {p}",
                limits::PRICE_PER_HOUR
            )));
        }
        let model = self.model.load()?;
        let calibration = self.calibration.as_deref();
        let stack = flags::stack(&self.stack, &self.hw, calibration, self.roofline)?;
        let mut system = System::load_with(&self.hw, calibration, self.roofline, stack)?;
        if let Some(g) = self.gpus_per_node {
            let g = i64::try_from(g).unwrap_or(i64::MAX);
            system.set_gpus_per_node(flags::bounded("gpus-per-node", g, limits::RANKS)?);
        }
        let batch = flags::bounded("batch", self.batch, limits::TOKENS)?;
        let fused = self.fused_attention;
        let execution = Execution {
            training: TrainingSetup {
                batch,
                seq: flags::bounded("seq", self.seq, limits::TOKENS)?,
                dtype,
                recompute: self.recompute,
                dropout: self.dropout,
                fused_attention: fused,
                parallelism: self.layout,
            },
            serving: InferenceSetup {
                batch,
                prompt: flags::bounded("prompt", self.prompt, limits::CONTEXT)?,
                generate: flags::bounded("gen", self.generate, limits::GEN)?,
                dtype,
                kv_dtype,
                fused_attention: fused,
                parallelism: self.layout.for_serving(),
                speculative_acceptance: self.speculative_acceptance,
            },
        };
        let opts = Options {
            price_usd_per_hour: self.price_per_hour,
            breakdown: self.breakdown,
        };
        // Checked before planning: the plan multiplies these sizes.
        execution.validate()?;
        Ok((model, execution, system, opts))
    }

    /// Checks every input, then predicts.
    pub fn run(&self) -> Result<Prediction> {
        let (model, execution, system, opts) = self.prepare()?;
        let estimate = estimate(&model, &execution, &system, &opts)?;
        let warnings = context_warning(&model, &execution).into_iter().collect();
        Ok(Prediction {
            model,
            execution,
            estimate,
            warnings,
        })
    }

    /// The `top` fastest layouts of `gpus` GPUs for this request's training step that fit in
    /// memory (the request's own layout ignored), as the versioned `layouts` document.
    pub fn search_layouts(&self, gpus: u64, top: usize) -> Result<serde_json::Value> {
        let (model, execution, system, _) = self.prepare()?;
        let (found, tried) =
            crate::model::layout_search::search(&model, &execution, &system, gpus, top)?;
        let peak = system.hw.require_peak_flops(execution.training.dtype)?;
        let layouts: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                json!({
                    "parallelism": f.parallelism,
                    "step_time_s": f.cost.training.seconds,
                    "step_time_error_pct": f.cost.training.error_pct(),
                    "tokens_per_s": f.tokens_per_s,
                    "mfu": f.cost.model_flops_per_token * f.tokens_per_s / (gpus as f64 * peak),
                    "memory_bytes_per_gpu": f.cost.training_memory.total_bytes,
                    "pipeline_bubble_fraction": f.cost.step.bubble_fraction,
                    "communication_fraction": f.cost.training.comm_fraction(),
                })
            })
            .collect();
        Ok(json!({
            "schema_version": schema::LAYOUTS,
            "model": model.name,
            "hardware": system.hw.name,
            "gpus": gpus,
            "gpus_per_node": system.hw.gpus_per_node(),
            "layouts_tried": tried,
            "layouts": layouts,
        }))
    }
}

impl PredictRequest {
    /// The serving layout's output throughput at full load with this request's prompt and gen
    /// per request (`model::throughput`), as the versioned `offline` document.
    pub fn offline_throughput(&self) -> Result<serde_json::Value> {
        let (model, execution, system, _) = self.prepare()?;
        let load = crate::model::throughput::OfflineLoad::new(
            execution.serving.prompt,
            execution.serving.generate,
        );
        let t = crate::model::throughput::offline_throughput(
            &model,
            &execution.serving,
            &load,
            &mut crate::model::price::Pricer::new(&system),
        )?;
        Ok(json!({
            "schema_version": schema::OFFLINE,
            "model": model.name,
            "hardware": system.hw.name,
            "cost_model": system.describe(),
            "dtype": execution.serving.dtype,
            "kv_dtype": execution.serving.kv_dtype,
            "tp": execution.serving.parallelism.tp,
            "pp": execution.serving.parallelism.pp,
            "assumptions": crate::model::throughput::ASSUMPTIONS,
            "offline": t,
        }))
    }
}

/// One line when a context runs past the positions the model was built for (its answers
/// there describe a model that does not exist, but the arithmetic is still well defined).
fn context_warning(model: &Architecture, e: &Execution) -> Option<String> {
    let max = model.max_position_embeddings;
    let serving = e.serving.prompt.saturating_add(e.serving.generate);
    let mut over = Vec::new();
    if e.training.seq > max {
        over.push(format!("--seq {}", e.training.seq));
    }
    if serving > max {
        over.push(format!("--prompt + --gen = {serving}"));
    }
    (!over.is_empty()).then(|| {
        format!(
            "{} exceed{} {}'s max_position_embeddings of {max} ({}); predicting anyway",
            over.join(" and "),
            if over.len() == 1 { "s" } else { "" },
            model.name,
            model.source
        )
    })
}

/// Flag values resolved the same way everywhere, with one clear line on a mistake (the command
/// line takes values as text and checks them here, since clap's own errors span several lines).
pub mod flags {
    use crate::error::{Error, Result};
    use crate::model::dtype::DType;
    use crate::model::ops::limits;
    use crate::model::system::Stack;
    use std::path::Path;

    /// `--flag` as a dtype (the command line's wording).
    pub fn dtype(flag: &str, value: &str) -> Result<DType> {
        value
            .parse()
            .map_err(|e| Error::Unknown(format!("--{flag}: {e}")))
    }

    /// `--flag` as a positive integer of at most `limit` (one of `limits`).
    pub fn bounded(flag: &str, value: i64, limit: u64) -> Result<u64> {
        let v = positive(flag, value)?;
        limits::at_most(v, limit).map_err(|e| Error::Unsupported(format!("--{flag} {e}")))
    }

    /// `--flag` as a positive integer (taken as i64 so that a negative value gets this message).
    pub fn positive(flag: &str, value: i64) -> Result<u64> {
        u64::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| Error::Unsupported(format!("--{flag} must be positive, got {value}")))
    }

    /// `--stack` for `--hw` priced with `calibration` (or the embedded one): one implementation
    /// ("cuda:mma") must be one the calibration measured, else nothing would admit it and every op
    /// would silently fall back to the roofline.
    pub fn stack(
        value: &str,
        hw_arg: &str,
        calibration: Option<&Path>,
        roofline: bool,
    ) -> Result<Stack> {
        let stack = Stack::parse(value);
        let Stack::Only(name) = &stack else {
            return Ok(stack);
        };
        let hw = crate::model::hw::load(hw_arg)?;
        let cal = crate::model::system::calibration_for(hw_arg, calibration, roofline, &hw)?;
        let mut known: Vec<&str> = cal
            .iter()
            .flat_map(|c| c.groups.iter().map(|g| g.key.implementation.as_str()))
            .collect();
        known.sort_unstable();
        known.dedup();
        if known.contains(&name.as_str()) {
            return Ok(stack);
        }
        Err(Error::Unknown(if known.is_empty() {
            format!(
                "--stack {name}: {} has no calibration (its own or transferred from a measured GPU), so no measured implementation to choose (production, ours or all)",
                hw.name
            )
        } else {
            format!(
                "--stack {name}: not an implementation the calibration of {} measured (production, ours, all, {})",
                hw.name,
                known.join(", ")
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_the_command_lines_defaults() {
        let r = PredictRequest::from_json(r#"{"model": "gpt2", "hw": "h100-sxm"}"#).unwrap();
        let d = PredictRequest::new(ModelSpec::Name("gpt2".into()), "h100-sxm");
        assert_eq!(format!("{r:?}"), format!("{d:?}"));
        let e = PredictRequest::from_json(r#"{"model": "gpt2", "hw": "h100-sxm", "gens": 5}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `gens`"), "{e}");
    }

    #[test]
    fn a_config_object_predicts_like_its_name() {
        let by_name = PredictRequest::new(ModelSpec::Name("gpt2".into()), "h100-sxm")
            .run()
            .unwrap();
        let text = include_str!("../models/gpt2.json");
        let config: Map<String, serde_json::Value> = serde_json::from_str(text).unwrap();
        let by_config = PredictRequest::new(ModelSpec::Config(config), "h100-sxm")
            .run()
            .unwrap();
        assert_eq!(
            by_name.estimate.training.step_time_s,
            by_config.estimate.training.step_time_s
        );
    }

    #[test]
    fn bad_sizes_get_the_command_lines_words() {
        let mut r = PredictRequest::new(ModelSpec::Name("gpt2".into()), "h100-sxm");
        r.batch = -1;
        assert_eq!(
            r.run().unwrap_err().to_string(),
            "--batch must be positive, got -1"
        );
        r.batch = 1;
        r.generate = 1 << 25;
        assert!(
            r.run()
                .unwrap_err()
                .to_string()
                .starts_with("--gen 33554432 exceeds the limit of 2^24")
        );
    }
}
