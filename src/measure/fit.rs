//! From results records to a `Calibration`, and its held-out validation: leave-one-out over the
//! measured shapes of each implementation, and of the fastest implementation per shape, beside
//! the plain roofline's error on the same shapes.

use crate::error::{Error, Result};
use crate::measure::records::Record;
use crate::model::cost::calibrated::{
    CALIBRATION_SCHEMA_VERSION, Calibration, ErrorBars, Group, GroupKey, KindErrorBars,
    MIN_RESIDUALS_PER_BAR, Point, TimeFit, key_and_features, predict_fastest, speed_of_light,
};
use crate::model::cost::{CostModel, Provenance, Roofline};
use crate::model::hw::HwProfile;
use crate::model::ops::Op;
use serde::Serialize;

/// " (N throttled records excluded)" where there were any.
fn throttled_note(n: usize) -> String {
    if n > 0 {
        format!(" ({n} throttled records excluded)")
    } else {
        String::new()
    }
}

/// "backend:variant", the identity of an implementation across backends.
pub fn implementation(r: &Record) -> String {
    let backend = r.device.backend.split('/').next().unwrap_or("?");
    format!("{backend}:{}", r.variant)
}

/// Builds the calibration for `hw` from `records` (correct, timed ones only, less those whose
/// telemetry says the clocks were throttled: counted in the report), with the held-out
/// validation its error bars come from. `implementation` is "best" (every implementation, each
/// its own group; predictions take the fastest) or one backend:variant name.
pub fn build(
    records: &[Record],
    hw: &HwProfile,
    implementation_filter: &str,
    sources: Vec<String>,
) -> Result<(Calibration, ValidationReport)> {
    // One (op, implementation) → the median of its records' medians, and the worst noise.
    let mut measured: Vec<(Op, String, Vec<f64>, f64)> = Vec::new();
    let mut excluded_throttled = 0;
    for r in records {
        let Some(t) = r.timing.as_ref().filter(|_| r.correctness.pass) else {
            continue;
        };
        let imp = implementation(r);
        if implementation_filter != "best" && imp != implementation_filter {
            continue;
        }
        // Power or heat held the clocks down: the time is the clocks', not the kernel's.
        if r.throttled() {
            excluded_throttled += 1;
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
            None => measured.push((r.op, imp, vec![t.summary.median_s], noise)),
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    for (op, imp, times, noise) in measured {
        let Some((mut key, features)) = key_and_features(&op) else {
            continue;
        };
        let Ok(sol) = speed_of_light(&op, hw) else {
            continue;
        };
        let class = key.class;
        key.implementation = imp;
        let p = Point {
            op,
            features,
            sol_s: sol,
            measured_s: percentile(times, 0.5),
            noise,
        };
        match groups.iter_mut().find(|g| g.key == key) {
            Some(g) => g.points.push(p),
            None => groups.push(Group {
                tile: crate::measure::backend::output_tile(&key.implementation, class),
                key,
                points: vec![p],
                fit: TimeFit {
                    launch_s: 0.0,
                    flops_per_s: None,
                    bytes_per_s: None,
                },
            }),
        }
    }
    if groups.is_empty() {
        return Err(Error::Unknown(format!(
            "no correct, timed matmul, attention or memory-bound op records for implementation \
             '{implementation_filter}'{}",
            throttled_note(excluded_throttled)
        )));
    }
    groups.sort_by(|a, b| {
        (a.key.op_kind(), &a.key.implementation).cmp(&(b.key.op_kind(), &b.key.implementation))
    });
    for g in &mut groups {
        g.points.sort_by(|a, b| a.sol_s.total_cmp(&b.sol_s));
        g.refit(hw);
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
    // Error bars come from the predictions `predict` makes: the fastest implementation's.
    let mut report = validate(&cal, hw)?;
    report.excluded_throttled = excluded_throttled;
    // p90 in percent, where there are at least `min` values.
    let p90 = |v: Vec<f64>, min: usize| (v.len() >= min.max(1)).then(|| percentile(v, 0.9));
    let residuals = |kind: Option<&str>, prov: Provenance| -> Vec<f64> {
        report
            .best_residuals
            .iter()
            .filter(|r| r.provenance == prov && kind.is_none_or(|k| r.op_kind == k))
            .map(|r| r.ape * 100.0)
            .collect()
    };
    let noise = |kind: Option<&str>| -> Vec<f64> {
        cal.groups
            .iter()
            .filter(|g| kind.is_none_or(|k| g.key.op_kind() == k))
            .flat_map(|g| g.points.iter().map(|p| p.noise * 100.0))
            .collect()
    };
    let mut kinds: Vec<String> = cal.groups.iter().map(|g| g.key.op_kind()).collect();
    kinds.dedup();
    let min = MIN_RESIDUALS_PER_BAR;
    let by_kind = kinds
        .iter()
        .map(|k| KindErrorBars {
            kind: k.clone(),
            measured: p90(noise(Some(k)), min),
            interpolated: p90(residuals(Some(k), Provenance::Interpolated), min),
            extrapolated: p90(residuals(Some(k), Provenance::Extrapolated), min),
        })
        .collect();
    cal.error_pct = ErrorBars {
        measured: p90(noise(None), 1),
        interpolated: p90(residuals(None, Provenance::Interpolated), 1),
        extrapolated: p90(residuals(None, Provenance::Extrapolated), 1),
        by_kind,
    };
    Ok((cal, report))
}

/// The q-quantile of unsorted values (linear interpolation, as the bench statistics).
fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    crate::measure::harness::stats::percentile(&v, q)
}

/// One held-out prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Residual {
    pub group: String,
    /// The op kind ("matmul bf16"), as `GroupKey::op_kind` names it.
    pub op_kind: String,
    /// The implementation predicted (for the fastest-implementation check: the one predicted
    /// fastest).
    pub implementation: String,
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
    /// The fastest implementation per held-out shape, all op kinds together — what `predict`
    /// answers (`n`, `median_ape`, `p90_ape`, … at the top level of the JSON).
    #[serde(flatten)]
    pub overall: GroupStats,
    /// Every implementation's own held-out predictions, all together.
    pub implementations: GroupStats,
    /// Per op kind × implementation, then per op kind for the fastest ("… best").
    pub groups: Vec<GroupStats>,
    pub residuals: Vec<Residual>,
    pub best_residuals: Vec<Residual>,
    /// Correct, timed records left out because their telemetry says the clocks were throttled;
    /// absent when none were.
    #[serde(skip_serializing_if = "is_zero")]
    pub excluded_throttled: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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

fn residual(
    group: String,
    op_kind: String,
    implementation: &str,
    op: &Op,
    measured_s: f64,
    predicted: (f64, Provenance),
    hw: &HwProfile,
) -> Result<Residual> {
    let roofline_s = Roofline.predict(op, hw)?.seconds;
    Ok(Residual {
        group,
        op_kind,
        implementation: implementation.to_string(),
        shape: op.to_string(),
        measured_s,
        predicted_s: predicted.0,
        roofline_s,
        ape: (predicted.0 - measured_s).abs() / measured_s,
        roofline_ape: (roofline_s - measured_s).abs() / measured_s,
        provenance: predicted.1,
    })
}

/// The groups without `op`'s point, refitted.
fn without(groups: &[&Group], op: &Op, hw: &HwProfile) -> Vec<Group> {
    groups
        .iter()
        .map(|g| {
            let mut rest = (*g).clone();
            let before = rest.points.len();
            rest.points.retain(|p| &p.op != op);
            if rest.points.len() != before {
                rest.refit(hw);
            }
            rest
        })
        .filter(|g| !g.points.is_empty())
        .collect()
}

/// Leave-one-out, twice: each implementation's points (groups with at least three) predicted
/// from the rest of that implementation's; and each shape's fastest measured time predicted as
/// the fastest of every implementation's prediction with that shape held out of all of them.
pub fn validate(cal: &Calibration, hw: &HwProfile) -> Result<ValidationReport> {
    let mut residuals = Vec::new();
    for g in cal.groups.iter().filter(|g| g.points.len() >= 3) {
        for p in &g.points {
            let rest = without(&[g], &p.op, hw);
            // What the model answers without this shape: the roofline where the group cannot.
            let predicted = match rest[0].predict_seconds(&p.op, &p.features, hw) {
                Some(x) => x,
                None => (Roofline.predict(&p.op, hw)?.seconds, Provenance::Roofline),
            };
            let name = format!("{} {}", g.key.op_kind(), g.key.implementation);
            residuals.push(residual(
                name,
                g.key.op_kind(),
                &g.key.implementation,
                &p.op,
                p.measured_s,
                predicted,
                hw,
            )?);
        }
    }
    let mut best_residuals = Vec::new();
    let mut kinds: Vec<GroupKey> = cal.groups.iter().map(|g| g.key.clone()).collect();
    kinds.dedup_by(|a, b| a.same_op_kind(b));
    for kind in &kinds {
        let competing: Vec<&Group> = cal
            .groups
            .iter()
            .filter(|g| g.key.same_op_kind(kind))
            .collect();
        let mut shapes: Vec<(&Op, f64)> = Vec::new();
        for p in competing.iter().flat_map(|g| &g.points) {
            match shapes.iter_mut().find(|(op, _)| *op == &p.op) {
                Some((_, t)) => *t = t.min(p.measured_s),
                None => shapes.push((&p.op, p.measured_s)),
            }
        }
        if shapes.len() < 3 {
            continue;
        }
        for (op, fastest_s) in shapes {
            let rest = without(&competing, op, hw);
            let (s, provenance, imp) = match predict_fastest(&rest, op, hw) {
                Some(x) => x,
                None => (
                    Roofline.predict(op, hw)?.seconds,
                    Provenance::Roofline,
                    "roofline",
                ),
            };
            let name = format!("{} best", kind.op_kind());
            best_residuals.push(residual(
                name,
                kind.op_kind(),
                imp,
                op,
                fastest_s,
                (s, provenance),
                hw,
            )?);
        }
    }
    if residuals.is_empty() && best_residuals.is_empty() {
        return Err(Error::Unknown(
            "no group has the three measured shapes leave-one-out needs".into(),
        ));
    }
    let mut groups = Vec::new();
    for set in [&residuals, &best_residuals] {
        let mut names: Vec<String> = set.iter().map(|r| r.group.clone()).collect();
        names.dedup();
        for n in names {
            let rs: Vec<&Residual> = set.iter().filter(|r| r.group == n).collect();
            groups.push(stats(n, &rs));
        }
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    let all: Vec<&Residual> = residuals.iter().collect();
    let best: Vec<&Residual> = best_residuals.iter().collect();
    Ok(ValidationReport {
        method: "leave-one-out over the measured shapes".into(),
        overall: stats("fastest implementation (what predict uses)".into(), &best),
        implementations: stats("every implementation".into(), &all),
        groups,
        residuals,
        best_residuals,
        excluded_throttled: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::backend::{Clock, DeviceInfo};
    use crate::measure::harness::stats::Summary;
    use crate::measure::harness::{Correctness, MeasuredTelemetry};
    use crate::measure::records::Timing;
    use crate::model::dtype::DType;
    use crate::model::ops::Matmul;

    /// A correct wgpu:regblock record of an n³ fp32 matmul taking `seconds`.
    fn record(n: u64, seconds: f64, throttled: bool) -> Record {
        let summary = Summary {
            n: 10,
            median_s: seconds,
            p10_s: seconds * 0.99,
            p90_s: seconds * 1.01,
            min_s: seconds * 0.98,
            mean_s: seconds,
            cv: 0.01,
        };
        Record {
            schema_version: crate::measure::records::RECORD_SCHEMA_VERSION,
            unix_time_s: 1.0,
            git_revision: "abc".into(),
            host: "h".into(),
            device: DeviceInfo {
                backend: "wgpu/vulkan".into(),
                name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                vendor: "0x10005".into(),
                driver: "Mesa".into(),
                device_type: "Cpu".into(),
                memory_bytes: None,
                compute_units: None,
                timer_resolution_ns: Some(1.0),
                clock: Clock::DeviceTimestamp,
                supports_f16: true,
            },
            op: Op::Matmul(Matmul::new(1, n, n, n, DType::Fp32)),
            variant: "regblock".into(),
            vendor_library: false,
            correctness: Correctness {
                max_rel_error: 1e-7,
                tolerance: 1e-5,
                pass: true,
                error: None,
            },
            timing: Some(Timing {
                clock: Clock::DeviceTimestamp,
                warmup_runs: 1,
                summary,
                samples_s: vec![seconds; 10],
                flops_per_s: 0.0,
                bytes_per_s: 0.0,
                roofline_fraction: None,
            }),
            telemetry: Some(MeasuredTelemetry {
                throttled,
                ..MeasuredTelemetry::default()
            }),
        }
    }

    fn seconds(n: u64) -> f64 {
        2.0 * (n as f64).powi(3) / 5e9 + 2e-5
    }

    #[test]
    fn throttled_records_are_excluded_and_counted() {
        let hw = crate::model::hw::load("lavapipe").unwrap();
        let sizes = [64, 128, 256, 512];
        let clean: Vec<Record> = sizes
            .iter()
            .map(|&n| record(n, seconds(n), false))
            .collect();
        let mut records = clean.clone();
        // The same shape again, with the clocks held down: ten times slower.
        records.push(record(256, 10.0 * seconds(256), true));
        let (cal, report) = build(&records, &hw, "best", Vec::new()).unwrap();
        assert_eq!(report.excluded_throttled, 1);
        let measured: Vec<f64> = cal.groups[0].points.iter().map(|p| p.measured_s).collect();
        let expected: Vec<f64> = sizes.iter().map(|&n| seconds(n)).collect();
        assert_eq!(measured, expected);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["excluded_throttled"], 1);
        // Nothing throttled: no count, and the key stays out of the JSON.
        let (_, report) = build(&clean, &hw, "best", Vec::new()).unwrap();
        assert_eq!(report.excluded_throttled, 0);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json.get("excluded_throttled").is_none());
        // Only throttled records: the error says why nothing was left.
        let throttled: Vec<Record> = sizes.iter().map(|&n| record(n, seconds(n), true)).collect();
        let e = build(&throttled, &hw, "best", Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 throttled records excluded"), "{e}");
    }
}
