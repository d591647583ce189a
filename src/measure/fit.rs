//! From results records to a `Calibration`: one group per implementation with its fitted time
//! model, and the error bars its held-out validation (`validation`) earns.

use crate::error::{Error, Result};
use crate::measure::records::Record;
use crate::measure::validation::percentile;
pub use crate::measure::validation::{GroupStats, Residual, ValidationReport};
use crate::model::cost::calibrated::{
    CALIBRATION_SCHEMA_VERSION, Calibration, ErrorBars, Group, Point, TimeFit, key_and_features,
    speed_of_light,
};
use crate::model::hw::HwProfile;
use crate::model::ops::Op;

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
    let (groups, excluded_throttled) = measured_groups(records, hw, implementation_filter)?;
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
        interconnect: crate::measure::interconnect::fit(records, hw),
        transferred_from: None,
    };
    // Error bars come from the predictions `predict` makes, held out.
    let (mut report, bars) = crate::measure::validation::validate(&cal, hw)?;
    report.excluded_throttled = excluded_throttled;
    cal.error_pct = bars;
    Ok((cal, report))
}

/// The records' measured points, one group per op kind × implementation, each with its time
/// models fitted (correct, timed records only, less the throttled ones, whose count comes
/// back too). `implementation_filter` as in `build`.
pub fn measured_groups(
    records: &[Record],
    hw: &HwProfile,
    implementation_filter: &str,
) -> Result<(Vec<Group>, usize)> {
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
                vendor: records
                    .iter()
                    .any(|r| r.vendor_library && implementation(r) == key.implementation),
                tile: crate::measure::backend::output_tile(&key.implementation, class),
                key,
                points: vec![p],
                fit: TimeFit {
                    launch_s: 0.0,
                    flops_per_s: None,
                    bytes_per_s: None,
                },
                regime_fits: Vec::new(),
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
    Ok((groups, excluded_throttled))
}

/// Validates a calibration (its error bars are recomputed, not read).
pub fn validate(cal: &Calibration, hw: &HwProfile) -> Result<ValidationReport> {
    crate::measure::validation::validate(cal, hw).map(|(report, _)| report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::backend::Clock;
    use crate::measure::harness::MeasuredTelemetry;
    use crate::measure::harness::stats::Summary;
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
            op: Op::Matmul(Matmul::new(1, n, n, n, DType::Fp32)),
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
            ..crate::measure::records::test_record("regblock")
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
