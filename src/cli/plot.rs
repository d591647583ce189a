//! `gpucost plot roofline` and `gpucost plot validation`: SVG charts of measured results.

use crate::error::Error;
use crate::measure::fit;
use crate::measure::records::Record;
use crate::model::dtype::DType;
use crate::model::hw::HwProfile;
use anyhow::Result;
use clap::{Args, Subcommand};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum PlotCommand {
    /// Measured points on the device's roofline, one series per dtype and implementation.
    Roofline(PlotArgs),
    /// Held-out predicted against measured time, log-log, with y = x and the p90 error band.
    Validation(PlotArgs),
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A results folder (searched recursively) or file.
    #[arg(long)]
    results: PathBuf,
    #[command(flatten)]
    selection: super::calibrate::DeviceSelection,
    /// The SVG to write.
    #[arg(short = 'o', long)]
    out: PathBuf,
}

fn load(a: &PlotArgs) -> Result<(Vec<Record>, HwProfile), Error> {
    check_output(&a.out)?;
    let (records, profile, _) = a.selection.records(&a.results)?;
    Ok((records, profile))
}

/// `-o` must name a file whose folder exists (the SVG writer reports neither clearly).
fn check_output(out: &Path) -> Result<(), Error> {
    let err = |message: &str| Error::File {
        file: out.display().to_string(),
        message: message.into(),
    };
    if out.is_dir() {
        return Err(err("is a folder; name the .svg file to write"));
    }
    match out.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(err(&format!(
            "cannot write: {} is not an existing folder",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        file: path.display().to_string(),
        message: format!("cannot draw: {e}"),
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One chart series: name, dtype, points (arithmetic intensity, FLOP/s).
type Series = (String, DType, Vec<(f64, f64)>);

fn roofline(a: &PlotArgs) -> Result<()> {
    let (records, hw) = load(a)?;
    let mut series: Vec<Series> = Vec::new();
    for r in &records {
        let Some(t) = r.timing.as_ref().filter(|_| r.correctness.pass) else {
            continue;
        };
        let intensity = t.flops_per_s / t.bytes_per_s;
        let name = format!("{} {}", r.op.dtype(), fit::implementation(r));
        match series.iter_mut().find(|(n, _, _)| n == &name) {
            Some((_, _, pts)) => pts.push((intensity, t.flops_per_s)),
            None => series.push((name, r.op.dtype(), vec![(intensity, t.flops_per_s)])),
        }
    }
    if series.is_empty() {
        return Err(Error::Unknown("no correct, timed records to plot".into()).into());
    }
    let pts = series.iter().flat_map(|(_, _, p)| p.iter());
    let (xmin, xmax) = pts
        .clone()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), (x, _)| {
            (lo.min(*x), hi.max(*x))
        });
    let dtypes: Vec<DType> = {
        let mut d: Vec<DType> = series.iter().map(|(_, d, _)| *d).collect();
        d.sort();
        d.dedup();
        d
    };
    let peak_max = dtypes
        .iter()
        .filter_map(|d| hw.peak_flops(*d))
        .fold(0.0, f64::max);
    let ymin = pts.fold(f64::INFINITY, |lo, (_, y)| lo.min(*y));
    let root = SVGBackend::new(&a.out, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&a.out, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{} roofline ({})", hw.display_name, hw.name),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(100)
        .build_cartesian_2d(
            ((xmin / 2.0).max(1e-3)..xmax * 2.0).log_scale(),
            ((ymin / 2.0).max(1.0)..peak_max * 2.0).log_scale(),
        )
        .map_err(|e| plot_err(&a.out, e))?;
    chart
        .configure_mesh()
        .x_desc("arithmetic intensity (FLOP per byte moved)")
        .y_desc("achieved FLOP/s")
        .y_label_formatter(&|y| format!("{}FLOP/s", super::format::si(*y)))
        .x_label_formatter(&|x| super::format::si(*x))
        .draw()
        .map_err(|e| plot_err(&a.out, e))?;
    let bw = hw.memory_bandwidth_bytes_per_s.value;
    for (i, d) in dtypes.iter().enumerate() {
        let Some(peak) = hw.peak_flops(*d) else {
            continue;
        };
        let color = COLORS[i % COLORS.len()];
        let xs: Vec<f64> = (0..=100)
            .map(|j| {
                (xmin / 2.0).max(1e-3)
                    * ((xmax * 4.0) / (xmin / 2.0).max(1e-3)).powf(f64::from(j) / 100.0)
            })
            .collect();
        chart
            .draw_series(LineSeries::new(
                xs.iter().map(|x| (*x, (bw * x).min(peak))),
                color.stroke_width(2),
            ))
            .map_err(|e| plot_err(&a.out, e))?
            .label(format!("{d} roofline"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    for (i, (name, _, points)) in series.iter().enumerate() {
        // Marker shape cycles with the colour so that 8 colours tell up to 24 series apart.
        let color = COLORS[i % COLORS.len()];
        let style = color.filled();
        let drawn = match (i / COLORS.len()) % 3 {
            0 => chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, style).into_dyn())),
            1 => chart.draw_series(
                points
                    .iter()
                    .map(|p| TriangleMarker::new(*p, 4, style).into_dyn()),
            ),
            _ => chart.draw_series(points.iter().map(|p| Cross::new(*p, 4, color).into_dyn())),
        };
        drawn
            .map_err(|e| plot_err(&a.out, e))?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| plot_err(&a.out, e))?;
    root.present().map_err(|e| plot_err(&a.out, e))?;
    super::emit(&format!("wrote {}\n", a.out.display()))
}

fn validation(a: &PlotArgs) -> Result<()> {
    let (records, hw) = load(a)?;
    let (_, report) = fit::build(&records, &hw, "best", Vec::new())?;
    let pts: Vec<(f64, f64)> = report
        .residuals
        .iter()
        .map(|r| (r.measured_s, r.predicted_s))
        .collect();
    let lo = pts
        .iter()
        .fold(f64::INFINITY, |m, (x, y)| m.min(*x).min(*y))
        / 2.0;
    let hi = pts.iter().fold(0.0f64, |m, (x, y)| m.max(*x).max(*y)) * 2.0;
    let band = report.overall.p90_ape;
    let root = SVGBackend::new(&a.out, (900, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&a.out, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: held-out predictions (median {:.1}%, p90 {:.1}% error; roofline median {:.1}%)",
                hw.name,
                report.overall.median_ape * 100.0,
                report.overall.p90_ape * 100.0,
                report.overall.roofline_median_ape * 100.0
            ),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
        .map_err(|e| plot_err(&a.out, e))?;
    chart
        .configure_mesh()
        .x_desc("measured time")
        .y_desc("predicted time (leave-one-out)")
        .x_label_formatter(&|x| super::format::seconds(*x))
        .y_label_formatter(&|y| super::format::seconds(*y))
        .draw()
        .map_err(|e| plot_err(&a.out, e))?;
    let diag: Vec<f64> = (0..=50)
        .map(|i| lo * (hi / lo).powf(f64::from(i) / 50.0))
        .collect();
    chart
        .draw_series(LineSeries::new(
            diag.iter().map(|x| (*x, *x)),
            BLACK.stroke_width(1),
        ))
        .map_err(|e| plot_err(&a.out, e))?
        .label("y = x")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    for factor in [1.0 + band, (1.0 - band).max(1e-3)] {
        chart
            .draw_series(LineSeries::new(
                diag.iter().map(|x| (*x, x * factor)),
                RGBColor(150, 150, 150).stroke_width(1),
            ))
            .map_err(|e| plot_err(&a.out, e))?;
    }
    chart
        .draw_series(pts.iter().map(|p| Circle::new(*p, 3, COLORS[0].filled())))
        .map_err(|e| plot_err(&a.out, e))?
        .label("calibrated, held out")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, COLORS[0].filled()));
    chart
        .draw_series(
            report
                .residuals
                .iter()
                .map(|r| Cross::new((r.measured_s, r.roofline_s), 3, COLORS[1])),
        )
        .map_err(|e| plot_err(&a.out, e))?
        .label("roofline")
        .legend(|(x, y)| Cross::new((x + 10, y), 3, COLORS[1]));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| plot_err(&a.out, e))?;
    root.present().map_err(|e| plot_err(&a.out, e))?;
    super::emit(&format!("wrote {}\n", a.out.display()))
}

pub fn run(cmd: PlotCommand) -> Result<()> {
    match cmd {
        PlotCommand::Roofline(a) => roofline(&a),
        PlotCommand::Validation(a) => validation(&a),
    }
}
