//! `gpucost frontier SPACE.toml`: every candidate of a search space priced and ranked; the Pareto
//! frontier as a table, every candidate as JSON or CSV, two objectives as an SVG. The JSON document
//! is `api::frontier_document`, as the Python package's is.

use super::format::{bytes, count, seconds, si};
use crate::api::{self, SpaceSource, SystemOptions};
use crate::model::frontier::objectives::Objective;
use crate::model::frontier::search::{self, Frontier, Goal};
use crate::model::frontier::space::Space;
use crate::model::price::Scorer;
use crate::model::system::System;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FrontierFormat {
    #[default]
    Table,
    Json,
    Csv,
}

/// What a space is priced on: shared by `frontier` and `score`.
#[derive(Debug, Args)]
pub struct SystemArgs {
    /// A catalog GPU or a profile .toml (default: the space's workload.hw).
    #[arg(long)]
    hw: Option<String>,
    /// Use the uncalibrated roofline even where a calibration for the GPU exists.
    #[arg(long, conflicts_with = "stack")]
    roofline: bool,
    /// Which measured implementations price ops (production, ours, all, or one).
    #[arg(long, default_value = "production")]
    stack: String,
}

#[derive(Debug, Args)]
pub struct FrontierArgs {
    /// The search space (TOML; see docs/frontier.md).
    space: PathBuf,
    #[command(flatten)]
    system: SystemArgs,
    /// Candidates shown (table) or written (JSON, CSV), frontier first; 0 for all.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Draw the first two objectives, the frontier and the error bars, as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    format: FrontierFormat,
}

impl SystemArgs {
    pub(super) fn options(&self) -> SystemOptions {
        SystemOptions {
            hw: self.hw.clone(),
            roofline: self.roofline,
            stack: self.stack.clone(),
        }
    }
}

pub fn run(a: FrontierArgs) -> Result<()> {
    let (space, system) = api::load_space(SpaceSource::File(&a.space), &a.system.options())?;
    let drawn = space.points().len() as u64;
    let bar = (drawn >= 100_000 && a.format == FrontierFormat::Table)
        .then(|| indicatif::ProgressBar::new(drawn));
    let scorer = Scorer::new(&system);
    let f = search::run(&space, &scorer, &|done| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(path) = &a.plot {
        super::frontier_plot::draw(path, &space, &f)?;
    }
    let shown = api::shown(&f, a.top);
    let out = match a.format {
        FrontierFormat::Table => table(&space, &system, &f, &shown),
        FrontierFormat::Json => {
            serde_json::to_string_pretty(&api::frontier_document(&space, &scorer, &f, &shown))?
                + "\n"
        }
        FrontierFormat::Csv => csv(&space, &scorer, &f, &shown),
    };
    super::emit(&out)
}

/// A candidate's varied fields as table cells, in the axes' order.
fn cells(space: &Space, point: &[u32]) -> Vec<String> {
    space
        .axes
        .iter()
        .zip(point)
        .map(|(ax, &i)| {
            ax.values[i as usize]
                .to_json()
                .to_string()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

/// An objective's value for a table cell.
fn human(o: Objective, v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match o {
        Objective::Loss => format!("{v:.4}"),
        Objective::Mfu => format!("{:.1}%", v * 100.0),
        Objective::StepTimeS | Objective::TrainingTimeS | Objective::TtftS | Objective::TpotS => {
            seconds(v)
        }
        Objective::TrainingMemoryBytes
        | Objective::ServingMemoryBytes
        | Objective::KvBytesPerToken => bytes(v),
        Objective::ParamsTotal | Objective::ParamsActive | Objective::TrainingTokens => si(v),
        Objective::TrainingUsd => format!("${v:.0}"),
        Objective::TrainingGpuHours | Objective::TrainingEnergyKwh => format!("{v:.0}"),
        Objective::DecodeTokensPerS => format!("{v:.0}"),
    }
}

fn goal_header(g: &Goal) -> String {
    let arrow = if g.minimize() { "↓" } else { "↑" };
    format!("{} {arrow}", g.objective.name())
}

fn table(space: &Space, system: &System, f: &Frontier, shown: &[usize]) -> String {
    let mut out = String::new();
    outln!(
        out,
        "{} on {} ({})",
        space.name,
        system.hw.display_name,
        system.describe()
    );
    outln!(
        out,
        "{} candidates drawn, {} valid; frontier {}, possibly optimal within their error bars {}{}",
        count(f.drawn),
        count(f.candidates.len() as u64),
        f.ranks.iter().filter(|r| **r == 0).count(),
        f.possibly_optimal.iter().filter(|p| **p).count(),
        f.hypervolume
            .map(|h| format!(", hypervolume {h:.4e}"))
            .unwrap_or_default()
    );
    let measured = f.candidates.iter().filter(|c| c.loss_measured).count();
    if measured > 0 {
        outln!(
            out,
            "  measured losses replace the scaling law for {measured} candidates (loss marked *)"
        );
    }
    for (reason, n) in &f.invalid {
        outln!(out, "  left out: {n} × {reason}");
    }
    let mut b = Builder::default();
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(space.axes.iter().map(|a| a.field.name().to_string()));
    header.extend(f.goals.iter().map(goal_header));
    header.push("possibly optimal".into());
    b.push_record(header);
    for &i in shown {
        let c = &f.candidates[i];
        let mut row: Vec<String> = vec![f.ranks[i].to_string()];
        row.extend(cells(space, &c.point));
        for (k, g) in f.goals.iter().enumerate() {
            let mut v = human(g.objective, c.values[k]);
            if g.objective == Objective::Loss && c.loss_measured {
                v.push('*');
            }
            let bar = c.bars_pct[k];
            row.push(if bar > 0.0 {
                format!("{v} ±{bar:.0}%")
            } else {
                v
            });
        }
        row.push(if f.possibly_optimal[i] { "yes" } else { "no" }.into());
        b.push_record(row);
    }
    outln!(out, "{}", b.build().with(Style::rounded()));
    out
}

fn csv(space: &Space, scorer: &Scorer, f: &Frontier, shown: &[usize]) -> String {
    let mut out = String::new();
    let mut header: Vec<String> = space
        .axes
        .iter()
        .map(|a| a.field.name().to_string())
        .collect();
    header.extend(Objective::ALL.iter().map(|o| o.name().to_string()));
    header.extend(
        f.goals
            .iter()
            .map(|g| format!("{}_error_pct", g.objective.name())),
    );
    header.extend(["pareto_rank", "crowding", "possibly_optimal"].map(String::from));
    outln!(out, "{}", header.join(","));
    for &i in shown {
        let c = &f.candidates[i];
        let mut row: Vec<String> = cells(space, &c.point);
        let s = search::scores_of(space, scorer, &c.point);
        row.extend(Objective::ALL.iter().map(|o| {
            let v = s.map_or(f64::NAN, |s| s.get(*o));
            if v.is_finite() {
                v.to_string()
            } else {
                String::new()
            }
        }));
        row.extend(f.goals.iter().zip(&c.bars_pct).map(|(_, b)| b.to_string()));
        row.push(f.ranks[i].to_string());
        row.push(f.crowding[i].to_string());
        row.push(f.possibly_optimal[i].to_string());
        outln!(out, "{}", row.join(","));
    }
    out
}
