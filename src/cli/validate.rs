//! `gpucost validate`: how well predictions hold against measurements — published cluster
//! throughput (`--published`, row by row), or this suite's kernel results (`--results`, leave-one-
//! out against the roofline; needs the `measure` feature).

use super::Format;
use crate::Error;
use crate::model::{published, published_serving};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Published cluster throughput to predict row by row (JSON rows; see docs/clusters.md;
    /// data/published/narayanan2021_table1.json is one).
    #[arg(long)]
    published: Option<PathBuf>,
    /// With --published: the uncalibrated roofline even where a calibration exists.
    #[arg(long, requires = "published")]
    roofline: bool,
    /// A results folder (searched recursively) or file: validate the kernel calibration.
    #[cfg(feature = "measure")]
    #[arg(long, conflicts_with_all = ["published", "roofline"])]
    results: Option<PathBuf>,
    /// "best" (fastest correct implementation per shape) or one backend:variant.
    #[cfg(feature = "measure")]
    #[arg(long = "impl", default_value = "best")]
    implementation: String,
    #[cfg(feature = "measure")]
    #[command(flatten)]
    selection: super::calibrate::DeviceSelection,
    /// With --results: check a transfer instead — the calibration of this measured GPU (an
    /// embedded profile's name, or a calibration file) carried over to the results' GPU by the
    /// datasheet ratios, predicting every point measured there.
    #[cfg(feature = "measure")]
    #[arg(long, requires = "results")]
    transfer_from: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(a: ValidateArgs) -> Result<()> {
    if let Some(file) = &a.published {
        return run_published(file, a.roofline, a.format);
    }
    #[cfg(feature = "measure")]
    if let Some(results) = a.results {
        let args = super::calibrate::CalibrateArgs {
            results,
            implementation: a.implementation,
            selection: a.selection,
            out: None,
            update_embedded: false,
            format: a.format,
        };
        return match &a.transfer_from {
            Some(from) => super::calibrate::validate_transfer(args, from),
            None => super::calibrate::validate(args),
        };
    }
    Err(Error::Unsupported(if cfg!(feature = "measure") {
        "give --published FILE (cluster throughput) or --results DIR (kernel results)".into()
    } else {
        "give --published FILE (this build has no measuring side for --results)".into()
    })
    .into())
}

fn run_published(file: &std::path::Path, roofline: bool, format: Format) -> Result<()> {
    let name = file.display().to_string();
    let text = crate::error::read_to_string(file)?;
    if published_serving::is_serving_table(&text) {
        return run_published_serving(file, &text, roofline, format);
    }
    let rows = published::parse(&name, &text)?;
    let validation = published::predict(&rows, roofline)?;
    let predictions = &validation.rows;
    let (median, max) = published::summary(predictions);
    let out = match format {
        Format::Json => {
            let doc = serde_json::json!({
                "schema_version": crate::model::schema::PUBLISHED,
                "source": name,
                "flops_counting": "Megatron-LM's formula (Narayanan et al. 2021, Appendix): 96 B s l h^2 (1 + s/6h + V/16lh), recomputed forward included",
                "assumptions": published::ASSUMPTIONS,
                "rows": predictions,
                "median_abs_error_pct": median,
                "max_abs_error_pct": max,
                "sustained_fraction_fits": validation.fits,
            });
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        Format::Table => {
            let mut b = Builder::default();
            b.push_record([
                "model",
                "GPUs",
                "TP x PP x DP",
                "published TFLOP/s/GPU",
                "predicted",
                "error",
                "held out",
                "bubble",
                "comm",
            ]);
            for p in predictions {
                b.push_record([
                    p.model.clone(),
                    p.gpus.to_string(),
                    format!("{} x {} x {}", p.tp, p.pp, p.dp),
                    format!("{:.0}", p.published_tflops_per_gpu),
                    format!("{:.0}", p.predicted_tflops_per_gpu),
                    format!("{:+.1}%", p.error_pct),
                    p.held_out_error_pct
                        .map_or("-".into(), |e| format!("{e:+.1}%")),
                    format!("{:.1}%", 100.0 * p.pipeline_bubble_fraction),
                    format!("{:.1}%", 100.0 * p.communication_fraction),
                ]);
            }
            let gpus: Vec<&str> = validation.fits.iter().map(|f| f.hw.as_str()).collect();
            let mut out = format!(
                "{name}: predicted against published, on {}\n",
                gpus.join(", ")
            );
            out += &b.build().with(Style::rounded()).to_string();
            out += &format!(
                "\nmedian |error| {median:.1}%, largest {max:.1}% over {} rows; FLOPs counted with Megatron-LM's formula (recomputation included)\n",
                predictions.len()
            );
            for f in &validation.fits {
                out += &format!(
                    "{}: sustained compute fraction {:.3} in the profile, {:.3} fitted to these {} rows",
                    f.hw, f.profile_fraction, f.fitted_fraction, f.rows
                );
                if let (Some(m), Some(x)) = (f.held_out_median_pct, f.held_out_max_pct) {
                    out += &format!(
                        "; held out (each row with the fraction fitted to the others): median |error| {m:.1}%, largest {x:.1}%"
                    );
                }
                out += "\n";
            }
            out
        }
    };
    super::emit(&out)
}

/// A table of offline serving throughput (`"kind": "offline-serving"`), row by row.
fn run_published_serving(
    file: &std::path::Path,
    text: &str,
    roofline: bool,
    format: Format,
) -> Result<()> {
    let name = file.display().to_string();
    let rows = published_serving::parse(&name, text)?;
    let folder = file.parent().unwrap_or(std::path::Path::new("."));
    let predictions = published_serving::predict(&rows, folder, roofline)?;
    let (median, max, covered) = published_serving::summary(&predictions);
    let out = match format {
        Format::Json => {
            let doc = serde_json::json!({
                "schema_version": crate::model::schema::PUBLISHED,
                "source": name,
                "kind": published_serving::KIND,
                "assumptions": crate::model::throughput::ASSUMPTIONS
                    .iter()
                    .chain(published_serving::ASSUMPTIONS)
                    .collect::<Vec<_>>(),
                "rows": predictions,
                "median_abs_error_pct": median,
                "max_abs_error_pct": max,
                "within_error_bar": covered,
            });
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        Format::Table => {
            let mut b = Builder::default();
            b.push_record([
                "model",
                "GPU",
                "TP x PP",
                "dtype",
                "in / out",
                "concurrency",
                "published tok/s",
                "predicted",
                "error",
            ]);
            for p in &predictions {
                b.push_record([
                    p.model.clone(),
                    p.hw.clone(),
                    format!("{} x {}", p.tp, p.pp),
                    p.precision.to_string(),
                    format!("{} / {}", p.input_tokens, p.output_tokens),
                    p.concurrency.to_string(),
                    format!("{:.0}", p.published_output_tokens_per_s),
                    match p.predicted_error_pct {
                        Some(e) => format!("{:.0} ±{e:.0}%", p.predicted_output_tokens_per_s),
                        None => format!("{:.0}", p.predicted_output_tokens_per_s),
                    },
                    format!("{:+.1}%", p.error_pct),
                ]);
            }
            let mut out =
                format!("{name}: offline output throughput, predicted against published\n");
            out += &b.build().with(Style::rounded()).to_string();
            out += &format!(
                "\nmedian |error| {median:.1}%, largest {max:.1}% over {} rows; published within the predicted bar for {:.0}% of rows\n",
                predictions.len(),
                100.0 * covered
            );
            out
        }
    };
    super::emit(&out)
}
