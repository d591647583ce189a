//! The interconnect calibration: measured collectives (`bench --op collective`) fitted to the
//! alpha–beta model the cost model prices them with, as kernel results are fitted to the kernel
//! model. All-gather and reduce-scatter run the ring on every fabric (all-reduce may take
//! in-switch reduction, whose bytes differ), so they carry the fit: time = fixed + steps × step
//! latency + bytes on the wire ÷ (bus bandwidth × efficiency), least squares over the sizes.

use crate::measure::records::Record;
use crate::model::cost::calibrated::InterconnectFit;
use crate::model::hw::HwProfile;
use crate::model::ops::{CollectiveKind, Link, Op};

/// Sizes a fit needs at least.
pub const MIN_POINTS: usize = 4;

/// The fit of `records`' ring collectives inside one node, where there are enough of them.
pub fn fit(records: &[Record], hw: &HwProfile) -> Option<InterconnectFit> {
    let bus = hw
        .interconnect
        .nvlink_bytes_per_s
        .as_ref()
        .or(hw.interconnect.pcie_bytes_per_s.as_ref())?
        .value;
    // (bytes on the wire, ring steps, median seconds)
    let mut points: Vec<(f64, f64, f64)> = Vec::new();
    let mut ranks = 0;
    for r in records {
        let (Op::Collective(c), Some(t)) = (&r.op, &r.timing) else {
            continue;
        };
        if !r.correctness.pass
            || !matches!(
                c.kind,
                CollectiveKind::AllGather | CollectiveKind::ReduceScatter
            )
            || c.placement(hw.gpus_per_node().max(c.ranks)).0 != Link::IntraNode
        {
            continue;
        }
        ranks = ranks.max(c.ranks);
        points.push((
            c.bytes_on_wire_per_rank(),
            (c.ranks - 1) as f64,
            t.summary.median_s,
        ));
    }
    if points.len() < MIN_POINTS {
        return None;
    }
    // t = a + b·wire (the steps are the same for one group size: they join the intercept).
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0, y + p.2));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.2 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    if !(b > 0.0 && a.is_finite()) {
        return None;
    }
    let efficiency = (1.0 / b / bus).clamp(1e-3, 1.0);
    let steps = points.iter().map(|p| p.1).fold(0.0, f64::max);
    // The intercept is the fixed cost plus the steps' latency; the profile's step latency is
    // kept and the rest is the fixed cost.
    let latency = (a - steps * hw.model.nvlink_step_latency_s).max(0.0);
    let errors: Vec<f64> = points
        .iter()
        .map(|p| {
            let predicted =
                latency + p.1 * hw.model.nvlink_step_latency_s + p.0 / (bus * efficiency);
            100.0 * (predicted - p.2).abs() / p.2
        })
        .collect();
    let mut sorted = errors.clone();
    sorted.sort_by(f64::total_cmp);
    Some(InterconnectFit {
        collective_efficiency: efficiency,
        collective_latency_s: latency,
        ranks,
        points: points.len(),
        median_abs_error_pct: sorted[sorted.len() / 2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::backend::Clock;
    use crate::measure::harness::stats::Summary;
    use crate::measure::records::Timing;
    use crate::model::dtype::DType;
    use crate::model::hw;
    use crate::model::ops::Collective;

    fn collective(kind: CollectiveKind, bytes: u64) -> Op {
        Op::Collective(Collective {
            kind,
            payload_bytes: bytes,
            ranks: 8,
            stride: 1,
            dtype: DType::Fp32,
        })
    }

    /// A passing record of `op` timed at `t` seconds.
    fn test_record(op: Op, t: f64) -> Record {
        let mut r = crate::measure::records::test_record("nccl");
        r.op = op;
        r.timing = Some(Timing {
            clock: Clock::DeviceTimestamp,
            warmup_runs: 2,
            summary: Summary::of(&[t, t, t]).unwrap(),
            samples_s: vec![t, t, t],
            flops_per_s: 0.0,
            bytes_per_s: 1.0,
            roofline_fraction: None,
        });
        r
    }

    /// Times made by a known fixed cost and efficiency are fitted back.
    #[test]
    fn the_fit_recovers_the_model_that_made_the_times() {
        let h = hw::load("h100-sxm").unwrap();
        let (fixed, efficiency) = (15e-6, 0.7);
        let bus = 450e9 * efficiency;
        let mut records = Vec::new();
        for kind in [CollectiveKind::AllGather, CollectiveKind::ReduceScatter] {
            for p in (12..=30).step_by(2) {
                let op = collective(kind, 1 << p);
                let Op::Collective(c) = op else {
                    unreachable!()
                };
                let t =
                    fixed + 7.0 * h.model.nvlink_step_latency_s + c.bytes_on_wire_per_rank() / bus;
                records.push(test_record(op, t));
            }
        }
        // All-reduce and failed records do not count.
        records.push(test_record(
            collective(CollectiveKind::AllReduce, 1 << 20),
            1.0,
        ));
        let f = fit(&records, &h).unwrap();
        assert!((f.collective_efficiency - efficiency).abs() < 1e-9, "{f:?}");
        assert!((f.collective_latency_s - fixed).abs() < 1e-12, "{f:?}");
        assert_eq!((f.ranks, f.points), (8, 20));
        assert!(f.median_abs_error_pct < 1e-6);
    }

    #[test]
    fn too_few_collectives_fit_nothing() {
        let h = hw::load("h100-sxm").unwrap();
        let records = vec![test_record(
            collective(CollectiveKind::AllGather, 1 << 20),
            1e-3,
        )];
        assert!(fit(&records, &h).is_none());
        assert!(fit(&[], &h).is_none());
    }
}
