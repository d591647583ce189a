//! `gpucost calibrate` and `gpucost validate`: fit the cost model to measured results, and check
//! it on shapes it was not fitted to.

use super::Format;
use super::format::percent;
use crate::error::Error;
use crate::measure::fit::{self, ValidationReport};
use crate::measure::records::{self, Record};
use crate::measure::transfer_check;
use crate::model::cost::calibrated::Calibration;
use crate::model::cost::transfer;
use crate::model::hw::{self, HwProfile};
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A results folder (searched recursively) or file.
    #[arg(long)]
    pub(super) results: PathBuf,
    /// "best" (fastest correct implementation per shape) or one backend:variant, e.g. cuda:mma.
    #[arg(long = "impl", default_value = "best")]
    pub(super) implementation: String,
    #[command(flatten)]
    pub(super) selection: DeviceSelection,
    /// Where to write the calibration: a file, or a folder to write <profile>.calibration.json
    /// in (default gpucost-calibrations/<profile>.calibration.json); validate writes nothing.
    #[arg(long, conflicts_with = "update_embedded")]
    pub(super) out: Option<PathBuf>,
    /// Write hw_profiles/<profile>.calibration.json, the calibration the next build embeds (run
    /// from the repository root, for a catalog profile).
    #[arg(long)]
    pub(super) update_embedded: bool,
    #[arg(long, value_enum, default_value_t)]
    pub(super) format: Format,
}

/// Which device's records to read, and the profile they are priced against: shared by
/// calibrate, validate and plot.
#[derive(Debug, Args)]
pub struct DeviceSelection {
    /// Only records whose device name contains this (when the results hold several devices).
    #[arg(long)]
    pub(super) device: Option<String>,
    /// Hardware profile for speed of light (default: the catalog profile matching the device).
    #[arg(long)]
    pub(super) hw: Option<String>,
    /// Use --hw even when the results come from a device whose catalog profile is another one.
    #[arg(long)]
    pub(super) allow_hw_mismatch: bool,
}

impl DeviceSelection {
    /// The selected device's records under `results`, its profile and the files read.
    pub(super) fn records(
        &self,
        results: &Path,
    ) -> Result<(Vec<Record>, HwProfile, Vec<String>), Error> {
        device_records(
            results,
            self.device.as_deref(),
            self.hw.as_deref(),
            self.allow_hw_mismatch,
        )
    }
}

/// Where `calibrate` writes when neither --out nor --update-embedded says otherwise: a folder of
/// the user's, never the repository's tracked hw_profiles/.
pub const DEFAULT_CALIBRATIONS_DIR: &str = "gpucost-calibrations";

/// The records of one device under `results`, with its hardware profile (`hw`, else the catalog
/// profile matching the device) and the files they came from. Results from a device whose
/// catalog profile is not `hw` are refused unless `allow_mismatch`. Shared by calibrate,
/// validate and plot.
pub(crate) fn device_records(
    results_path: &Path,
    device: Option<&str>,
    hw: Option<&str>,
    allow_mismatch: bool,
) -> Result<(Vec<Record>, HwProfile, Vec<String>), Error> {
    let files = records::find_files(results_path)?;
    if files.is_empty() {
        return Err(Error::File {
            file: results_path.display().to_string(),
            message: "no .jsonl results files".into(),
        });
    }
    let mut records = Vec::new();
    let mut sources = Vec::new();
    let mut all_devices: Vec<String> = Vec::new();
    for f in &files {
        let read = records::read(f)?;
        let before = records.len();
        for r in read.records {
            if !all_devices.contains(&r.device.name) {
                all_devices.push(r.device.name.clone());
            }
            if device.is_none_or(|d| r.device.name.contains(d)) {
                records.push(r);
            }
        }
        if records.len() > before {
            sources.push(f.display().to_string());
        }
    }
    if all_devices.is_empty() {
        return Err(Error::File {
            file: results_path.display().to_string(),
            message: format!(
                "no records in {} results file{}",
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            ),
        });
    }
    let mut devices: Vec<&str> = records.iter().map(|r| r.device.name.as_str()).collect();
    devices.sort();
    devices.dedup();
    if devices.is_empty() {
        all_devices.sort();
        return Err(Error::Unknown(format!(
            "{}: no records whose device name contains '{}' (devices: {})",
            results_path.display(),
            device.unwrap_or_default(),
            all_devices.join(", ")
        )));
    }
    if devices.len() > 1 {
        return Err(Error::Unknown(format!(
            "{}: {} devices in the results ({}); choose one with --device",
            results_path.display(),
            devices.len(),
            devices.join(", ")
        )));
    }
    let profile = match hw {
        Some(h) => {
            let profile = hw::load(h)?;
            check_device_matches(devices[0], &profile, allow_mismatch)?;
            profile
        }
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

/// Refuses measurements of `device` for a profile of another GPU (a catalog profile names the
/// GPU it describes), unless `allow`. A device with no catalog profile can be described by any.
pub(crate) fn check_device_matches(
    device: &str,
    profile: &HwProfile,
    allow: bool,
) -> Result<(), Error> {
    match hw::profile_for_device(device) {
        Some(expected) if expected != profile.name && !allow => Err(Error::Unsupported(format!(
            "the device '{device}' is described by profile {expected}, not --hw {}; pass --allow-hw-mismatch to use it anyway",
            profile.name
        ))),
        _ => Ok(()),
    }
}

fn load(a: &CalibrateArgs) -> Result<(Vec<Record>, HwProfile, Vec<String>), Error> {
    a.selection.records(&a.results)
}

/// Where `calibrate` writes the calibration of `profile`.
fn output_path(a: &CalibrateArgs, profile: &str) -> Result<PathBuf, Error> {
    let file = format!("{profile}.calibration.json");
    if a.update_embedded {
        if !hw::catalog_names().contains(&profile) {
            return Err(Error::Unsupported(format!(
                "--update-embedded: '{profile}' is not a catalog profile, so no build embeds its calibration; use --out"
            )));
        }
        let dir = Path::new("hw_profiles");
        if !dir.join(format!("{profile}.toml")).is_file() {
            return Err(Error::Unsupported(format!(
                "--update-embedded: no hw_profiles/{profile}.toml here; run it from the repository root"
            )));
        }
        return Ok(dir.join(file));
    }
    Ok(match &a.out {
        Some(out) if out.is_dir() => out.join(file),
        Some(out) => out.clone(),
        None => Path::new(DEFAULT_CALIBRATIONS_DIR).join(file),
    })
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

/// One line on records left out because the GPU was throttled; nothing when none were.
fn throttled_line(r: &ValidationReport) -> String {
    if r.excluded_throttled == 0 {
        return String::new();
    }
    format!(
        "excluded {} throttled records (power or heat held the clocks down)\n",
        r.excluded_throttled
    )
}

fn report_table(r: &ValidationReport) -> String {
    stats_table(r.groups.iter().chain([&r.implementations, &r.overall]))
}

/// Held-out error statistics, a row per group, beside the roofline's.
fn stats_table<'a>(groups: impl Iterator<Item = &'a fit::GroupStats>) -> String {
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
    for g in groups {
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
    let path = output_path(&a, &profile.name)?;
    let (cal, report) = fit::build(&records, &profile, &a.implementation, sources)?;
    let text = serde_json::to_string_pretty(&cal)? + "\n";
    // What is written must load: a file the loader refuses is never left behind.
    crate::model::cost::calibrated::Calibration::parse(&path.display().to_string(), &text)
        .context("the fitted calibration does not read back")?;
    records::write_atomically(&path, &text)?;
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
        out += &throttled_line(&report);
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
        out += &throttled_line(&report);
        outln!(out, "{}", bars_line(&cal.error_pct));
    }
    super::emit(&out)
}

/// The calibration a transfer starts from: an embedded profile's, or a calibration file (with
/// the catalog profile it names).
fn transfer_source(from: &str) -> Result<(Calibration, HwProfile), Error> {
    let cal = if from.ends_with(".json") {
        Calibration::parse(from, &crate::error::read_to_string(Path::new(from))?)?
    } else {
        crate::model::cost::calibrated::embedded(from)?.ok_or_else(|| {
            Error::Unknown(format!(
                "--transfer-from: no embedded calibration for '{from}' (embedded: {}); give a calibration file",
                crate::model::cost::calibrated::embedded_profiles()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?
    };
    let hw = hw::load(&cal.profile)?;
    Ok((cal, hw))
}

/// `validate --transfer-from`: the source's calibration carried to the results' GPU, checked
/// on every point measured there.
pub fn validate_transfer(a: CalibrateArgs, from: &str) -> Result<()> {
    let (records, profile, _) = load(&a)?;
    // The target's points only: its own validation and bars would go unused.
    let (measured, _) = fit::measured_groups(&records, &profile, &a.implementation)?;
    let (source, source_hw) = transfer_source(from)?;
    let transferred = transfer::transfer(&source, &source_hw, &profile);
    let report = transfer_check::check(&measured, &transferred, &profile)?;
    let mut out = String::new();
    if a.format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            out,
            "{} carried to {} ({}) by the datasheet ratios, predicting every point measured there",
            report.source,
            records.first().map_or("", |r| r.device.name.as_str()),
            profile.name
        );
        let groups = report.groups.iter();
        outln!(
            out,
            "{}",
            stats_table(groups.chain([&report.same_shapes, &report.overall]))
        );
        let c = &report.coverage;
        outln!(
            out,
            "transferred bars (±{:.0}% transfer allowance in quadrature): coverage {:.0}% of {} points, width median ±{:.1}%, p90 ±{:.1}%",
            transferred
                .transferred_from
                .as_ref()
                .map_or(0.0, |t| t.allowance_pct),
            c.coverage * 100.0,
            c.n,
            c.median_width_pct,
            c.p90_width_pct
        );
    }
    super::emit(&out)
}
