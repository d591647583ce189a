//! `gpucost calibrate` and `gpucost validate`: fit the cost model to measured results, and check
//! it on shapes it was not fitted to.

use super::Format;
use super::format::percent;
use crate::error::Error;
use crate::measure::fit::{self, ValidationReport};
use crate::measure::records::{self, Record};
use crate::model::hw::{self, HwProfile};
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A results folder (searched recursively) or file.
    #[arg(long)]
    results: PathBuf,
    /// "best" (fastest correct implementation per shape) or one backend:variant, e.g. cuda:mma.
    #[arg(long = "impl", default_value = "best")]
    implementation: String,
    /// Only records whose device name contains this (when the results hold several devices).
    #[arg(long)]
    device: Option<String>,
    /// Hardware profile for speed of light (default: the catalog profile matching the device).
    #[arg(long)]
    hw: Option<String>,
    /// Where to write the calibration (default hw_profiles/<profile>.calibration.json); validate
    /// writes nothing.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The records of one device under `results`, with its hardware profile (`hw`, else the catalog
/// profile matching the device) and the files they came from. Shared by calibrate, validate and
/// plot.
pub(crate) fn device_records(
    results_path: &Path,
    device: Option<&str>,
    hw: Option<&str>,
) -> Result<(Vec<Record>, HwProfile, Vec<String>), Error> {
    let files = records::find_files(results_path)?;
    let mut records = Vec::new();
    let mut sources = Vec::new();
    for f in &files {
        let read = records::read(f)?;
        let before = records.len();
        records.extend(
            read.records
                .into_iter()
                .filter(|r| device.is_none_or(|d| r.device.name.contains(d))),
        );
        if records.len() > before {
            sources.push(f.display().to_string());
        }
    }
    let mut devices: Vec<&str> = records.iter().map(|r| r.device.name.as_str()).collect();
    devices.sort();
    devices.dedup();
    if devices.len() != 1 {
        return Err(Error::Unknown(format!(
            "{}: {} devices in the results ({}); choose one with --device",
            results_path.display(),
            devices.len(),
            devices.join(", ")
        )));
    }
    let profile = match hw {
        Some(h) => hw::load(h)?,
        None => {
            let name = hw::profile_for_device(devices[0]).ok_or_else(|| {
                Error::Unknown(format!(
                    "no catalog profile for '{}': pass --hw",
                    devices[0]
                ))
            })?;
            hw::load(name)?
        }
    };
    Ok((records, profile, sources))
}

fn load(a: &CalibrateArgs) -> Result<(Vec<Record>, HwProfile, Vec<String>), Error> {
    device_records(&a.results, a.device.as_deref(), a.hw.as_deref())
}

/// The overall bars and how well they held on held-out points.
fn bars_line(e: &crate::model::cost::calibrated::ErrorBars) -> String {
    let show = |v: Option<f64>| v.map(|x| format!("±{x:.1}%")).unwrap_or_else(|| "-".into());
    let all = e
        .bars
        .iter()
        .find(|b| b.kind.is_empty() && b.regime.is_none());
    let mut line = format!(
        "error bars (all kinds): measured {}, interpolated {}, extrapolated {}, roofline {}",
        show(all.and_then(|b| b.measured)),
        show(all.and_then(|b| b.interpolated)),
        show(all.and_then(|b| b.extrapolated)),
        show(all.and_then(|b| b.roofline)),
    );
    if let Some(c) = &e.coverage {
        line += &format!(
            "; held-out coverage {:.0}% of {} points, width median ±{:.1}%, p90 ±{:.1}%",
            c.coverage * 100.0,
            c.n,
            c.median_width_pct,
            c.p90_width_pct
        );
    }
    line
}

fn report_table(r: &ValidationReport) -> String {
    let mut b = Builder::default();
    b.push_record([
        "group",
        "n",
        "median APE",
        "p90 APE",
        "max APE",
        "roofline median",
        "roofline p90",
    ]);
    for g in r.groups.iter().chain([&r.implementations, &r.overall]) {
        b.push_record([
            g.group.clone(),
            g.n.to_string(),
            percent(g.median_ape),
            percent(g.p90_ape),
            percent(g.max_ape),
            percent(g.roofline_median_ape),
            percent(g.roofline_p90_ape),
        ]);
    }
    b.build().with(Style::rounded()).to_string()
}

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    let (records, profile, sources) = load(&a)?;
    let (cal, report) = fit::build(&records, &profile, &a.implementation, sources)?;
    let path = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("hw_profiles/{}.calibration.json", profile.name)));
    records::write_atomically(&path, &(serde_json::to_string_pretty(&cal)? + "\n"))?;
    let mut out = String::new();
    if a.format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&cal)?);
    } else {
        outln!(
            out,
            "{}: {} groups, {} points from {} files ({}), implementation {}",
            path.display(),
            cal.groups.len(),
            cal.groups.iter().map(|g| g.points.len()).sum::<usize>(),
            cal.sources.len(),
            cal.device,
            cal.implementation
        );
        outln!(out, "{}", report_table(&report));
        if report.excluded_throttled > 0 {
            outln!(
                out,
                "excluded {} throttled records (power or heat held the clocks down)",
                report.excluded_throttled
            );
        }
        outln!(out, "{}", bars_line(&cal.error_pct));
    }
    super::emit(&out)
}

pub fn validate(a: CalibrateArgs) -> Result<()> {
    let (records, profile, sources) = load(&a)?;
    let (cal, report) = fit::build(&records, &profile, &a.implementation, sources)?;
    let mut out = String::new();
    if a.format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            out,
            "{} on {} ({}): {}",
            cal.implementation,
            cal.device,
            profile.name,
            report.method
        );
        outln!(out, "{}", report_table(&report));
        if report.excluded_throttled > 0 {
            outln!(
                out,
                "excluded {} throttled records (power or heat held the clocks down)",
                report.excluded_throttled
            );
        }
        outln!(out, "{}", bars_line(&cal.error_pct));
    }
    super::emit(&out)
}
