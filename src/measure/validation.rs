//! Held-out validation of a calibration, and the error bars it earns.
//!
//! Two kinds of hold-out, both on what `predict` answers (per op kind, the vendor
//! implementations where any were measured, else every implementation; the fastest
//! well-supported prediction wins): leave-one-out over the measured shapes, and whole regions
//! held out at once (every GEMM with M ≥ 1024, every GEMV, every attention with head dim 64,
//! every decode with a context ≥ 8k, …), predicted from the rest — generalization, not memory.
//! The plain roofline is scored on the same points.
//!
//! From these residuals: per op kind and regime, the p90 of |error| per provenance (the bars),
//! the roofline's p90, and whether the roofline validated better (then it answers there). The
//! bars' coverage and width are measured on held-out points with each point's own region left
//! out of the bar that judges it.

use crate::error::{Error, Result};
use crate::model::cost::calibrated::{
    BarCoverage, Calibration, ErrorBars, Group, KindErrorBars, MIN_RESIDUALS_PER_BAR, Regime,
    key_and_features, predict_fastest, regime,
};
use crate::model::cost::{CostModel, Provenance, Roofline};
use crate::model::hw::HwProfile;
use crate::model::ops::Op;
use serde::Serialize;

/// One held-out prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Residual {
    pub group: String,
    /// The op kind ("matmul bf16"), as `GroupKey::op_kind` names it.
    pub op_kind: String,
    pub regime: Regime,
    /// How it was held out: "leave-one-out" or the region's name.
    pub held_out: String,
    /// The implementation predicted (for the fastest-implementation check: the one predicted
    /// fastest; "roofline" where the roofline answers).
    pub implementation: String,
    pub shape: String,
    pub measured_s: f64,
    pub predicted_s: f64,
    pub roofline_s: f64,
    /// |predicted − measured| ÷ measured.
    pub ape: f64,
    pub roofline_ape: f64,
    pub provenance: Provenance,
    /// The bar (± percent) this prediction would carry, from residuals outside its region;
    /// None where none is known.
    pub bar_pct: Option<f64>,
}

/// Error statistics of one group (or of all groups together).
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    pub group: String,
    pub n: usize,
    pub median_ape: f64,
    pub p90_ape: f64,
    pub max_ape: f64,
    pub roofline_median_ape: f64,
    pub roofline_p90_ape: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub method: String,
    /// What `predict` answers, over every held-out point (leave-one-out and regions), all op
    /// kinds together (`n`, `median_ape`, `p90_ape`, … at the top level of the JSON).
    #[serde(flatten)]
    pub overall: GroupStats,
    /// Every implementation's own leave-one-out predictions, all together.
    pub implementations: GroupStats,
    /// Per op kind × implementation (leave-one-out), per op kind and regime as answered
    /// ("… best"), and per held-out region ("… held out: REGION").
    pub groups: Vec<GroupStats>,
    /// Coverage and width of the bars on held-out points.
    pub coverage: BarCoverage,
    pub residuals: Vec<Residual>,
    pub best_residuals: Vec<Residual>,
    /// Correct, timed records left out because their telemetry says the clocks were throttled;
    /// absent when none were.
    #[serde(skip_serializing_if = "is_zero")]
    pub excluded_throttled: usize,
}

/// The q-quantile of unsorted values (linear interpolation, as the bench statistics).
pub(crate) fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    crate::measure::harness::stats::percentile(&v, q)
}

/// Regions of shape space held out whole, by op class: a name and who is in it.
fn regions(op: &Op) -> Vec<&'static str> {
    let mut r = Vec::new();
    match op {
        Op::Matmul(m) => {
            let rows = m.batch * m.m;
            if rows >= 1024 {
                r.push("matmul M >= 1024");
            }
            if rows <= 16 {
                r.push("matmul M <= 16");
            }
            if m.k >= 8192 {
                r.push("matmul K >= 8192");
            }
        }
        Op::Attention(a) => {
            if a.qk_head_dim == 64 {
                r.push("attention head dim 64");
            }
            if a.q_len > 1 && a.kv_len >= 8192 {
                r.push("attention prefill >= 8k tokens");
            }
            if a.q_len == 1 && a.kv_len >= 8192 {
                r.push("decode context >= 8k");
            }
            if a.batch * a.q_heads >= 256 {
                r.push("attention batch x heads >= 256");
            }
        }
        Op::Memory(m) => {
            if m.rows >= 16384 {
                r.push("memory rows >= 16k");
            }
        }
        Op::Collective(_) | Op::Scan(_) => {}
    }
    r
}

/// The groups that answer for `kind` (an op kind): its vendor implementations where any were
/// measured — what the production stack prices with — else every implementation.
fn answering<'a>(cal: &'a Calibration, kind: &str) -> Vec<&'a Group> {
    let of_kind: Vec<&Group> = cal
        .groups
        .iter()
        .filter(|g| g.key.op_kind() == kind)
        .collect();
    if of_kind.iter().any(|g| g.vendor) {
        of_kind.into_iter().filter(|g| g.vendor).collect()
    } else {
        of_kind
    }
}

/// `groups` without the points whose op is in `held`, refitted.
fn without(groups: &[&Group], held: &[Op], hw: &HwProfile) -> Vec<Group> {
    groups
        .iter()
        .map(|g| {
            let mut rest = (*g).clone();
            let before = rest.points.len();
            rest.points.retain(|p| !held.contains(&p.op));
            if rest.points.len() != before {
                rest.refit(hw);
            }
            rest
        })
        .filter(|g| !g.points.is_empty())
        .collect()
}

struct Scored<'a> {
    group: String,
    kind: String,
    held_out: String,
    implementation: &'a str,
    op: &'a Op,
    measured_s: f64,
    predicted: (f64, Provenance),
}

fn residual(s: Scored, hw: &HwProfile) -> Result<Residual> {
    let roofline_s = Roofline.predict(s.op, hw)?.seconds;
    Ok(Residual {
        group: s.group,
        op_kind: s.kind,
        regime: regime(s.op, hw),
        held_out: s.held_out,
        implementation: s.implementation.to_string(),
        shape: s.op.to_string(),
        measured_s: s.measured_s,
        predicted_s: s.predicted.0,
        roofline_s,
        ape: (s.predicted.0 - s.measured_s).abs() / s.measured_s,
        roofline_ape: (roofline_s - s.measured_s).abs() / s.measured_s,
        provenance: s.predicted.1,
        bar_pct: None,
    })
}

/// Each implementation's points predicted from the rest of that implementation's (groups with
/// at least three points).
fn per_implementation(cal: &Calibration, hw: &HwProfile) -> Result<Vec<Residual>> {
    let mut out = Vec::new();
    for g in cal.groups.iter().filter(|g| g.points.len() >= 3) {
        for p in &g.points {
            let rest = without(&[g], &[p.op], hw);
            let predicted = match rest
                .first()
                .and_then(|r| r.predict_seconds(&p.op, &p.features, hw))
            {
                Some(x) => x,
                None => (Roofline.predict(&p.op, hw)?.seconds, Provenance::Roofline),
            };
            out.push(residual(
                Scored {
                    group: format!("{} {}", g.key.op_kind(), g.key.implementation),
                    kind: g.key.op_kind(),
                    held_out: "leave-one-out".into(),
                    implementation: &g.key.implementation,
                    op: &p.op,
                    measured_s: p.measured_s,
                    predicted,
                },
                hw,
            )?);
        }
    }
    Ok(out)
}

/// What `predict` answers for each held-out shape of each kind: leave-one-out, then every
/// region held out whole. The measured time is the fastest answering implementation's.
fn as_predicted(cal: &Calibration, hw: &HwProfile) -> Result<Vec<Residual>> {
    let mut kinds: Vec<String> = cal.groups.iter().map(|g| g.key.op_kind()).collect();
    kinds.sort();
    kinds.dedup();
    let mut out = Vec::new();
    for kind in &kinds {
        let groups = answering(cal, kind);
        let mut shapes: Vec<(Op, f64)> = Vec::new();
        for p in groups.iter().flat_map(|g| &g.points) {
            match shapes.iter_mut().find(|(op, _)| *op == p.op) {
                Some((_, t)) => *t = t.min(p.measured_s),
                None => shapes.push((p.op, p.measured_s)),
            }
        }
        if shapes.len() < 3 {
            continue;
        }
        let mut held_sets: Vec<(String, Vec<Op>)> = shapes
            .iter()
            .map(|(op, _)| ("leave-one-out".to_string(), vec![*op]))
            .collect();
        let mut names: Vec<&str> = shapes.iter().flat_map(|(op, _)| regions(op)).collect();
        names.sort();
        names.dedup();
        for name in names {
            let held: Vec<Op> = shapes
                .iter()
                .filter(|(op, _)| regions(op).contains(&name))
                .map(|(op, _)| *op)
                .collect();
            // A region that is the whole kind leaves nothing to predict it from.
            if held.len() < shapes.len() {
                held_sets.push((name.to_string(), held));
            }
        }
        for (how, held) in held_sets {
            let rest = without(&groups, &held, hw);
            for op in &held {
                let measured_s = shapes.iter().find(|(o, _)| o == op).map_or(0.0, |s| s.1);
                let (predicted, implementation) = match predict_fastest(&rest, op, hw) {
                    Some((s, p, i)) => ((s, p), rest[i].key.implementation.as_str()),
                    None => (
                        (Roofline.predict(op, hw)?.seconds, Provenance::Roofline),
                        "roofline",
                    ),
                };
                out.push(residual(
                    Scored {
                        group: format!("{kind} best"),
                        kind: kind.clone(),
                        held_out: how.clone(),
                        implementation,
                        op,
                        measured_s,
                        predicted,
                    },
                    hw,
                )?);
            }
        }
    }
    Ok(out)
}

/// p90 in percent of `values` (fractions), where there are at least `min`.
fn p90_pct(values: Vec<f64>, min: usize) -> Option<f64> {
    (values.len() >= min.max(1)).then(|| percentile(values, 0.9) * 100.0)
}

/// The bars of one (kind, regime) cell — `kind` empty for all kinds, `regime` None for all
/// regimes — from `residuals` and the answering groups' points.
fn cell(
    kind: &str,
    regime_of: Option<Regime>,
    residuals: &[&Residual],
    noise: &[(String, Regime, f64)],
) -> KindErrorBars {
    let in_cell =
        |k: &str, r: Regime| (kind.is_empty() || k == kind) && regime_of.is_none_or(|x| x == r);
    let rs: Vec<&&Residual> = residuals
        .iter()
        .filter(|r| in_cell(&r.op_kind, r.regime))
        .collect();
    let of = |p: Provenance| -> Vec<f64> {
        rs.iter()
            .filter(|r| r.provenance == p)
            .map(|r| r.ape)
            .collect()
    };
    let min = MIN_RESIDUALS_PER_BAR;
    // The roofline is fitted to nothing: every point is held out for it.
    let roofline: Vec<f64> = rs.iter().map(|r| r.roofline_ape).collect();
    let calibrated: Vec<f64> = rs
        .iter()
        .filter(|r| r.provenance != Provenance::Measured)
        .map(|r| r.ape)
        .collect();
    let roofline_of_calibrated: Vec<f64> = rs
        .iter()
        .filter(|r| r.provenance != Provenance::Measured)
        .map(|r| r.roofline_ape)
        .collect();
    let use_roofline = calibrated.len() >= min
        && percentile(calibrated, 0.5) > percentile(roofline_of_calibrated, 0.5);
    KindErrorBars {
        kind: kind.to_string(),
        regime: regime_of,
        measured: p90_pct(
            noise
                .iter()
                .filter(|(k, r, _)| in_cell(k, *r))
                .map(|(_, _, n)| *n)
                .collect(),
            min,
        ),
        interpolated: p90_pct(of(Provenance::Interpolated), min),
        extrapolated: p90_pct(of(Provenance::Extrapolated), min),
        roofline: p90_pct(roofline, min),
        n: rs.len(),
        use_roofline,
    }
}

/// Every cell's bars from `residuals`: per kind and regime, per kind, and overall.
fn bars_from(residuals: &[&Residual], noise: &[(String, Regime, f64)]) -> ErrorBars {
    let mut cells: Vec<(String, Option<Regime>)> = Vec::new();
    for r in residuals {
        for c in [
            (r.op_kind.clone(), Some(r.regime)),
            (r.op_kind.clone(), None),
            (String::new(), None),
        ] {
            if !cells.contains(&c) {
                cells.push(c);
            }
        }
    }
    cells.sort();
    ErrorBars {
        bars: cells
            .iter()
            .map(|(k, r)| cell(k, *r, residuals, noise))
            .collect(),
        coverage: None,
    }
}

/// What the model answers for a residual under `bars`: the calibrated prediction, or the
/// roofline where validation chose it or the calibrated bar is past the limit and the
/// roofline's is narrower. Returns (ape, provenance, bar).
fn answered(r: &Residual, bars: &ErrorBars) -> (f64, Provenance, Option<f64>) {
    let roofline = (
        r.roofline_ape,
        Provenance::Roofline,
        bars.for_provenance(&r.op_kind, r.regime, Provenance::Roofline),
    );
    if r.provenance == Provenance::Roofline {
        return roofline;
    }
    if bars.roofline_replaces(&r.op_kind, r.regime, r.provenance) {
        roofline
    } else {
        (
            r.ape,
            r.provenance,
            bars.for_provenance(&r.op_kind, r.regime, r.provenance),
        )
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How the bars of held-out predictions held: the share whose measured time lay inside its bar,
/// and the bars' median and p90 width, over the predictions that carry a bar.
pub(crate) fn bar_coverage(rs: &[&Residual]) -> BarCoverage {
    let barred: Vec<(f64, f64)> = rs
        .iter()
        .filter_map(|r| r.bar_pct.map(|b| (b, r.ape * 100.0)))
        .collect();
    if barred.is_empty() {
        return BarCoverage::default();
    }
    let widths: Vec<f64> = barred.iter().map(|(b, _)| *b).collect();
    let inside = barred.iter().filter(|(b, e)| e <= b).count();
    BarCoverage {
        coverage: inside as f64 / barred.len() as f64,
        median_width_pct: percentile(widths.clone(), 0.5),
        p90_width_pct: percentile(widths, 0.9),
        n: barred.len(),
    }
}

pub(crate) fn stats(group: String, rs: &[&Residual]) -> GroupStats {
    let ape: Vec<f64> = rs.iter().map(|r| r.ape).collect();
    let roof: Vec<f64> = rs.iter().map(|r| r.roofline_ape).collect();
    GroupStats {
        group,
        n: rs.len(),
        median_ape: percentile(ape.clone(), 0.5),
        p90_ape: percentile(ape.clone(), 0.9),
        max_ape: ape.iter().copied().fold(0.0, f64::max),
        roofline_median_ape: percentile(roof.clone(), 0.5),
        roofline_p90_ape: percentile(roof, 0.9),
    }
}

/// Validates `cal` on `hw` and computes the error bars it earns (`cal.error_pct` is not read).
pub fn validate(cal: &Calibration, hw: &HwProfile) -> Result<(ValidationReport, ErrorBars)> {
    let residuals = per_implementation(cal, hw)?;
    let mut best = as_predicted(cal, hw)?;
    if residuals.is_empty() && best.is_empty() {
        return Err(Error::Unknown(
            "no group has the three measured shapes validation needs".into(),
        ));
    }
    // Run-to-run noise of the answering groups' points: the bar of a measured shape.
    let mut noise: Vec<(String, Regime, f64)> = Vec::new();
    for g in &cal.groups {
        let kind = g.key.op_kind();
        if answering(cal, &kind).iter().any(|a| a.key == g.key) {
            for p in &g.points {
                noise.push((kind.clone(), regime(&p.op, hw), p.noise));
            }
        }
    }
    let all: Vec<&Residual> = best.iter().collect();
    let mut bars = bars_from(&all, &noise);

    // Judge each held-out point by bars built without its region (or, left out alone, without
    // itself), then record what predict answers for it.
    let mut judged: Vec<(f64, Provenance, Option<f64>)> = Vec::with_capacity(best.len());
    for r in &best {
        let others: Vec<&Residual> = best
            .iter()
            .filter(|o| {
                if r.held_out == "leave-one-out" {
                    !(o.shape == r.shape && o.op_kind == r.op_kind)
                } else {
                    o.held_out != r.held_out || o.op_kind != r.op_kind
                }
            })
            .collect();
        judged.push(answered(r, &bars_from(&others, &noise)));
    }
    for (r, (ape, provenance, bar)) in best.iter_mut().zip(judged) {
        if provenance == Provenance::Roofline && r.provenance != Provenance::Roofline {
            r.implementation = "roofline".into();
            r.predicted_s = r.roofline_s;
        }
        r.ape = ape;
        r.provenance = provenance;
        r.bar_pct = bar;
    }
    let coverage = bar_coverage(&best.iter().collect::<Vec<_>>());
    bars.coverage = Some(coverage.clone());

    let mut groups = Vec::new();
    let mut names: Vec<String> = residuals.iter().map(|r| r.group.clone()).collect();
    names.dedup();
    for n in names {
        let rs: Vec<&Residual> = residuals.iter().filter(|r| r.group == n).collect();
        groups.push(stats(n, &rs));
    }
    let mut cells: Vec<(String, Regime)> =
        best.iter().map(|r| (r.op_kind.clone(), r.regime)).collect();
    cells.sort();
    cells.dedup();
    for (kind, reg) in cells {
        let rs: Vec<&Residual> = best
            .iter()
            .filter(|r| r.op_kind == kind && r.regime == reg)
            .collect();
        groups.push(stats(format!("{kind} best {}", reg.name()), &rs));
    }
    let mut regions_seen: Vec<String> = best
        .iter()
        .filter(|r| r.held_out != "leave-one-out")
        .map(|r| r.held_out.clone())
        .collect();
    regions_seen.sort();
    regions_seen.dedup();
    for region in regions_seen {
        let rs: Vec<&Residual> = best.iter().filter(|r| r.held_out == region).collect();
        groups.push(stats(format!("held out: {region}"), &rs));
    }
    let every: Vec<&Residual> = residuals.iter().collect();
    let answered_all: Vec<&Residual> = best.iter().collect();
    Ok((
        ValidationReport {
            method: "leave-one-out over the measured shapes, and regions held out whole; \
                     as predict answers (vendor implementations where measured)"
                .into(),
            overall: stats(
                "what predict answers, every held-out point".into(),
                &answered_all,
            ),
            implementations: stats("every implementation (leave-one-out)".into(), &every),
            groups,
            coverage,
            residuals,
            best_residuals: best,
            excluded_throttled: 0,
        },
        bars,
    ))
}

/// The kind and regime an op falls in, as bars are keyed.
pub fn kind_and_regime(op: &Op, hw: &HwProfile) -> Option<(String, Regime)> {
    key_and_features(op).map(|(k, _)| (k.op_kind(), regime(op, hw)))
}
