//! Transfer of a calibration to a GPU that was never measured.
//!
//! Every point the nearest measured GPU measured is carried over by the datasheet ratios: its
//! fixed launch cost kept (host and driver time), its busy time at the same utilization of the
//! speed of light, whose compute term scales with the dtype's peak (SM count × clock × per-SM
//! rate: the tensor-core generation as the datasheets state it) and whose memory term with the
//! memory bandwidth — or, for a kernel that reached less than half of the bandwidth, with the
//! compute units × clock that issue its loads and stores. The time models are then refitted on
//! the target (wave quantization recounted on its compute units), so each point keeps what a law
//! misses there. Groups of a dtype the target has no peak for are dropped.
//!
//! Every answer of a transferred calibration is labelled `transferred`, and its bar is the
//! source's held-out bar widened by the transfer allowance (added in quadrature: the two errors
//! are independent), so a transferred prediction is never barred tighter than the same
//! prediction on the measured GPU.

use super::calibrated::{
    Calibration, Group, TimeFit, embedded, embedded_profiles, peak_rate, speed_of_light,
};
use crate::error::Result;
use crate::model::dtype::DType;
use crate::model::hw::{self, HwProfile};
use crate::model::ops::Op;
use serde::{Deserialize, Serialize};

/// Where a transferred calibration came from, and how it was rescaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSource {
    /// The measured GPU's profile and device.
    pub profile: String,
    pub device: String,
    /// Target ÷ source memory bandwidth (datasheet).
    pub bandwidth_ratio: f64,
    /// Target ÷ source fp32 peak (datasheet); the tensor dtypes use their own peaks' ratio.
    pub fp32_ratio: f64,
    /// Target ÷ source bf16 matrix peak, where both have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16_ratio: Option<f64>,
    /// ± percent added in quadrature to every calibrated bar.
    pub allowance_pct: f64,
}

/// The transfer's own error: ± percent at 90%, added in quadrature to the source's bars. About
/// one and a half times the p90 of the transfer's error on the CPU stand-in's matmuls (13.4%:
/// lavapipe's two-thread calibration carried to its one-thread measurements, `gpucost validate
/// --transfer-from lavapipe`, docs/calibration.md), set wider since one thread against two is a
/// smaller change than a GPU generation.
pub const TRANSFER_ALLOWANCE_PCT: f64 = 20.0;

/// `bar` widened by the transfer allowance.
pub fn widened(bar: f64, allowance: f64) -> f64 {
    bar.hypot(allowance)
}

/// The peak a group's FLOP rate is measured against on `hw` (fp32 for memory-bound ops, which
/// compute on the vector units); None where `hw` has no peak for its dtype.
fn group_peak(g: &Group, hw: &HwProfile) -> Option<f64> {
    match g.key.class {
        crate::model::ops::OpClass::Memory | crate::model::ops::OpClass::Collective => {
            Some(hw.peak_flops.fp32.value)
        }
        _ => hw.peak_flops(g.key.dtype),
    }
}

/// The datasheet ratios (target ÷ source) a group's rates scale by.
struct Ratios {
    /// The dtype's peak: SMs × clock × per-SM rate.
    flops: f64,
    /// Memory bandwidth.
    bandwidth: f64,
    /// Compute units × clock: how fast loads and stores are issued.
    issue: f64,
}

impl Ratios {
    fn of(g: &Group, source: &HwProfile, target: &HwProfile) -> Option<Ratios> {
        let issue = |hw: &HwProfile| f64::from(hw.compute_units.value) * hw.boost_clock_hz.value;
        Some(Ratios {
            flops: group_peak(g, target)? / group_peak(g, source)?,
            bandwidth: target.memory_bandwidth_bytes_per_s.value
                / source.memory_bandwidth_bytes_per_s.value,
            issue: issue(target) / issue(source),
        })
    }

    /// The ratio an achieved bandwidth scales by: the memory bandwidth's where the kernel reached
    /// at least half of it on the source (memory is what limits it), else the issue rate's
    /// (what limits it is issuing loads and stores, as lavapipe's memory-bound kernels at 6–20%
    /// of its bandwidth are).
    fn bytes(&self, achieved_fraction: f64) -> f64 {
        if achieved_fraction >= DRAM_BOUND_FRACTION {
            self.bandwidth
        } else {
            self.issue
        }
    }
}

/// The share of the datasheet bandwidth from which a kernel counts as limited by memory.
const DRAM_BOUND_FRACTION: f64 = 0.5;

/// A measured time on the target: the fixed launch cost kept, the rest (the busy time) at the
/// same utilization of the speed of light, whose compute term scales with the dtype's peak and
/// whose memory term with what limits the achieved bandwidth (`Ratios::bytes`).
fn carried_seconds(
    op: &Op,
    measured_s: f64,
    launch_s: f64,
    r: &Ratios,
    source: &HwProfile,
) -> Option<f64> {
    let launch = launch_s.min(measured_s);
    let busy = measured_s - launch;
    let compute = op.flops() / peak_rate(op, source).ok()?;
    let memory = op.min_bytes() / source.memory_bandwidth_bytes_per_s.value;
    let on_source = compute.max(memory);
    // Only a memory-bound kernel's achieved bandwidth says what limits its memory traffic.
    let memory_ratio = if memory >= compute {
        r.bytes(memory / busy)
    } else {
        r.bandwidth
    };
    let on_target = (compute / r.flops).max(memory / memory_ratio);
    let t = launch + busy * on_target / on_source;
    (t.is_finite() && t > 0.0).then_some(t)
}

/// One group on the target: every point carried over (`carried_seconds`), so each keeps what
/// a law would miss there, then the time models refitted on the target's regimes.
fn transfer_group(g: &Group, source: &HwProfile, target: &HwProfile) -> Option<Group> {
    let ratios = Ratios::of(g, source, target)?;
    let mut out = g.clone();
    for p in &mut out.points {
        let launch = g
            .regime_fit_for_op(&p.op, source)
            .unwrap_or(&g.fit)
            .launch_s;
        p.measured_s = carried_seconds(&p.op, p.measured_s, launch, &ratios, source)?;
        p.sol_s = speed_of_light(&p.op, target).ok()?;
    }
    out.fit = TimeFit {
        launch_s: g.fit.launch_s,
        flops_per_s: g.fit.flops_per_s.map(|x| x * ratios.flops),
        bytes_per_s: g.fit.bytes_per_s.map(|x| x * ratios.bandwidth),
    };
    out.refit(target);
    Some(out)
}

/// `source` (the calibration of `source_hw`) carried over to `target`.
pub fn transfer(source: &Calibration, source_hw: &HwProfile, target: &HwProfile) -> Calibration {
    let groups: Vec<Group> = source
        .groups
        .iter()
        .filter_map(|g| transfer_group(g, source_hw, target))
        .collect();
    let mut error_pct = source.error_pct.clone();
    for b in &mut error_pct.bars {
        for bar in [&mut b.measured, &mut b.interpolated, &mut b.extrapolated]
            .into_iter()
            .flatten()
        {
            *bar = widened(*bar, TRANSFER_ALLOWANCE_PCT);
        }
    }
    // The coverage was measured on the source's own points, not on transferred ones.
    error_pct.coverage = None;
    Calibration {
        profile: target.name.clone(),
        device: format!(
            "{} (transferred from {})",
            target.display_name, source.device
        ),
        groups,
        error_pct,
        interconnect: None,
        transferred_from: Some(TransferSource {
            profile: source.profile.clone(),
            device: source.device.clone(),
            bandwidth_ratio: target.memory_bandwidth_bytes_per_s.value
                / source_hw.memory_bandwidth_bytes_per_s.value,
            fp32_ratio: target.peak_flops.fp32.value / source_hw.peak_flops.fp32.value,
            bf16_ratio: target
                .peak_flops(DType::Bf16)
                .zip(source_hw.peak_flops(DType::Bf16))
                .map(|(t, s)| t / s),
            allowance_pct: TRANSFER_ALLOWANCE_PCT,
        }),
        ..source.clone()
    }
}

/// How far apart two GPUs are for a transfer: another vendor never; then another architecture
/// before the size of the datasheet ratios (log distance of fp32 peak, bandwidth, compute units).
fn distance(a: &HwProfile, b: &HwProfile) -> Option<f64> {
    if a.vendor != b.vendor {
        return None;
    }
    let log_ratio = |x: f64, y: f64| (x / y).ln().abs();
    let architecture = if a.architecture == b.architecture {
        0.0
    } else {
        100.0
    };
    Some(
        architecture
            + log_ratio(a.peak_flops.fp32.value, b.peak_flops.fp32.value)
            + log_ratio(
                a.memory_bandwidth_bytes_per_s.value,
                b.memory_bandwidth_bytes_per_s.value,
            )
            + log_ratio(
                f64::from(a.compute_units.value),
                f64::from(b.compute_units.value),
            ),
    )
}

/// The embedded calibration of the measured GPU nearest to `target` (same vendor), with that
/// GPU's profile; None where no GPU of its vendor was measured.
pub fn nearest_source(target: &HwProfile) -> Result<Option<(Calibration, HwProfile)>> {
    let mut best: Option<(f64, Calibration, HwProfile)> = None;
    for name in embedded_profiles() {
        let Some(cal) = embedded(name)? else { continue };
        let source_hw = hw::load(name)?;
        let Some(d) = distance(target, &source_hw) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _, _)| d < *b) {
            best = Some((d, cal, source_hw));
        }
    }
    Ok(best.map(|(_, cal, source_hw)| (cal, source_hw)))
}

/// The nearest measured GPU's calibration (`nearest_source`), transferred to `target`.
pub fn nearest(target: &HwProfile) -> Result<Option<Calibration>> {
    Ok(nearest_source(target)?.map(|(cal, source_hw)| transfer(&cal, &source_hw, target)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::calibrated::{
        CalibratedModel, GroupKey, Point, Stack, key_and_features, speed_of_light,
    };
    use crate::model::cost::{CostModel, Provenance};
    use crate::model::dtype::DType;
    use crate::model::ops::{Matmul, Op, OpClass};

    /// lavapipe with its peak, bandwidth and compute units scaled.
    fn scaled_lavapipe(peak: f64, bandwidth: f64, units: u32) -> HwProfile {
        let mut hw = hw::load("lavapipe").unwrap();
        hw.name = "lavapipe-scaled".into();
        hw.peak_flops.fp32.value *= peak;
        if let Some(f) = hw.peak_flops.fp16.as_mut() {
            f.value *= peak;
        }
        hw.memory_bandwidth_bytes_per_s.value *= bandwidth;
        hw.compute_units.value = units;
        hw
    }

    /// An fp32 matmul's time on `hw` at half the peak or 80% of the bandwidth, whichever limits
    /// it, after a fixed launch cost.
    fn law(op: &Op, hw: &HwProfile) -> f64 {
        3e-5 + (op.flops() / (0.5 * hw.peak_flops.fp32.value))
            .max(op.min_bytes() / (0.8 * hw.memory_bandwidth_bytes_per_s.value))
    }

    fn matmuls(shapes: &[(u64, u64, u64)]) -> Vec<Op> {
        shapes
            .iter()
            .map(|&(m, n, k)| Op::Matmul(Matmul::new(1, m, n, k, DType::Fp32)))
            .collect()
    }

    /// A group of `ops` timed on `hw` by `time`.
    fn group_of(ops: Vec<Op>, hw: &HwProfile, time: impl Fn(&Op, &HwProfile) -> f64) -> Group {
        let (key, _) = key_and_features(&ops[0]).unwrap();
        let points = ops
            .into_iter()
            .map(|op| Point {
                features: key_and_features(&op).unwrap().1,
                sol_s: speed_of_light(&op, hw).unwrap(),
                measured_s: time(&op, hw),
                noise: 0.01,
                op,
            })
            .collect();
        let mut g = Group {
            key: GroupKey {
                implementation: "wgpu:x".into(),
                ..key
            },
            vendor: false,
            tile: None,
            points,
            fit: TimeFit {
                launch_s: 0.0,
                flops_per_s: None,
                bytes_per_s: None,
            },
            regime_fits: Vec::new(),
        };
        g.refit(hw);
        g
    }

    fn measured_group(hw: &HwProfile) -> Group {
        let shapes = [
            (64, 64, 64),
            (128, 256, 64),
            (256, 256, 256),
            (512, 128, 512),
            (512, 512, 512),
            (1024, 512, 256),
            (64, 1024, 1024),
        ];
        group_of(matmuls(&shapes), hw, law)
    }

    /// A memory-bound op far below the bandwidth is limited by issuing loads and stores: on a
    /// target with half the compute units and the same bandwidth it takes twice as long; one
    /// near the bandwidth scales with the bandwidth.
    #[test]
    fn achieved_bandwidth_scales_with_what_limits_it() {
        use crate::model::ops::{MemoryKind, MemoryOp, Pass};
        let ops = || -> Vec<Op> {
            [
                (64, 1024),
                (256, 1024),
                (1024, 1024),
                (1024, 4096),
                (4096, 4096),
            ]
            .iter()
            .map(|&(r, c)| {
                let m = MemoryOp::new(MemoryKind::ResidualAdd, Pass::Forward, r, c, DType::Fp32);
                Op::Memory(m)
            })
            .collect()
        };
        let at = |share: f64| {
            move |op: &Op, hw: &HwProfile| {
                2e-5 + op.min_bytes() / (share * hw.memory_bandwidth_bytes_per_s.value)
            }
        };
        let source = hw::load("lavapipe").unwrap();
        let half_units = scaled_lavapipe(0.5, 1.0, 1);
        let more_bandwidth = scaled_lavapipe(1.0, 1.5, 2);
        let op = ops()[2];
        let (_, f) = key_and_features(&op).unwrap();
        let predict = |g: &Group, target: &HwProfile| {
            let carried = transfer_group(g, &source, target).unwrap();
            carried.predict_seconds(&op, &f, target).unwrap().0
        };
        // Issue-limited at 10% of the bandwidth: twice the busy time on half the units.
        let slow = group_of(ops(), &source, at(0.1));
        let busy = op.min_bytes() / (0.1 * source.memory_bandwidth_bytes_per_s.value);
        let t = predict(&slow, &half_units);
        assert!((t / (2e-5 + 2.0 * busy) - 1.0).abs() < 1e-3, "{t}");
        // Memory-limited at 80%: 1.5 times the bandwidth, two thirds of the busy time.
        let fast = group_of(ops(), &source, at(0.8));
        let busy = op.min_bytes() / (0.8 * source.memory_bandwidth_bytes_per_s.value);
        let t = predict(&fast, &more_bandwidth);
        assert!((t / (2e-5 + busy / 1.5) - 1.0).abs() < 1e-3, "{t}");
    }

    /// A utilization that holds on the source holds on the target: the transferred group predicts
    /// the target's law, between its points and at them.
    #[test]
    fn the_rescaled_law_predicts_the_target() {
        let source = hw::load("lavapipe").unwrap();
        let target = scaled_lavapipe(3.0, 1.5, 6);
        let g = transfer_group(&measured_group(&source), &source, &target).unwrap();
        for (m, n, k) in [(96, 96, 96), (300, 200, 400), (512, 512, 512)] {
            let op = Op::Matmul(Matmul::new(1, m, n, k, DType::Fp32));
            let (_, f) = key_and_features(&op).unwrap();
            let (s, _) = g.predict_seconds(&op, &f, &target).unwrap();
            let truth = law(&op, &target);
            assert!(
                (s / truth - 1.0).abs() < 1e-3,
                "{m}x{n}x{k}: {s} vs {truth}"
            );
        }
    }

    /// The embedded H100 calibration carried to an A100: answers labelled `transferred`, with a
    /// bar wider than the same answer on the H100; fp8 (no A100 peak) is not carried.
    #[test]
    fn transferred_answers_are_labelled_and_wider() {
        let h100 = hw::load("h100-sxm").unwrap();
        let a100 = hw::load("a100-sxm-80gb").unwrap();
        let own = embedded("h100-sxm").unwrap().unwrap();
        let carried = nearest(&a100).unwrap().unwrap();
        assert_eq!(
            carried
                .transferred_from
                .as_ref()
                .map(|t| t.profile.as_str()),
            Some("h100-sxm")
        );
        assert!(carried.groups.iter().all(|g| g.key.dtype != DType::Fp8E4m3));
        assert!(own.groups.iter().any(|g| g.key.dtype == DType::Fp8E4m3));
        // A shape the H100's cuBLAS group measured.
        let g = own
            .groups
            .iter()
            .find(|g| g.vendor && g.key.dtype == DType::Bf16 && g.key.class == OpClass::Matmul)
            .unwrap();
        let op = g.points[0].op;
        let on_h100 = CalibratedModel::new(own.clone(), Stack::Production)
            .predict(&op, &h100)
            .unwrap();
        let on_a100 = CalibratedModel::new(carried, Stack::Production)
            .predict(&op, &a100)
            .unwrap();
        assert_eq!(on_h100.provenance, Provenance::Measured);
        assert_eq!(on_a100.provenance, Provenance::Transferred);
        let (b_h100, b_a100) = (on_h100.error_pct.unwrap(), on_a100.error_pct.unwrap());
        assert!(
            b_a100 > b_h100 && b_a100.is_finite(),
            "{b_a100} vs {b_h100}"
        );
        // The A100 is slower than the H100 on it, by at most the peak ratio's inverse.
        assert!(on_a100.seconds > on_h100.seconds);
    }

    #[test]
    fn the_nearest_measured_gpu_of_the_vendor_is_the_source() {
        let mut cpu = scaled_lavapipe(0.5, 1.0, 1);
        cpu.name = "lavapipe-1-thread".into();
        let carried = nearest(&cpu).unwrap().unwrap();
        assert_eq!(carried.transferred_from.unwrap().profile, "lavapipe");
        let mut other = hw::load("a100-sxm-80gb").unwrap();
        other.vendor = "nobody".into();
        assert!(nearest(&other).unwrap().is_none());
    }
}
