//! The frontier as SVG: the first two objectives of every candidate, the Pareto frontier drawn
//! through its points with their error bars, and the candidates that could be optimal within
//! their bars marked.

use crate::Error;
use crate::model::frontier::search::Frontier;
use crate::model::frontier::space::Space;
use plotters::prelude::*;
use std::path::Path;

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        file: path.display().to_string(),
        message: format!("cannot draw: {e}"),
    }
}

/// Most candidates drawn (a sample of the rest is enough to see the cloud).
const MAX_DRAWN: usize = 20_000;

pub fn draw(path: &Path, space: &Space, f: &Frontier) -> Result<(), Error> {
    if f.goals.len() < 2 {
        return Err(Error::Unsupported(
            "--plot needs at least two objectives".into(),
        ));
    }
    let (gx, gy) = (f.goals[0].objective, f.goals[1].objective);
    let point = |i: usize| {
        let v = &f.candidates[i].values;
        (v[0], v[1])
    };
    let bars = |i: usize| {
        let b = &f.candidates[i].bars_pct;
        (b[0] / 100.0, b[1] / 100.0)
    };
    let finite: Vec<usize> = (0..f.candidates.len())
        .filter(|&i| {
            let (x, y) = point(i);
            x.is_finite() && y.is_finite()
        })
        .collect();
    if finite.is_empty() {
        return Err(Error::Unsupported(
            "--plot: no candidate has finite values of the first two objectives".into(),
        ));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &i in &finite {
        let (x, y) = point(i);
        let (bx, by) = bars(i);
        x0 = x0.min(x * (1.0 - bx));
        x1 = x1.max(x * (1.0 + bx));
        y0 = y0.min(y * (1.0 - by));
        y1 = y1.max(y * (1.0 + by));
    }
    let pad = |lo: f64, hi: f64| {
        let d = (hi - lo).abs().max(hi.abs() * 1e-6).max(1e-12) * 0.05;
        (lo - d)..(hi + d)
    };
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: Pareto frontier", space.name),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(pad(x0, x1), pad(y0, y1))
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(gx.name())
        .y_desc(gy.name())
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let step = (finite.len() / MAX_DRAWN).max(1);
    chart
        .draw_series(
            finite
                .iter()
                .step_by(step)
                .map(|&i| Circle::new(point(i), 2, RGBColor(190, 190, 190).filled())),
        )
        .map_err(|e| plot_err(path, e))?
        .label("candidates");
    let possibly: Vec<usize> = finite
        .iter()
        .copied()
        .filter(|&i| f.possibly_optimal[i] && f.ranks[i] > 0)
        .collect();
    chart
        .draw_series(
            possibly
                .iter()
                .map(|&i| Circle::new(point(i), 3, RGBColor(230, 140, 20).filled())),
        )
        .map_err(|e| plot_err(path, e))?
        .label("possibly optimal within the error bars");
    let mut front: Vec<usize> = finite
        .iter()
        .copied()
        .filter(|&i| f.ranks[i] == 0)
        .collect();
    front.sort_by(|&a, &b| point(a).0.total_cmp(&point(b).0));
    let blue = RGBColor(31, 90, 180);
    for &i in &front {
        let (x, y) = point(i);
        let (bx, by) = bars(i);
        for seg in [
            [(x * (1.0 - bx), y), (x * (1.0 + bx), y)],
            [(x, y * (1.0 - by)), (x, y * (1.0 + by))],
        ] {
            chart
                .draw_series(LineSeries::new(seg, blue.stroke_width(1)))
                .map_err(|e| plot_err(path, e))?;
        }
    }
    chart
        .draw_series(LineSeries::new(
            front.iter().map(|&i| point(i)),
            blue.stroke_width(2),
        ))
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(
            front
                .iter()
                .map(|&i| Circle::new(point(i), 4, blue.filled())),
        )
        .map_err(|e| plot_err(path, e))?
        .label("Pareto frontier (with error bars)");
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}
