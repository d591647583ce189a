//! `gpucost hw list` and `gpucost hw show NAME`.

use super::Format;
use super::format::{bytes, si};
use crate::model::dtype::DType;
use crate::model::hw::{self, HwProfile};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Subcommand)]
pub enum HwCommand {
    /// List the embedded hardware profiles.
    List(ListArgs),
    /// Every figure of one profile (a catalog name or a .toml file), with its source.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Catalog name (see `gpucost hw list`) or path to a profile .toml.
    name: String,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(cmd: HwCommand) -> Result<()> {
    match cmd {
        HwCommand::List(a) => list(a.format),
        HwCommand::Show(a) => show(&a.name, a.format),
    }
}

fn list(format: Format) -> Result<()> {
    let all = hw::catalog().context("embedded hardware catalog")?;
    let mut out = String::new();
    if format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&all)?);
        return super::emit(&out);
    }
    let mut b = Builder::default();
    b.push_record([
        "name",
        "device",
        "units",
        "fp32",
        "bf16",
        "fp8",
        "int8",
        "memory",
        "bandwidth",
        "TDP",
        "calibration",
    ]);
    let rate = |p: &HwProfile, d: DType| {
        p.peak_flops(d)
            .map(|v| format!("{}FLOP/s", si(v)))
            .unwrap_or_else(|| "-".into())
    };
    for p in &all {
        b.push_record([
            p.name.clone(),
            p.display_name.clone(),
            format!("{} {}", p.compute_units.value, p.compute_unit),
            rate(p, DType::Fp32),
            rate(p, DType::Bf16),
            rate(p, DType::Fp8E4m3),
            rate(p, DType::Int8),
            bytes(p.memory_bytes.value),
            format!("{}B/s", si(p.memory_bandwidth_bytes_per_s.value)),
            p.tdp_w()
                .map(|w| format!("{w} W"))
                .unwrap_or_else(|| "-".into()),
            calibration(p)?,
        ]);
    }
    outln!(out, "{}", b.build().with(Style::rounded()));
    outln!(
        out,
        "Dense peaks (no sparsity). `gpucost hw show NAME` gives every figure with its source."
    );
    super::emit(&out)
}

fn show(name: &str, format: Format) -> Result<()> {
    let p = hw::load(name)?;
    let mut out = String::new();
    if format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&p)?);
        return super::emit(&out);
    }
    outln!(
        out,
        "{} ({}, {} {})",
        p.display_name,
        p.name,
        p.vendor,
        p.architecture
    );
    let mut b = Builder::default();
    b.push_record(["figure", "value", "source"]);
    for (field, value, source) in p.figures() {
        let shown = if field.ends_with("bytes") {
            bytes(value)
        } else if field.ends_with("bytes_per_s") {
            format!("{}B/s", si(value))
        } else if field.starts_with("peak_flops") {
            format!("{}FLOP/s", si(value))
        } else if field.ends_with("_hz") {
            format!("{}Hz", si(value))
        } else {
            format!("{value}")
        };
        b.push_record([field, shown, source.to_string()]);
    }
    outln!(out, "{}", b.build().with(Style::rounded()));
    let m = &p.model;
    outln!(
        out,
        "Cost-model defaults (not datasheet figures): matmul efficiency {:.2}, attention {:.2}, memory {:.2}, collective {:.2}, launch latency {} us, matmul tiles {:?}",
        m.matmul_efficiency,
        m.attention_efficiency,
        m.memory_efficiency,
        m.collective_efficiency,
        m.launch_latency_s * 1e6,
        m.matmul_tiles
    );
    super::emit(&out)
}

/// What prices a catalog GPU by default: its own embedded calibration, another GPU's
/// transferred to it, or the roofline alone.
fn calibration(p: &HwProfile) -> Result<String> {
    use crate::model::cost::{calibrated, transfer};
    Ok(if calibrated::embedded(&p.name)?.is_some() {
        "measured".into()
    } else if let Some((c, _)) = transfer::nearest_source(p)? {
        format!("from {}", c.profile)
    } else {
        "-".into()
    })
}
