//! `gpucost compose`: the composition check. A transformer block runs forward on the device with
//! the real kernels in sequence; its measured time is compared with the sum of the cost model's
//! predictions for the same ops (each priced for the implementation that ran it).

use super::Format;
use super::bench::BackendName;
use super::format::{percent, seconds};
use crate::error::Error;
use crate::measure::backend::Backend;
use crate::measure::backend::cuda::CudaBackend;
use crate::measure::backend::wgpu::WgpuBackend;
use crate::measure::{compose, compose_recurrent};
use crate::model::cost::calibrated::{CalibratedModel, Stack};
use crate::model::cost::{CostModel, Prediction, Provenance, Roofline};
use crate::model::dtype::DType;
use crate::model::hw;
use crate::model::schema;
use crate::model::system::load_calibration;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// The layer to run: a catalog model, a config.json or a native .toml (dense, RMSNorm,
    /// rotary, SwiGLU or GeGLU, no biases; QK-norm, sliding windows and multi-head latent
    /// attention run; a model with linear-attention or Mamba-2 layers runs one of those), e.g.
    /// examples/tiny-block.toml or examples/compose/*.toml.
    #[arg(long)]
    model: String,
    /// Which layer: a global (full-attention) one, or a local (sliding-window) one of a
    /// local/global pattern.
    #[arg(long, value_enum, default_value_t = LayerArg::Global)]
    layer: LayerArg,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    tokens: i64,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    batch: i64,
    #[arg(long, default_value = "fp32")]
    dtype: String,
    #[arg(long, value_enum, default_value_t = BackendName::Wgpu)]
    backend: BackendName,
    #[arg(long, default_value_t = 0)]
    adapter: usize,
    /// Hardware profile for the predictions (default: the catalog profile matching the device).
    #[arg(long)]
    hw: Option<String>,
    /// Use --hw even when the device's catalog profile is another one.
    #[arg(long)]
    allow_hw_mismatch: bool,
    /// A calibration from `gpucost calibrate` (default: the one embedded for the profile).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Price the ops with the uncalibrated roofline.
    #[arg(long, conflicts_with = "calibration")]
    roofline: bool,
    /// Timed runs of the block (after one checked run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Results folder: the report goes to DIR/<device>/compose-<model>-<dtype>-<time>.json
    /// (default: gpucost-results, never the repository's committed results/).
    #[arg(long, default_value = "gpucost-results")]
    out: PathBuf,
    #[arg(long)]
    no_save: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerArg {
    Global,
    Local,
}

/// One op of the block: measured inside the block, and predicted.
#[derive(Debug, Clone, Serialize)]
pub struct ComposedOp {
    pub name: String,
    pub op: String,
    pub implementation: String,
    /// Median of the op's own time across the timed runs (null without per-op timestamps).
    pub measured_s: Option<f64>,
    pub predicted_s: f64,
    /// The (first) pricing op's provenance; null for a step no plan op prices.
    pub provenance: Option<Provenance>,
    pub error_pct: Option<f64>,
}

/// The composition report (`--format json`, and the saved file).
#[derive(Debug, Clone, Serialize)]
pub struct CompositionReport {
    pub schema_version: u32,
    pub model: String,
    pub device: String,
    pub driver: String,
    pub backend: String,
    pub git_revision: String,
    pub dtype: DType,
    pub batch: u64,
    pub tokens: u64,
    /// "global" or "local" (a sliding-window layer); "linear-attention" or "mamba" for the
    /// recurrent families.
    pub layer: &'static str,
    /// What the block runs differently from the model, one line each.
    pub notes: Vec<String>,
    pub cost_model: String,
    pub max_rel_error: f64,
    pub tolerance: f64,
    pub runs: usize,
    /// Median of the whole block: first op's start to last op's end, on the device clock.
    pub measured_block_s: f64,
    pub measured_block_p10_s: f64,
    pub measured_block_p90_s: f64,
    /// Sum of the ops' own medians: the block minus the gaps between kernels.
    pub measured_ops_sum_s: Option<f64>,
    /// Sum of the ops' predictions.
    pub predicted_s: f64,
    /// Time-weighted error bar of the ops that have one (errors taken as fully correlated, as
    /// `predict` does); null when none has.
    pub predicted_error_pct: Option<f64>,
    /// (predicted − measured block) ÷ measured block.
    pub composition_error: f64,
    pub ops: Vec<ComposedOp>,
}

/// The op's prediction for the implementation that ran it, where the calibration has that
/// implementation; else the cost model's own (fastest implementation, or roofline).
fn predict_for(
    calibrated: Option<&CalibratedModel>,
    model: &dyn CostModel,
    op: &crate::model::ops::Op,
    implementation: &str,
    profile: &hw::HwProfile,
) -> Result<Prediction> {
    let own = match calibrated {
        Some(m) => m.predict_implementation(op, profile, implementation)?,
        None => None,
    };
    Ok(match own {
        Some(p) => p,
        None => model.predict(op, profile)?,
    })
}

/// Tokens (batch × tokens per sequence) one composition run may hold: the f64 reference's
/// attention grows with the square of the sequence.
pub const MAX_TOKENS: u64 = 1 << 15;
/// Host memory one composition run may need, by the estimate of `host_bytes`.
pub const MAX_HOST_BYTES: f64 = 32.0 * (1u64 << 30) as f64;
/// Timed runs.
pub const MAX_RUNS: usize = 100_000;

/// An estimate of the host memory the block needs: one layer's weights and the activations of
/// its ops over `tokens`, each held in f32 for the device, f32 on the host and f64 for the
/// reference.
fn host_bytes(arch: &crate::model::arch::Architecture, tokens: u64) -> f64 {
    let (h, ff) = (arch.hidden_size as f64, arch.intermediate_size as f64);
    let (q, kv) = (arch.q_width() as f64, arch.kv_width() as f64);
    let weights = h * (q + 2.0 * kv) + q * h + 3.0 * h * ff;
    let per_token = 6.0 * h + 2.0 * (q + 2.0 * kv) + 4.0 * ff;
    (weights + tokens as f64 * per_token) * (4.0 + 4.0 + 8.0)
}

pub fn run(a: ComposeArgs) -> Result<()> {
    let dtype = super::args::dtype("dtype", &a.dtype)?;
    if a.runs == 0 || a.runs > MAX_RUNS {
        return Err(Error::Unsupported(format!(
            "--runs must be from 1 to {MAX_RUNS}, got {}",
            a.runs
        ))
        .into());
    }
    let batch = super::args::bounded("batch", a.batch, MAX_TOKENS)?;
    let tokens = super::args::bounded("tokens", a.tokens, MAX_TOKENS)?;
    if batch * tokens > MAX_TOKENS {
        return Err(Error::Unsupported(format!(
            "--batch x --tokens = {} exceeds the limit of {} tokens per composition run",
            batch * tokens,
            crate::model::ops::limits::show(MAX_TOKENS)
        ))
        .into());
    }
    let arch = crate::model::arch::load(&a.model)?;
    if arch.moe.is_some() {
        return Err(Error::field(
            &arch.source,
            "moe",
            "a mixture-of-experts model; compose runs a dense layer only",
        )
        .into());
    }
    let need = host_bytes(&arch, batch * tokens);
    if need > MAX_HOST_BYTES {
        return Err(Error::Unsupported(format!(
            "the {} block over {} tokens needs about {:.0} GiB of host memory, more than the {:.0} GiB limit: use fewer --tokens or a smaller model",
            arch.name,
            batch * tokens,
            need / (1u64 << 30) as f64,
            MAX_HOST_BYTES / (1u64 << 30) as f64
        ))
        .into());
    }
    let layer = match a.layer {
        LayerArg::Global => compose::Layer::Global,
        LayerArg::Local => compose::Layer::Local,
    };
    // Models with linear-attention or Mamba-2 layers run one of those instead.
    let recurrent = if compose_recurrent::applies(&arch) {
        if a.layer == LayerArg::Local {
            return Err(Error::Unsupported(format!(
                "{}: --layer local: compose runs its linear-attention or Mamba-2 layer",
                arch.name
            ))
            .into());
        }
        Some(
            compose_recurrent::layer_shape(&arch, batch, tokens, dtype)
                .map_err(Error::Unsupported)?,
        )
    } else {
        None
    };
    let block = match recurrent {
        Some(_) => None,
        None => Some(
            compose::block_shape_of(&arch, layer, batch, tokens, dtype)
                .map_err(Error::Unsupported)?,
        ),
    };
    let mut backend: Box<dyn Backend> = match a.backend {
        BackendName::Wgpu => Box::new(WgpuBackend::open(a.adapter)?),
        BackendName::Cuda => Box::new(CudaBackend::open(a.adapter)?),
    };
    let device = backend.device().clone();
    let profile = match &a.hw {
        Some(h) => {
            let profile = hw::load(h)?;
            super::calibrate::check_device_matches(&device.name, &profile, a.allow_hw_mismatch)?;
            profile
        }
        None => {
            let name = hw::profile_for_device(&device.name).ok_or_else(|| {
                Error::Unknown(format!(
                    "no catalog profile for '{}': pass --hw",
                    device.name
                ))
            })?;
            hw::load(name)?
        }
    };
    let calibrated = load_calibration(a.calibration.as_deref(), a.roofline, &profile)?
        .map(|calibration| CalibratedModel::new(calibration, Stack::All));
    let model: &dyn CostModel = match &calibrated {
        Some(m) => m,
        None => &Roofline,
    };
    let m = match (&block, &recurrent) {
        (Some(b), _) => compose::measure(backend.as_mut(), b, a.runs, a.seed),
        (None, Some(r)) => compose_recurrent::measure(backend.as_mut(), r, a.runs, a.seed),
        (None, None) => unreachable!("one of the two shapes was built"),
    }
    .with_context(|| format!("running the {} block", arch.name))?;
    // Each step the device ran, with the plan ops that price it.
    let steps: Vec<(String, Vec<crate::model::ops::Op>)> = match (&block, &recurrent) {
        (Some(b), _) => b.ops.iter().map(|(n, op)| (n.clone(), vec![*op])).collect(),
        (None, Some(r)) => compose_recurrent::priced_steps(r),
        (None, None) => Vec::new(),
    };
    let Some(total) = m.block else {
        return Err(Error::Unsupported(format!(
            "the {} block's output is wrong on {}: max relative error {:.2e} > {:.2e}{}",
            arch.name,
            device.name,
            m.correctness.max_rel_error,
            m.correctness.tolerance,
            m.correctness
                .error
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ))
        .into());
    };
    let mut ops = Vec::new();
    for (i, (name, priced)) in steps.iter().enumerate() {
        let implementation = m.implementations.get(i).cloned().unwrap_or_default();
        let predictions = priced
            .iter()
            .map(|op| predict_for(calibrated.as_ref(), model, op, &implementation, &profile))
            .collect::<Result<Vec<_>>>()?;
        let predicted_s: f64 = predictions.iter().map(|p| p.seconds).sum();
        let barred: Vec<(f64, f64)> = predictions
            .iter()
            .filter_map(|p| p.error_pct.map(|e| (p.seconds, e)))
            .collect();
        let barred_s: f64 = barred.iter().map(|(s, _)| s).sum();
        ops.push(ComposedOp {
            name: name.clone(),
            op: if priced.is_empty() {
                "(not in the plan)".to_string()
            } else {
                priced
                    .iter()
                    .map(|op| op.to_string())
                    .collect::<Vec<_>>()
                    .join(" + ")
            },
            implementation,
            measured_s: m.ops.get(i).map(|s| s.median_s),
            predicted_s,
            provenance: predictions.first().map(|p| p.provenance),
            error_pct: (barred_s > 0.0)
                .then(|| barred.iter().map(|(s, e)| s * e).sum::<f64>() / barred_s),
        });
    }
    let predicted_s: f64 = ops.iter().map(|o| o.predicted_s).sum();
    let with_bar: Vec<(f64, f64)> = ops
        .iter()
        .filter_map(|o| o.error_pct.map(|e| (o.predicted_s, e)))
        .collect();
    let barred_s: f64 = with_bar.iter().map(|(s, _)| s).sum();
    let predicted_error_pct =
        (barred_s > 0.0).then(|| with_bar.iter().map(|(s, e)| s * e).sum::<f64>() / barred_s);
    let report = CompositionReport {
        schema_version: schema::COMPOSE,
        model: arch.name.clone(),
        device: device.name.clone(),
        driver: device.driver.clone(),
        backend: device.backend.clone(),
        git_revision: crate::measure::records::git_revision(),
        dtype,
        batch,
        tokens,
        layer: match (&recurrent, a.layer) {
            (Some(r), _) => compose_recurrent::layer_name(r),
            (None, LayerArg::Global) => "global",
            (None, LayerArg::Local) => "local",
        },
        notes: match &recurrent {
            Some(r) => compose_recurrent::notes(r),
            None => compose::notes(&arch),
        },
        cost_model: model.describe(&profile),
        max_rel_error: m.correctness.max_rel_error,
        tolerance: m.correctness.tolerance,
        runs: a.runs,
        measured_block_s: total.median_s,
        measured_block_p10_s: total.p10_s,
        measured_block_p90_s: total.p90_s,
        measured_ops_sum_s: (!m.ops.is_empty()).then(|| m.ops.iter().map(|s| s.median_s).sum()),
        predicted_s,
        predicted_error_pct,
        composition_error: (predicted_s - total.median_s) / total.median_s,
        ops,
    };
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let saved = if a.no_save {
        None
    } else {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = a.out.join(device.slug()).join(format!(
            "compose-{}-{}-{}-{stamp}.json",
            arch.name, report.layer, dtype
        ));
        crate::measure::records::write_atomically(&path, &json)?;
        Some(path)
    };
    let mut out = String::new();
    if a.format == Format::Json {
        out.push_str(&json);
    } else {
        outln!(
            out,
            "{} block ({} layer), batch {} x {} tokens, {} on {} ({}); output within {:.1e} of the f64 reference (tolerance {:.1e})",
            report.model,
            report.layer,
            report.batch,
            report.tokens,
            dtype,
            report.device,
            report.backend,
            report.max_rel_error,
            report.tolerance
        );
        for note in &report.notes {
            outln!(out, "note: {note}");
        }
        outln!(out, "predictions: {}", report.cost_model);
        let mut b = Builder::default();
        b.push_record([
            "op",
            "shape",
            "kernel",
            "measured",
            "predicted",
            "provenance",
            "error",
        ]);
        for o in &report.ops {
            b.push_record([
                o.name.clone(),
                o.op.clone(),
                o.implementation.clone(),
                o.measured_s.map(seconds).unwrap_or_else(|| "-".into()),
                match o.error_pct {
                    Some(e) => format!("{} ±{e:.0}%", seconds(o.predicted_s)),
                    None => seconds(o.predicted_s),
                },
                o.provenance
                    .map(|p| format!("{p:?}").to_lowercase())
                    .unwrap_or_else(|| "-".into()),
                o.measured_s
                    .map(|t| percent((o.predicted_s - t) / t))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        outln!(out, "{}", b.build().with(Style::rounded()));
        outln!(
            out,
            "block measured {} (p10 {}, p90 {}; ops alone {}), sum of predictions {}{}: composition error {}",
            seconds(report.measured_block_s),
            seconds(report.measured_block_p10_s),
            seconds(report.measured_block_p90_s),
            report
                .measured_ops_sum_s
                .map(seconds)
                .unwrap_or_else(|| "-".into()),
            seconds(report.predicted_s),
            report
                .predicted_error_pct
                .map(|e| format!(" ±{e:.0}%"))
                .unwrap_or_default(),
            percent(report.composition_error)
        );
        if let Some(p) = &saved {
            outln!(out, "saved {}", p.display());
        }
    }
    super::emit(&out)
}
