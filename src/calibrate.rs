//! From results records to a `Calibration`, and its held-out validation: leave-one-out over the
//! measured shapes of each group, beside the plain roofline's error on the same shapes.

use crate::cost::calibrated::{
    CALIBRATION_SCHEMA_VERSION, Calibration, ErrorBars, Group, GroupKey, Point, SaturationFit,
    group_utilization, key_and_features, speed_of_light,
};
use crate::cost::{CostModel, Provenance, Roofline};
use crate::error::{Error, Result};
use crate::hw::HwProfile;
use crate::ops::Op;
use crate::results::Record;
use serde::Serialize;

/// "backend:variant", the identity of an implementation across backends.
pub fn implementation(r: &Record) -> String {
    let backend = r.device.backend.split('/').next().unwrap_or("?");
    format!("{backend}:{}", r.variant)
}

/// Builds the calibration for `hw` from `records` (correct, timed ones only). `implementation`
/// is "best" (fastest correct implementation per shape) or a backend:variant name.
pub fn build(
    records: &[Record],
    hw: &HwProfile,
    implementation_filter: &str,
    sources: Vec<String>,
) -> Result<Calibration> {
    // One (op, implementation) → median of its records' medians, and the worst noise.
    let mut measured: Vec<(Op, String, Vec<f64>, f64)> = Vec::new();
    for r in records {
        let Some(t) = r.timing.as_ref().filter(|_| r.correctness.pass) else {
            continue;
        };
        let imp = implementation(r);
        if implementation_filter != "best" && imp != implementation_filter {
            continue;
        }
        let noise = (t.summary.p90_s - t.summary.p10_s) / (2.0 * t.summary.median_s);
        match measured
            .iter_mut()
            .find(|(op, i, _, _)| op == &r.op && i == &imp)
        {
            Some((_, _, times, n)) => {
                times.push(t.summary.median_s);
                *n = n.max(noise);
            }
            None => measured.push((r.op.clone(), imp, vec![t.summary.median_s], noise)),
        }
    }
    // Per op, the fastest implementation (only one is left unless "best").
    let mut best: Vec<(Op, String, f64, f64)> = Vec::new();
    for (op, imp, times, noise) in measured {
        let t = percentile(times, 0.5);
        match best.iter_mut().find(|(o, _, _, _)| o == &op) {
            Some(b) if t < b.2 => *b = (op, imp, t, noise),
            Some(_) => {}
            None => best.push((op, imp, t, noise)),
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    for (op, imp, t, noise) in best {
        let Some((key, features)) = key_and_features(&op) else {
            continue;
        };
        let Ok(sol) = speed_of_light(&op, hw) else {
            continue;
        };
        let p = Point {
            op: op.clone(),
            features,
            sol_s: sol,
            measured_s: t,
            noise,
            implementation: imp,
        };
        match groups.iter_mut().find(|g| g.key == key) {
            Some(g) => g.points.push(p),
            None => groups.push(Group {
                key,
                points: vec![p],
                fit: SaturationFit {
                    u_max: 1.0,
                    half_s: 0.0,
                },
            }),
        }
    }
    if groups.is_empty() {
        return Err(Error::Unknown(format!(
            "no correct, timed matmul or attention records for implementation '{implementation_filter}'"
        )));
    }
    for g in &mut groups {
        g.points.sort_by(|a, b| a.sol_s.total_cmp(&b.sol_s));
        if let Some(f) = SaturationFit::fit(&g.points) {
            g.fit = f;
        }
    }
    let first = records.first();
    let mut revisions: Vec<String> = records.iter().map(|r| r.git_revision.clone()).collect();
    revisions.sort();
    revisions.dedup();
    let mut cal = Calibration {
        schema_version: CALIBRATION_SCHEMA_VERSION,
        profile: hw.name.clone(),
        device: first.map(|r| r.device.name.clone()).unwrap_or_default(),
        driver: first.map(|r| r.device.driver.clone()).unwrap_or_default(),
        implementation: implementation_filter.to_string(),
        sources,
        git_revisions: revisions,
        groups,
        error_pct: ErrorBars::default(),
    };
    let report = validate(&cal, hw)?;
    let p90 = |prov: Provenance| -> Option<f64> {
        let v: Vec<f64> = report
            .residuals
            .iter()
            .filter(|r| r.provenance == prov)
            .map(|r| r.ape * 100.0)
            .collect();
        (!v.is_empty()).then(|| percentile(v, 0.9))
    };
    let noise: Vec<f64> = cal
        .groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| p.noise * 100.0))
        .collect();
    cal.error_pct = ErrorBars {
        measured: (!noise.is_empty()).then(|| percentile(noise, 0.9)),
        interpolated: p90(Provenance::Interpolated),
        extrapolated: p90(Provenance::Extrapolated),
    };
    Ok(cal)
}

/// The q-quantile of unsorted values (linear interpolation, as the bench statistics).
fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    crate::bench::stats::percentile(&v, q)
}

/// One held-out prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Residual {
    pub group: String,
    pub shape: String,
    pub measured_s: f64,
    pub predicted_s: f64,
    pub roofline_s: f64,
    /// |predicted − measured| ÷ measured.
    pub ape: f64,
    pub roofline_ape: f64,
    pub provenance: Provenance,
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
    /// All groups together (`n`, `median_ape`, `p90_ape`, … at the top level of the JSON).
    #[serde(flatten)]
    pub overall: GroupStats,
    pub groups: Vec<GroupStats>,
    pub residuals: Vec<Residual>,
}

fn group_name(k: &GroupKey) -> String {
    let class = match k.class {
        crate::ops::OpClass::Matmul => "matmul",
        crate::ops::OpClass::Attention => "attention",
        _ => "other",
    };
    format!("{class} {} {}", k.dtype, k.kind).trim().to_string()
}

fn stats(group: String, rs: &[&Residual]) -> GroupStats {
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

/// Leave-one-out: each point of a group with at least three is predicted from the others.
pub fn validate(cal: &Calibration, hw: &HwProfile) -> Result<ValidationReport> {
    let mut residuals = Vec::new();
    for g in cal.groups.iter().filter(|g| g.points.len() >= 3) {
        for (i, p) in g.points.iter().enumerate() {
            let mut rest = g.clone();
            rest.points.remove(i);
            if let Some(f) = SaturationFit::fit(&rest.points) {
                rest.fit = f;
            }
            let (util, provenance) = group_utilization(&rest, &p.features, p.sol_s);
            let predicted_s = p.sol_s / util.max(1e-9);
            let roofline_s = Roofline.predict(&p.op, hw)?.seconds;
            residuals.push(Residual {
                group: group_name(&g.key),
                shape: p.op.to_string(),
                measured_s: p.measured_s,
                predicted_s,
                roofline_s,
                ape: (predicted_s - p.measured_s).abs() / p.measured_s,
                roofline_ape: (roofline_s - p.measured_s).abs() / p.measured_s,
                provenance,
            });
        }
    }
    if residuals.is_empty() {
        return Err(Error::Unknown(
            "no group has the three measured shapes leave-one-out needs".into(),
        ));
    }
    let mut names: Vec<String> = residuals.iter().map(|r| r.group.clone()).collect();
    names.dedup();
    let groups = names
        .iter()
        .map(|n| {
            let rs: Vec<&Residual> = residuals.iter().filter(|r| &r.group == n).collect();
            stats(n.clone(), &rs)
        })
        .collect();
    let all: Vec<&Residual> = residuals.iter().collect();
    Ok(ValidationReport {
        method: "leave-one-out over each group's measured shapes".into(),
        overall: stats("all".into(), &all),
        groups,
        residuals,
    })
}
