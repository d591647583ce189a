//! The calibrated cost model: speed-of-light time ÷ a utilization measured on the device.
//!
//! A `Calibration` holds, per op group (class × dtype × attention kind), the measured points:
//! each shape's speed-of-light time (datasheet peak and bandwidth, no efficiency, no launch cost)
//! and its measured time. A prediction looks the shape up: an exact match is `Measured`; inside
//! the measured grid the utilization is interpolated in log-shape space between the nearest
//! neighbours (`Interpolated`); outside it a saturating curve fitted to the group gives it
//! (`Extrapolated`); an op with no group falls back to the roofline (`Roofline`). Each carries the
//! error bar its provenance class earned in leave-one-out validation.

use super::{Bound, CostModel, Prediction, Provenance, Roofline};
use crate::dtype::DType;
use crate::error::Result;
use crate::hw::HwProfile;
use crate::ops::{Op, OpClass};
use serde::{Deserialize, Serialize};

/// Version of the calibration file format.
pub const CALIBRATION_SCHEMA_VERSION: u32 = 1;

/// Which measured points can stand for an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupKey {
    pub class: OpClass,
    pub dtype: DType,
    /// Attention: head dim and kind ("d128 causal", "d64 full", "d128 decode"); empty otherwise.
    pub kind: String,
}

/// One measured shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The measured op and shape.
    pub op: Op,
    /// log2 of the shape's dimensions (see `features`).
    pub features: Vec<f64>,
    pub sol_s: f64,
    pub measured_s: f64,
    /// Half the p10–p90 spread relative to the median: the run-to-run noise of this point.
    pub noise: f64,
    /// Which implementation was measured (backend:variant).
    pub implementation: String,
}

impl Point {
    pub fn utilization(&self) -> f64 {
        self.sol_s / self.measured_s
    }
}

/// utilization(sol) = u_max · sol / (sol + half_s): small problems cannot fill the device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaturationFit {
    pub u_max: f64,
    pub half_s: f64,
}

impl SaturationFit {
    pub fn utilization(&self, sol_s: f64) -> f64 {
        self.u_max * sol_s / (sol_s + self.half_s)
    }

    /// Least squares in log space over a grid of half-saturation times.
    pub fn fit(points: &[Point]) -> Option<SaturationFit> {
        if points.is_empty() {
            return None;
        }
        let lo = points.iter().map(|p| p.sol_s).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.sol_s).fold(0.0, f64::max);
        let mut best: Option<(f64, SaturationFit)> = None;
        for i in 0..=80 {
            let half_s = lo / 100.0 * (hi * 100.0 / (lo / 100.0)).powf(f64::from(i) / 80.0);
            let logs: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.utilization().ln(), (p.sol_s / (p.sol_s + half_s)).ln()))
                .collect();
            let ln_u = logs.iter().map(|(u, g)| u - g).sum::<f64>() / logs.len() as f64;
            let err: f64 = logs.iter().map(|(u, g)| (u - g - ln_u).powi(2)).sum();
            let fit = SaturationFit {
                u_max: ln_u.exp(),
                half_s,
            };
            if best.is_none_or(|(e, _)| err < e) {
                best = Some((err, fit));
            }
        }
        best.map(|(_, f)| f)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub key: GroupKey,
    pub points: Vec<Point>,
    pub fit: SaturationFit,
}

/// ± relative error in percent per provenance class (p90 of the validation residuals; for
/// measured shapes, the p90 of the points' run-to-run noise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBars {
    pub measured: Option<f64>,
    pub interpolated: Option<f64>,
    pub extrapolated: Option<f64>,
}

/// A device's calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub schema_version: u32,
    /// The hardware profile whose peaks define speed of light.
    pub profile: String,
    pub device: String,
    pub driver: String,
    /// "best" (the fastest correct implementation per shape) or one backend:variant.
    pub implementation: String,
    pub sources: Vec<String>,
    pub git_revisions: Vec<String>,
    pub groups: Vec<Group>,
    pub error_pct: ErrorBars,
}

/// Calibrations built into the binary, by profile name (`gpucost calibrate` writes them into
/// hw_profiles/; rebuild to embed a new one). The H100's is not embedded yet: from the partial
/// sweeps it has, its held-out p90 error is worse than the roofline's (see the README).
const EMBEDDED: &[(&str, &str)] = &[(
    "lavapipe",
    include_str!("../../hw_profiles/lavapipe.calibration.json"),
)];

/// The embedded calibration for a profile, if there is one.
pub fn embedded(profile: &str) -> Result<Option<Calibration>> {
    EMBEDDED
        .iter()
        .find(|(name, _)| *name == profile)
        .map(|(name, text)| {
            crate::error::parse_json(&format!("hw_profiles/{name}.calibration.json"), text)
        })
        .transpose()
}

/// Group key and features of an op, where the op kind is calibrated at all.
pub fn key_and_features(op: &Op) -> Option<(GroupKey, Vec<f64>)> {
    let l = |x: u64| (x.max(1) as f64).log2();
    match op {
        Op::Matmul(m) => Some((
            GroupKey {
                class: OpClass::Matmul,
                dtype: m.input,
                kind: String::new(),
            },
            vec![l(m.batch * m.m), l(m.n), l(m.k)],
        )),
        Op::Attention(a) => {
            let kind = if a.q_len == 1 {
                "decode"
            } else if a.causal {
                "causal"
            } else {
                "full"
            };
            Some((
                GroupKey {
                    class: OpClass::Attention,
                    dtype: a.dtype,
                    kind: format!("d{} {kind}", a.qk_head_dim),
                },
                vec![
                    l(a.batch * a.q_heads),
                    l(a.q_len),
                    l(a.kv_len),
                    l(a.q_heads / a.kv_heads.max(1)),
                ],
            ))
        }
        _ => None,
    }
}

/// Time at the datasheet peak rate and bandwidth: no efficiency, no launch cost.
pub fn speed_of_light(op: &Op, hw: &HwProfile) -> Result<f64> {
    let peak = match op {
        Op::Memory(_) | Op::Collective(_) => hw.peak_flops.fp32.value,
        _ => hw.require_peak_flops(op.dtype())?,
    };
    Ok((op.flops() / peak).max(op.min_bytes() / hw.memory_bandwidth_bytes_per_s.value))
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The utilization a group predicts for `features` at speed-of-light time `sol_s`, and how.
pub fn group_utilization(group: &Group, features: &[f64], sol_s: f64) -> (f64, Provenance) {
    let mut near: Vec<(f64, &Point)> = group
        .points
        .iter()
        .map(|p| (distance(&p.features, features), p))
        .collect();
    near.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((d, p)) = near.first()
        && *d < 1e-9
    {
        return (p.utilization(), Provenance::Measured);
    }
    let inside = (0..features.len()).all(|i| {
        let lo = group
            .points
            .iter()
            .map(|p| p.features[i])
            .fold(f64::INFINITY, f64::min);
        let hi = group
            .points
            .iter()
            .map(|p| p.features[i])
            .fold(f64::NEG_INFINITY, f64::max);
        features[i] >= lo && features[i] <= hi
    });
    if inside && near.len() >= 2 {
        // Inverse-distance weights over the four nearest, on log utilization.
        let (mut num, mut den) = (0.0, 0.0);
        for (d, p) in near.iter().take(4) {
            let w = 1.0 / (d * d);
            num += w * p.utilization().ln();
            den += w;
        }
        return ((num / den).exp(), Provenance::Interpolated);
    }
    // Outside the grid: the nearest measured point's utilization, moved along the fitted curve
    // by at most a factor of two (a curve fitted to few points is not trusted further).
    let (_, nearest) = near[0];
    let ratio = group.fit.utilization(sol_s) / group.fit.utilization(nearest.sol_s);
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.5, 2.0)
    } else {
        1.0
    };
    (nearest.utilization() * ratio, Provenance::Extrapolated)
}

/// The calibrated model; ops it has no group for are priced by the roofline.
#[derive(Debug, Clone)]
pub struct CalibratedModel {
    pub calibration: Calibration,
}

impl CostModel for CalibratedModel {
    fn describe(&self, hw: &HwProfile) -> String {
        let c = &self.calibration;
        format!(
            "calibrated on {} ({}, {} groups, implementation {}); roofline for the rest: {}",
            c.device,
            c.driver,
            c.groups.len(),
            c.implementation,
            Roofline.describe(hw)
        )
    }

    fn predict(&self, op: &Op, hw: &HwProfile) -> Result<Prediction> {
        let Some((key, features)) = key_and_features(op) else {
            return Roofline.predict(op, hw);
        };
        let Some(group) = self.calibration.groups.iter().find(|g| g.key == key) else {
            return Roofline.predict(op, hw);
        };
        let sol = speed_of_light(op, hw)?;
        let (util, provenance) = group_utilization(group, &features, sol);
        let seconds = sol / util.max(1e-9);
        let peak = hw.require_peak_flops(op.dtype())?;
        let compute_s = op.flops() / peak;
        let memory_s = op.min_bytes() / hw.memory_bandwidth_bytes_per_s.value;
        let e = &self.calibration.error_pct;
        Ok(Prediction {
            seconds,
            bound: if compute_s >= memory_s {
                Bound::Compute
            } else {
                Bound::Memory
            },
            provenance,
            flops: op.flops(),
            bytes: op.min_bytes(),
            compute_s,
            memory_s,
            latency_s: 0.0,
            error_pct: match provenance {
                Provenance::Measured => e.measured,
                Provenance::Interpolated => e.interpolated,
                Provenance::Extrapolated => e.extrapolated,
                Provenance::Roofline => None,
            },
            detail: format!("utilization {:.3} of speed of light", util),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(sol_s: f64, util: f64, features: Vec<f64>) -> Point {
        Point {
            op: Op::Matmul(crate::ops::Matmul::new(1, 1, 1, 1, DType::Bf16)),
            features,
            sol_s,
            measured_s: sol_s / util,
            noise: 0.01,
            implementation: "x".into(),
        }
    }

    #[test]
    fn embedded_calibrations_parse_and_match_their_profiles() {
        for (name, _) in EMBEDDED {
            let cal = embedded(name).unwrap().unwrap();
            assert_eq!(&cal.profile, name);
            assert!(!cal.groups.is_empty());
            crate::hw::load(name).unwrap();
        }
        assert!(embedded("a100-sxm-80gb").unwrap().is_none());
    }

    #[test]
    fn saturation_fit_recovers_its_curve() {
        let truth = SaturationFit {
            u_max: 0.8,
            half_s: 1e-5,
        };
        let points: Vec<Point> = [1e-6, 1e-5, 1e-4, 1e-3]
            .iter()
            .map(|&s| point(s, truth.utilization(s), vec![]))
            .collect();
        let fit = SaturationFit::fit(&points).unwrap();
        for p in &points {
            let rel = fit.utilization(p.sol_s) / p.utilization() - 1.0;
            assert!(rel.abs() < 0.05, "{rel}");
        }
    }

    #[test]
    fn exact_inside_and_outside_the_grid() {
        let points = vec![
            point(1.0, 0.5, vec![0.0, 0.0]),
            point(1.0, 0.7, vec![2.0, 0.0]),
            point(1.0, 0.6, vec![0.0, 2.0]),
            point(1.0, 0.8, vec![2.0, 2.0]),
        ];
        let group = Group {
            key: GroupKey {
                class: OpClass::Matmul,
                dtype: DType::Bf16,
                kind: String::new(),
            },
            fit: SaturationFit::fit(&points).unwrap(),
            points,
        };
        let (u, p) = group_utilization(&group, &[2.0, 0.0], 1.0);
        assert_eq!((u, p), (0.7, Provenance::Measured));
        let (u, p) = group_utilization(&group, &[1.0, 1.0], 1.0);
        assert_eq!(p, Provenance::Interpolated);
        assert!(u > 0.5 && u < 0.8);
        let (_, p) = group_utilization(&group, &[5.0, 1.0], 1.0);
        assert_eq!(p, Provenance::Extrapolated);
    }
}
