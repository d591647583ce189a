//! `gpucost bench`: check, then time, every kernel variant over a set of shapes, write each result
//! to the results store as it is measured, and summarise.

use super::Format;
use super::format::{percent, seconds};
use crate::error::Error;
use crate::measure::backend::cuda::CudaBackend;
use crate::measure::backend::spec::{self, KernelSpec};
use crate::measure::backend::wgpu::WgpuBackend;
use crate::measure::backend::{self as backends, Backend};
use crate::measure::harness::{self, Measurement, TimingPlan};
use crate::measure::records::{self, Record, Timing, Writer};
use crate::model::cost::{CostModel, Roofline};
use crate::model::dtype::DType;
use crate::model::hw::{self, HwProfile};
use crate::model::ops::Op;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    Wgpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpName {
    Matmul,
    Attention,
    /// The memory-bound ops of a transformer block: RMSNorm, SwiGLU, residual add, rotary.
    Memory,
    /// The gated-delta-rule scan of Gated DeltaNet layers (Qwen3-Next's linear attention).
    Scan,
    /// NCCL all-reduce, all-gather and reduce-scatter across this machine's GPUs (cuda; two or
    /// more GPUs), 4 KiB to 4 MiB (`smoke`) or 1 GiB (`sweep`).
    Collective,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = BackendName::Wgpu)]
    pub(super) backend: BackendName,
    /// Adapter (wgpu) or GPU ordinal (cuda), as `gpucost devices` numbers them.
    #[arg(long, default_value_t = 0)]
    pub(super) adapter: usize,
    #[arg(long, value_enum)]
    pub(super) op: OpName,
    /// fp32 or fp16 on wgpu; fp32, tf32, fp16, bf16, fp8-e4m3 or int8 matmuls and fp16 or bf16
    /// attention on cuda.
    #[arg(long, default_value = "f32")]
    pub(super) dtype: String,
    /// Only these variants (repeat or comma-separate); default all. A shape a named variant
    /// cannot run is skipped for it, with a line on stderr.
    #[arg(long, value_delimiter = ',')]
    pub(super) variant: Vec<String>,
    /// `smoke` (CI-sized), `sweep` (the calibration grid) or a TOML file of shapes.
    #[arg(long, default_value = "smoke")]
    pub(super) shapes: String,
    /// Results folder; records go to DIR/<device>/<backend>-<op>-<dtype>-<time>.jsonl. The
    /// default keeps new measurements out of the repository's committed results/.
    #[arg(long, default_value = "gpucost-results")]
    pub(super) out: PathBuf,
    /// Do not write a results file.
    #[arg(long)]
    pub(super) no_save: bool,
    /// Hardware profile for the roofline fraction (default: the catalog profile matching the device).
    #[arg(long)]
    pub(super) hw: Option<String>,
    /// Seconds of sampling per variant and shape at most.
    #[arg(long, default_value_t = 2.0)]
    pub(super) budget_s: f64,
    /// Stop sampling once the coefficient of variation is below this.
    #[arg(long, default_value_t = 0.02)]
    pub(super) target_cv: f64,
    #[arg(long, default_value_t = 42)]
    pub(super) seed: u64,
    /// Input sets rotated between samples (default: enough to cover three times the profile's
    /// L2, at most 8). Making inputs is host time; the CUDA backend flushes the L2 before
    /// every sample anyway, so 1 is enough there.
    #[arg(long)]
    pub(super) input_sets: Option<i64>,
    /// Skip the slow baseline variants (naive, tiled) on problems above this many FLOPs.
    #[arg(long, default_value_t = 2e11)]
    pub(super) baseline_max_flops: f64,
    #[arg(long, value_enum, default_value_t)]
    pub(super) format: Format,
}

fn shapes(a: &BenchArgs, dtype: DType, max_bytes: f64) -> Result<Vec<Op>, Error> {
    let ops = preset_or_file_shapes(a, dtype, max_bytes)?;
    // A shapes file is the user's: every op within the limits, and small enough to allocate
    // (the presets are capped the same way when they are built).
    if !matches!(a.shapes.as_str(), "smoke" | "sweep") {
        for (i, op) in ops.iter().enumerate() {
            let field = format!("shape {}", i + 1);
            op.check().map_err(|e| Error::field(&a.shapes, &field, e))?;
            if op.min_bytes() > max_bytes {
                return Err(Error::field(
                    &a.shapes,
                    &field,
                    format!(
                        "{op} moves {:.3e} bytes, more than the {:.3e} a run may use here (a quarter of the device's memory)",
                        op.min_bytes(),
                        max_bytes
                    ),
                ));
            }
        }
    }
    Ok(ops)
}

fn preset_or_file_shapes(a: &BenchArgs, dtype: DType, max_bytes: f64) -> Result<Vec<Op>, Error> {
    Ok(match a.op {
        OpName::Matmul => harness::shapes::matmul_shapes(&a.shapes, dtype, max_bytes)?
            .into_iter()
            .map(Op::Matmul)
            .collect(),
        OpName::Attention => harness::shapes::attention_shapes(&a.shapes, dtype, max_bytes)?
            .into_iter()
            .map(Op::Attention)
            .collect(),
        OpName::Memory => harness::shapes::memory_shapes(&a.shapes, dtype, max_bytes)?
            .into_iter()
            .map(Op::Memory)
            .collect(),
        OpName::Scan => harness::shapes::scan_shapes(&a.shapes, dtype, max_bytes)?
            .into_iter()
            .map(Op::Scan)
            .collect(),
        // Collectives take their own path (`bench_collective`).
        OpName::Collective => Vec::new(),
    })
}

pub(super) fn record(
    device: &backends::DeviceInfo,
    op: &Op,
    m: &Measurement,
    profile: Option<&HwProfile>,
) -> Record {
    let timing = m.summary.map(|summary| {
        let t = summary.median_s;
        let roofline_fraction = profile
            .and_then(|p| Roofline.predict(op, p).ok())
            .map(|pred| pred.seconds / t);
        Timing {
            clock: device.clock,
            warmup_runs: m.warmup_runs,
            summary,
            samples_s: m.samples_s.clone(),
            flops_per_s: op.flops() / t,
            bytes_per_s: op.min_bytes() / t,
            roofline_fraction,
        }
    });
    Record {
        schema_version: records::RECORD_SCHEMA_VERSION,
        unix_time_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        git_revision: records::git_revision(),
        host: records::host(),
        device: device.clone(),
        op: *op,
        variant: m.variant.clone(),
        vendor_library: m.vendor,
        correctness: m.correctness.clone(),
        timing,
        telemetry: m.telemetry.clone(),
    }
}

/// The results file of a run (`DIR/<device>/<what>-<unix ms>.jsonl`), unless --no-save.
pub(super) fn results_writer(
    a: &BenchArgs,
    device: &backends::DeviceInfo,
    what: &str,
) -> Result<Option<Writer>> {
    if a.no_save {
        return Ok(None);
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Ok(Some(Writer::create(
        &a.out,
        &device.slug(),
        &format!("{what}-{millis}"),
    )?))
}

pub fn run(a: BenchArgs) -> Result<()> {
    if a.op == OpName::Collective {
        return super::bench_collective::run(&a);
    }
    let dtype: DType = a
        .dtype
        .parse()
        .map_err(|e| Error::Unknown(format!("--dtype: {e}")))?;
    if !(a.budget_s > 0.0 && a.target_cv > 0.0) {
        return Err(
            Error::Unsupported("--budget-s and --target-cv must be positive".into()).into(),
        );
    }
    let input_sets = a
        .input_sets
        .map(|n| super::args::positive("input-sets", n))
        .transpose()?
        .map(|n| n as usize);
    // Read the shapes before touching the device, so a bad shape file fails fast and alone.
    let mut ops = shapes(&a, dtype, f64::INFINITY)?;
    for v in &a.variant {
        let known = match a.backend {
            BackendName::Wgpu => table_names(backends::wgpu::SPECS, v, &ops),
            BackendName::Cuda => table_names(backends::cuda::SPECS, v, &ops),
        };
        if let Err(have) = known {
            return Err(Error::Unknown(format!(
                "--variant: '{v}' is no {} variant for these {dtype} shapes (have: {have})",
                format!("{:?}", a.backend).to_lowercase()
            ))
            .into());
        }
    }
    let mut backend: Box<dyn Backend> = match a.backend {
        BackendName::Wgpu => Box::new(WgpuBackend::open(a.adapter)?),
        BackendName::Cuda => Box::new(CudaBackend::open(a.adapter)?),
    };
    let device = backend.device().clone();
    let profile = match &a.hw {
        Some(h) => Some(hw::load(h)?),
        None => hw::profile_for_device(&device.name).and_then(|n| hw::load(n).ok()),
    };
    if a.shapes != "smoke" {
        // Keep the operands within a quarter of the device's memory: the sweep is capped to it,
        // a shapes file is refused past it.
        let max_bytes = profile
            .as_ref()
            .map(|p| p.memory_bytes.value / 4.0)
            .or_else(|| device.memory_bytes.map(|b| b as f64 / 4.0))
            .unwrap_or(1e9);
        ops = shapes(&a, dtype, max_bytes)?;
    }
    let plan = TimingPlan {
        budget: Duration::from_secs_f64(a.budget_s),
        target_cv: a.target_cv,
        rotate_bytes: profile.as_ref().map_or(0.0, |p| 3.0 * p.l2_bytes.value),
        input_sets,
        ..TimingPlan::default()
    };
    let what = format!(
        "{}-{}-{dtype}",
        format!("{:?}", a.backend).to_lowercase(),
        format!("{:?}", a.op).to_lowercase()
    );
    let mut writer = results_writer(&a, &device, &what)?;
    let progress = indicatif::ProgressBar::new(ops.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut records = Vec::new();
    let mut skipped = 0usize;
    // Lines on stderr that the bar, drawn only on a terminal, does not swallow.
    let note = |line: String| progress.suspend(|| eprintln!("{line}"));
    for op in &ops {
        progress.set_message(op.to_string());
        let offered = backend.variants(op);
        let available: Vec<&str> = offered.iter().map(|v| v.name).collect();
        let chosen: Vec<&str> = if a.variant.is_empty() {
            offered
                .iter()
                .filter(|v| !(v.baseline && op.flops() > a.baseline_max_flops))
                .map(|v| v.name)
                .collect()
        } else {
            let (runs, cannot): (Vec<&str>, Vec<&str>) = a
                .variant
                .iter()
                .map(String::as_str)
                .partition(|v| available.contains(v));
            if !cannot.is_empty() {
                note(format!(
                    "skipped {op} for {}: not offered for this shape here (available: {})",
                    cannot.join(", "),
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    }
                ));
                skipped += 1;
            }
            runs
        };
        if chosen.is_empty() {
            if a.variant.is_empty() {
                note(if available.is_empty() {
                    format!("skipped {op}: no {} variant runs it here", device.backend)
                } else {
                    format!("skipped {op}: only baselines run it, above --baseline-max-flops")
                });
                skipped += 1;
            }
            progress.inc(1);
            continue;
        }
        let measured = harness::measure(backend.as_mut(), op, &chosen, &plan, a.seed)
            .with_context(|| format!("measuring {op}"))?;
        for m in &measured {
            let r = record(backend.device(), op, m, profile.as_ref());
            if let Some(w) = writer.as_mut() {
                w.append(&r)?;
            }
            records.push(r);
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if records.is_empty() {
        // Nothing ran: say so instead of printing an empty table and exiting 0.
        return Err(Error::Unsupported(format!(
            "nothing to measure: no {} variant runs these {dtype} {} shapes on {}",
            device.backend,
            format!("{:?}", a.op).to_lowercase(),
            device.name
        ))
        .into());
    }
    if skipped > 0 {
        let why = if a.variant.is_empty() {
            "nothing to run on them here".to_string()
        } else {
            format!(
                "--variant {} not offered for them here",
                a.variant.join(",")
            )
        };
        eprintln!("skipped {skipped} of {} shapes: {why}", ops.len());
    }

    let mut out = String::new();
    if a.format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&records)?);
    } else {
        outln!(
            out,
            "{} ({}), {} {:?}, profile {}",
            device.name,
            device.backend,
            dtype,
            a.op,
            profile.as_ref().map_or("none", |p| p.name.as_str())
        );
        outln!(out, "{}", summary_table(&records));
    }
    if let Some(w) = &writer {
        outln!(
            out,
            "wrote {} records to {}",
            records.len(),
            w.path().display()
        );
    }
    super::emit(&out)
}

/// `Ok` when `variant` names a kernel of `table` for the class and dtype of any of `ops` (shape
/// limits aside), else the names the table has for them.
fn table_names<K>(table: &[KernelSpec<K>], variant: &str, ops: &[Op]) -> Result<(), String> {
    match ops.first() {
        Some(first)
            if !ops
                .iter()
                .any(|op| spec::find(table, variant, op).is_some()) =>
        {
            Err(spec::names_for(table, first))
        }
        _ => Ok(()),
    }
}

/// Median seconds of the fastest correct vendor-library record for the same op, if any.
fn vendor_median(records: &[Record], op: &Op) -> Option<f64> {
    records
        .iter()
        .filter(|r| r.vendor_library && r.correctness.pass && &r.op == op)
        .filter_map(|r| r.timing.as_ref().map(|t| t.summary.median_s))
        .min_by(f64::total_cmp)
}

/// The summary table: one row per record, with its speed relative to the vendor library on the
/// same shape and dtype (vendor time ÷ this time: 0.80 = 80% of the vendor's speed).
pub fn summary_table(records: &[Record]) -> String {
    let mut b = Builder::default();
    b.push_record([
        "variant",
        "shape",
        "median",
        "p10-p90",
        "TFLOP/s",
        "GB/s",
        "% of roofline",
        "vs vendor",
        "max rel err",
        "status",
    ]);
    for r in records {
        let vs_vendor = match (&r.timing, vendor_median(records, &r.op)) {
            (Some(_), _) if r.vendor_library => "vendor".to_string(),
            (Some(t), Some(v)) => format!("{:.2}", v / t.summary.median_s),
            _ => "-".into(),
        };
        let (median, spread, rate, bandwidth, roof) = match &r.timing {
            Some(t) => (
                seconds(t.summary.median_s),
                format!("{}-{}", seconds(t.summary.p10_s), seconds(t.summary.p90_s)),
                format!("{:.4}", t.flops_per_s / 1e12),
                format!("{:.1}", t.bytes_per_s / 1e9),
                t.roofline_fraction
                    .map(percent)
                    .unwrap_or_else(|| "-".into()),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        let status = if r.correctness.pass {
            "ok".to_string()
        } else {
            format!("FAILED {}", r.correctness.error.clone().unwrap_or_default())
        };
        b.push_record([
            r.variant.clone(),
            r.op.to_string(),
            median,
            spread,
            rate,
            bandwidth,
            roof,
            vs_vendor,
            format!("{:.1e}", r.correctness.max_rel_error),
            status,
        ]);
    }
    b.build().with(Style::rounded()).to_string()
}
