//! The calibrated cost model: each implementation's time, fitted to its measurements.
//!
//! A `Calibration` holds, per group (op class × dtype × attention kind × implementation), the
//! measured points and a parametric time model fitted to them:
//! `t = launch_s + quantized FLOPs ÷ flops_per_s + bytes ÷ bytes_per_s`, where the FLOPs are
//! padded to the implementation's tile and rounded up to whole waves over the device's compute
//! units (tile and wave quantization). Its utilization (speed of light ÷ t) saturates with problem
//! size: the launch cost dominates small problems, the fitted rates large ones.
//!
//! A prediction looks the shape up: an exact match is `Measured`; inside the measured grid the
//! fit is corrected by the log residuals of the nearest measured neighbours in log-shape space
//! (`Interpolated`); outside it by the nearest one's residual (`Extrapolated`); an op with no
//! group falls back to the roofline (`Roofline`). With several implementations of an op (the
//! "best" calibration) the fastest prediction wins, as a framework would pick the fastest kernel.
//! Each prediction carries the error bar its provenance class earned in leave-one-out validation.

use super::{Bound, CostModel, OpPrice, Prediction, Provenance, Roofline};
use crate::error::{Error, Result};
use crate::model::dtype::DType;
use crate::model::hw::HwProfile;
use crate::model::ops::{Op, OpClass};
use serde::{Deserialize, Serialize};
use std::f64::consts::LN_2;

/// Version of the calibration file format (see `schema::CALIBRATION`).
pub const CALIBRATION_SCHEMA_VERSION: u32 = crate::model::schema::CALIBRATION;

/// Which measured points can stand for an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupKey {
    pub class: OpClass,
    pub dtype: DType,
    /// Attention: head dim and kind ("d128 causal", "d64 full", "d128 decode"); empty otherwise.
    pub kind: String,
    /// backend:variant, e.g. "cuda:cublas".
    pub implementation: String,
}

impl GroupKey {
    /// Same op class, dtype and kind: implementations that compete for the same op.
    pub fn same_op_kind(&self, other: &GroupKey) -> bool {
        self.class == other.class && self.dtype == other.dtype && self.kind == other.kind
    }

    /// "matmul bf16", "attention fp16 d64 causal".
    pub fn op_kind(&self) -> String {
        let class = match self.class {
            OpClass::Matmul => "matmul",
            OpClass::Attention => "attention",
            OpClass::Memory => "memory",
            OpClass::Collective => "collective",
        };
        format!("{class} {} {}", self.dtype, self.kind)
            .trim()
            .to_string()
    }
}

/// One measured shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The measured op and shape.
    pub op: Op,
    /// log2 of the shape's dimensions (see `key_and_features`).
    pub features: Vec<f64>,
    /// Speed-of-light time: datasheet peak and bandwidth, no efficiency, no launch cost.
    pub sol_s: f64,
    pub measured_s: f64,
    /// Half the p10–p90 spread relative to the median: the run-to-run noise of this point.
    pub noise: f64,
}

impl Point {
    /// Measured utilization: speed-of-light time ÷ measured time.
    pub fn utilization(&self) -> f64 {
        self.sol_s / self.measured_s
    }
}

/// `t = launch_s + work_flops ÷ flops_per_s + bytes ÷ bytes_per_s`; a term the data does not
/// support (its fitted coefficient would be negative) is left out (None).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeFit {
    pub launch_s: f64,
    /// Achieved rate on tile- and wave-quantized FLOPs.
    pub flops_per_s: Option<f64>,
    /// Achieved bandwidth on the op's minimum bytes.
    pub bytes_per_s: Option<f64>,
}

/// What a time model is a function of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    pub flops: f64,
    pub bytes: f64,
}

impl TimeFit {
    pub fn seconds(&self, w: Work) -> f64 {
        self.launch_s
            + self.flops_per_s.map_or(0.0, |r| w.flops / r)
            + self.bytes_per_s.map_or(0.0, |r| w.bytes / r)
    }

    /// Non-negative least squares on relative error, Σ ((model − t) ÷ t)², trying every subset of
    /// the three terms and keeping the best one whose coefficients are all positive.
    pub fn fit(data: &[(Work, f64)]) -> Option<TimeFit> {
        let cols = |w: &Work| [1.0, w.flops, w.bytes];
        // Scale each column to at most 1 so the normal equations are well conditioned.
        let mut scale = [0.0f64; 3];
        for (w, t) in data {
            for (s, c) in scale.iter_mut().zip(cols(w)) {
                *s = s.max(c / t);
            }
        }
        let mut best: Option<(f64, [f64; 3])> = None;
        // Simplest physical models first, so that an exact fit to one or two points (a tie) is a
        // rate rather than a constant: flops, bytes, both, then with a launch cost, then launch.
        for mask in [0b010u8, 0b100, 0b110, 0b011, 0b101, 0b111, 0b001] {
            let used: Vec<usize> = (0..3)
                .filter(|i| mask & (1 << i) != 0 && scale[*i] > 0.0)
                .collect();
            if used.len() != mask.count_ones() as usize {
                continue;
            }
            let rows: Vec<Vec<f64>> = data
                .iter()
                .map(|(w, t)| {
                    let c = cols(w);
                    used.iter().map(|&i| c[i] / t / scale[i]).collect()
                })
                .collect();
            let Some(x) = least_squares(&rows) else {
                continue;
            };
            if x.iter().any(|v| !v.is_finite() || *v <= 0.0) {
                continue;
            }
            let mut coef = [0.0; 3];
            for (j, &i) in used.iter().enumerate() {
                coef[i] = x[j] / scale[i];
            }
            let err: f64 = data
                .iter()
                .map(|(w, t)| {
                    let c = cols(w);
                    ((c[0] * coef[0] + c[1] * coef[1] + c[2] * coef[2]) / t - 1.0).powi(2)
                })
                .sum();
            if best.is_none_or(|(e, _)| err < e * (1.0 - 1e-9) - 1e-12) {
                best = Some((err, coef));
            }
        }
        best.map(|(_, c)| TimeFit {
            launch_s: c[0],
            flops_per_s: (c[1] > 0.0).then(|| 1.0 / c[1]),
            bytes_per_s: (c[2] > 0.0).then(|| 1.0 / c[2]),
        })
    }
}

/// Least-squares solution of rows · x ≈ 1 (normal equations, Gaussian elimination with
/// partial pivoting); None when singular.
fn least_squares(rows: &[Vec<f64>]) -> Option<Vec<f64>> {
    let n = rows.first()?.len();
    let mut a = vec![vec![0.0; n + 1]; n];
    for r in rows {
        for i in 0..n {
            for j in 0..n {
                a[i][j] += r[i] * r[j];
            }
            a[i][n] += r[i];
        }
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        for row in 0..n {
            if row != col {
                let f = a[row][col] / a[col][col];
                let pivot_row = a[col].clone();
                for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..n).map(|i| a[i][n] / a[i][i]).collect())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub key: GroupKey,
    /// The implementation's output tile (rows × columns; attention: query rows × 1), if known.
    pub tile: Option<(u32, u32)>,
    pub points: Vec<Point>,
    pub fit: TimeFit,
}

/// ± relative error in percent per provenance class (p90 of the validation residuals; for
/// measured shapes, the p90 of the points' run-to-run noise): over all ops, and per op kind
/// where that kind has enough residuals of the class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBars {
    pub measured: Option<f64>,
    pub interpolated: Option<f64>,
    pub extrapolated: Option<f64>,
    /// Per op kind ("matmul bf16", "attention fp16 d128 decode"): the same three, each present
    /// only where the kind had at least `MIN_RESIDUALS_PER_BAR` residuals (or points) of it.
    #[serde(default)]
    pub by_kind: Vec<KindErrorBars>,
}

/// Error bars of one op kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindErrorBars {
    pub kind: String,
    pub measured: Option<f64>,
    pub interpolated: Option<f64>,
    pub extrapolated: Option<f64>,
}

/// Residuals an op kind needs before its own p90 replaces the all-ops one.
pub const MIN_RESIDUALS_PER_BAR: usize = 5;

impl ErrorBars {
    /// The error bar of a prediction of this provenance for an op of `kind` (see
    /// `GroupKey::op_kind`): the kind's own where it has one, else the all-ops one; none for the
    /// roofline.
    pub fn for_provenance(&self, kind: &str, p: Provenance) -> Option<f64> {
        let own = self.by_kind.iter().find(|k| k.kind == kind);
        let pick =
            |all: Option<f64>, per: fn(&KindErrorBars) -> Option<f64>| own.and_then(per).or(all);
        match p {
            Provenance::Measured => pick(self.measured, |k| k.measured),
            Provenance::Interpolated => pick(self.interpolated, |k| k.interpolated),
            Provenance::Extrapolated => pick(self.extrapolated, |k| k.extrapolated),
            Provenance::Roofline => None,
        }
    }
}

/// A device's calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub schema_version: u32,
    /// The hardware profile whose peaks define speed of light.
    pub profile: String,
    pub device: String,
    pub driver: String,
    /// "best" (every correct implementation; predictions take the fastest) or one backend:variant.
    pub implementation: String,
    pub sources: Vec<String>,
    pub git_revisions: Vec<String>,
    pub groups: Vec<Group>,
    pub error_pct: ErrorBars,
}

impl Calibration {
    /// Reads a calibration file's text; a file of another schema version is an error.
    pub fn parse(file: &str, text: &str) -> Result<Calibration> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: Option<u32>,
        }
        let v: Version = crate::error::parse_json(file, text)?;
        if v.schema_version != Some(CALIBRATION_SCHEMA_VERSION) {
            return Err(Error::field(
                file,
                "schema_version",
                format!(
                    "is {}, this gpucost reads {CALIBRATION_SCHEMA_VERSION}: run gpucost calibrate again",
                    v.schema_version
                        .map_or_else(|| "missing".to_string(), |x| x.to_string())
                ),
            ));
        }
        crate::error::parse_json(file, text)
    }
}

/// Calibrations built into the binary, by profile name (`gpucost calibrate` writes them into
/// hw_profiles/; rebuild to embed a new one). The H100's comes from partial sweeps: it beats the
/// roofline held out, with wide error bars where it extrapolates (see the README).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "lavapipe",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/lavapipe.calibration.json"
        )),
    ),
    (
        "h100-sxm",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/h100-sxm.calibration.json"
        )),
    ),
];

/// The embedded calibration for a profile, if there is one.
pub fn embedded(profile: &str) -> Result<Option<Calibration>> {
    EMBEDDED
        .iter()
        .find(|(name, _)| *name == profile)
        .map(|(name, text)| {
            Calibration::parse(&format!("hw_profiles/{name}.calibration.json"), text)
        })
        .transpose()
}

/// Group key (implementation left empty) and features of an op, where the op kind is
/// calibrated at all.
pub fn key_and_features(op: &Op) -> Option<(GroupKey, Vec<f64>)> {
    let l = |x: u64| (x.max(1) as f64).log2();
    match op {
        Op::Matmul(m) => Some((
            GroupKey {
                class: OpClass::Matmul,
                dtype: m.input,
                kind: String::new(),
                implementation: String::new(),
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
                    implementation: String::new(),
                },
                vec![
                    l(a.batch * a.q_heads),
                    l(a.q_len),
                    l(a.kv_len),
                    l(a.q_heads / a.kv_heads.max(1)),
                ],
            ))
        }
        Op::Memory(m) if m.pass == crate::model::ops::Pass::Forward => Some((
            GroupKey {
                class: OpClass::Memory,
                dtype: m.dtype,
                kind: m.kind.name().to_string(),
                implementation: String::new(),
            },
            vec![l(m.rows), l(m.cols)],
        )),
        _ => None,
    }
}

/// Time at the datasheet peak rate and bandwidth: no efficiency, no launch cost.
pub fn speed_of_light(op: &Op, hw: &HwProfile) -> Result<f64> {
    Ok((op.flops() / peak_rate(op, hw)?)
        .max(op.min_bytes() / hw.memory_bandwidth_bytes_per_s.value))
}

/// The arithmetic peak an op runs against: its dtype's for matmul and attention, fp32 for the
/// memory-bound ops (they compute in fp32 on the vector units).
fn peak_rate(op: &Op, hw: &HwProfile) -> Result<f64> {
    match op {
        Op::Memory(_) | Op::Collective(_) => Ok(hw.peak_flops.fp32.value),
        _ => hw.require_peak_flops(op.dtype()),
    }
}

/// The FLOPs an implementation with output tile `tile` really spends: every tile it launches is
/// full (tile quantization), and tiles run in whole waves of one per compute unit (wave
/// quantization). Unknown tile: the op's own FLOPs.
pub fn quantized_flops(op: &Op, tile: Option<(u32, u32)>, compute_units: u64) -> f64 {
    let units = compute_units.max(1);
    let waves_of = |tiles: u64| tiles.div_ceil(units) * units;
    match (op, tile) {
        (Op::Matmul(m), Some((tm, tn))) => {
            let (tm, tn) = (u64::from(tm.max(1)), u64::from(tn.max(1)));
            let tiles = m.batch * m.m.div_ceil(tm) * m.n.div_ceil(tn);
            2.0 * waves_of(tiles) as f64 * (tm * tn) as f64 * m.k as f64
        }
        (Op::Attention(a), Some((tq, _))) if a.q_len > 0 => {
            let tq = u64::from(tq.max(1));
            let tiles = a.batch * a.q_heads * a.q_len.div_ceil(tq);
            let per_row = op.flops() / (a.batch * a.q_heads * a.q_len) as f64;
            per_row * waves_of(tiles) as f64 * tq as f64
        }
        _ => op.flops(),
    }
}

impl Group {
    pub fn work(&self, op: &Op, hw: &HwProfile) -> Work {
        Work {
            flops: quantized_flops(op, self.tile, u64::from(hw.compute_units.value)),
            bytes: op.min_bytes(),
        }
    }

    /// Refits the time model to the group's points (kept as is when they cannot be fitted).
    pub fn refit(&mut self, hw: &HwProfile) {
        let data: Vec<(Work, f64)> = self
            .points
            .iter()
            .map(|p| (self.work(&p.op, hw), p.measured_s))
            .collect();
        if let Some(f) = TimeFit::fit(&data) {
            self.fit = f;
        }
    }

    /// log(measured ÷ fitted) of a point: what the time model misses there.
    fn residual(&self, p: &Point, hw: &HwProfile) -> f64 {
        (p.measured_s / self.fit.seconds(self.work(&p.op, hw))).ln()
    }

    /// This implementation's predicted time for `op` (with `features`), and how it was obtained.
    /// None for a group without points.
    pub fn predict_seconds(
        &self,
        op: &Op,
        features: &[f64],
        hw: &HwProfile,
    ) -> Option<(f64, Provenance)> {
        let mut near: Vec<(f64, &Point)> = self
            .points
            .iter()
            .map(|p| (distance(&p.features, features), p))
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (d0, nearest) = *near.first()?;
        if d0 < 1e-9 {
            return Some((nearest.measured_s, Provenance::Measured));
        }
        // A time model fitted to one or two shapes is not a model: such a group answers only
        // for what it measured.
        if self.points.len() < MIN_POINTS_TO_PREDICT {
            return None;
        }
        let base = self.fit.seconds(self.work(op, hw));
        let inside = (0..features.len()).all(|i| {
            let (lo, hi) = self
                .points
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
                    (l.min(p.features[i]), h.max(p.features[i]))
                });
            features[i] >= lo && features[i] <= hi
        });
        if inside && near.len() >= 2 {
            // Inverse-distance weights over the four nearest, on the log residuals.
            let (mut num, mut den) = (0.0, 0.0);
            for (d, p) in near.iter().take(4) {
                let w = 1.0 / (d * d);
                num += w * self.residual(p, hw);
                den += w;
            }
            return Some((base * (num / den).exp(), Provenance::Interpolated));
        }
        // Outside the grid: the nearest point's residual, at most a factor of two either way
        // (a correction measured far away is not trusted further). Two physical limits: never
        // faster than speed of light, and a problem larger than every measured one runs at no
        // lower utilization than the largest measured one (devices fill up as work grows).
        let r = self.residual(nearest, hw).clamp(-LN_2, LN_2);
        let sol = speed_of_light(op, hw).ok()?;
        let mut seconds = base * r.exp();
        let by_size = |a: &&Point, b: &&Point| a.sol_s.total_cmp(&b.sol_s);
        if let Some(largest) = self.points.iter().max_by(by_size)
            && sol > largest.sol_s
        {
            // Larger than every measured problem: no lower utilization than the largest, and
            // no less time.
            seconds = seconds
                .min(sol / largest.utilization())
                .max(largest.measured_s);
        }
        if let Some(smallest) = self.points.iter().min_by(by_size)
            && sol < smallest.sol_s
        {
            // Smaller than every measured problem: no more time than the smallest took.
            seconds = seconds.min(smallest.measured_s);
        }
        Some((seconds.max(sol), Provenance::Extrapolated))
    }
}

/// Shapes a group needs before it predicts shapes it did not measure.
pub const MIN_POINTS_TO_PREDICT: usize = 3;

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// How much a provenance is trusted when implementations compete (lower is better).
fn trust_rank(p: Provenance) -> u8 {
    match p {
        Provenance::Measured => 0,
        Provenance::Interpolated => 1,
        Provenance::Extrapolated => 2,
        Provenance::Roofline => 3,
    }
}

/// The fastest prediction over `groups` that compete for `op` (same class, dtype and kind):
/// seconds, provenance, and the implementation. Only the best-supported predictions compete —
/// measured before interpolated before extrapolated — so that an implementation measured far
/// from this shape cannot win on an extrapolation.
pub fn predict_fastest<'a>(
    groups: impl IntoIterator<Item = &'a Group>,
    op: &Op,
    hw: &HwProfile,
) -> Option<(f64, Provenance, &'a str)> {
    let (key, features) = key_and_features(op)?;
    groups
        .into_iter()
        .filter(|g| g.key.same_op_kind(&key))
        .filter_map(|g| {
            g.predict_seconds(op, &features, hw)
                .map(|(s, p)| (s, p, g.key.implementation.as_str()))
        })
        .min_by(|a, b| {
            trust_rank(a.1)
                .cmp(&trust_rank(b.1))
                .then(a.0.total_cmp(&b.0))
        })
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
        match predict_fastest(&self.calibration.groups, op, hw) {
            Some(found) => self.prediction(op, hw, found, true),
            None => Roofline.predict(op, hw),
        }
    }

    fn price(&self, op: &Op, hw: &HwProfile) -> Result<OpPrice> {
        match predict_fastest(&self.calibration.groups, op, hw) {
            Some(found) => self.prediction(op, hw, found, false).map(|p| p.price()),
            None => Roofline.price(op, hw),
        }
    }
}

impl CalibratedModel {
    /// The prediction for one implementation ("backend:variant"), where a group of it answers
    /// for `op`; `predict` takes the fastest implementation instead.
    pub fn predict_implementation(
        &self,
        op: &Op,
        hw: &HwProfile,
        implementation: &str,
    ) -> Result<Option<Prediction>> {
        let own = self
            .calibration
            .groups
            .iter()
            .filter(|g| g.key.implementation == implementation);
        predict_fastest(own, op, hw)
            .map(|found| self.prediction(op, hw, found, true))
            .transpose()
    }

    /// A `Prediction` from a group's answer: seconds, provenance and implementation.
    fn prediction(
        &self,
        op: &Op,
        hw: &HwProfile,
        (seconds, provenance, implementation): (f64, Provenance, &str),
        detailed: bool,
    ) -> Result<Prediction> {
        let sol = speed_of_light(op, hw)?;
        let compute_s = op.flops() / peak_rate(op, hw)?;
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
            error_pct: key_and_features(op)
                .and_then(|(k, _)| e.for_provenance(&k.op_kind(), provenance)),
            detail: if detailed {
                format!(
                    "{implementation}, utilization {:.3} of speed of light",
                    sol / seconds
                )
            } else {
                String::new()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::Matmul;

    fn lavapipe() -> HwProfile {
        crate::model::hw::load("lavapipe").unwrap()
    }

    /// A group of square fp32 matmuls timed by `time(op)`.
    fn group(implementation: &str, sizes: &[u64], time: impl Fn(&Op) -> f64) -> Group {
        let hw = lavapipe();
        let points = sizes
            .iter()
            .map(|&n| {
                let op = Op::Matmul(Matmul::new(1, n, n, n, DType::Fp32));
                let (_, features) = key_and_features(&op).unwrap();
                Point {
                    sol_s: speed_of_light(&op, &hw).unwrap(),
                    measured_s: time(&op),
                    features,
                    noise: 0.01,
                    op,
                }
            })
            .collect();
        let mut g = Group {
            key: GroupKey {
                class: OpClass::Matmul,
                dtype: DType::Fp32,
                kind: String::new(),
                implementation: implementation.into(),
            },
            tile: None,
            points,
            fit: TimeFit {
                launch_s: 0.0,
                flops_per_s: None,
                bytes_per_s: None,
            },
        };
        g.refit(&hw);
        g
    }

    #[test]
    fn embedded_calibrations_parse_and_match_their_profiles() {
        for (name, _) in EMBEDDED {
            let cal = embedded(name).unwrap().unwrap();
            assert_eq!(&cal.profile, name);
            assert!(!cal.groups.is_empty());
            crate::model::hw::load(name).unwrap();
        }
        assert!(embedded("a100-sxm-80gb").unwrap().is_none());
    }

    #[test]
    fn a_file_of_another_schema_version_is_refused_by_name() {
        let e = Calibration::parse("old.json", r#"{"schema_version": 1, "groups": []}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("old.json: schema_version: is 1"), "{e}");
    }

    #[test]
    fn error_bars_take_the_kinds_own_else_the_overall() {
        let bars = ErrorBars {
            measured: Some(3.0),
            interpolated: Some(20.0),
            extrapolated: Some(90.0),
            by_kind: vec![KindErrorBars {
                kind: "matmul bf16".into(),
                measured: None,
                interpolated: Some(8.0),
                extrapolated: None,
            }],
        };
        assert_eq!(
            bars.for_provenance("matmul bf16", Provenance::Interpolated),
            Some(8.0)
        );
        assert_eq!(
            bars.for_provenance("matmul bf16", Provenance::Extrapolated),
            Some(90.0)
        );
        assert_eq!(
            bars.for_provenance("matmul bf16", Provenance::Measured),
            Some(3.0)
        );
        assert_eq!(
            bars.for_provenance("matmul fp16", Provenance::Interpolated),
            Some(20.0)
        );
        assert_eq!(
            bars.for_provenance("matmul bf16", Provenance::Roofline),
            None
        );
    }

    #[test]
    fn time_fit_recovers_launch_rate_and_bandwidth() {
        let truth = TimeFit {
            launch_s: 5e-6,
            flops_per_s: Some(1e12),
            bytes_per_s: Some(1e11),
        };
        let data: Vec<(Work, f64)> = [(1e6, 1e7), (1e9, 1e6), (1e10, 1e9), (1e12, 1e8), (1e7, 1e5)]
            .iter()
            .map(|&(flops, bytes)| {
                let w = Work { flops, bytes };
                (w, truth.seconds(w))
            })
            .collect();
        let fit = TimeFit::fit(&data).unwrap();
        assert!((fit.launch_s / 5e-6 - 1.0).abs() < 1e-6, "{fit:?}");
        assert!(
            (fit.flops_per_s.unwrap() / 1e12 - 1.0).abs() < 1e-6,
            "{fit:?}"
        );
        assert!(
            (fit.bytes_per_s.unwrap() / 1e11 - 1.0).abs() < 1e-6,
            "{fit:?}"
        );
    }

    #[test]
    fn a_term_the_data_contradicts_is_dropped() {
        // Time falls as bytes grow: no positive bandwidth explains it, so that term goes.
        let data = [
            (
                Work {
                    flops: 1e9,
                    bytes: 1e6,
                },
                2e-3,
            ),
            (
                Work {
                    flops: 2e9,
                    bytes: 1e5,
                },
                4e-3,
            ),
            (
                Work {
                    flops: 4e9,
                    bytes: 1e4,
                },
                8e-3,
            ),
        ];
        let fit = TimeFit::fit(&data).unwrap();
        assert_eq!(fit.bytes_per_s, None);
        assert!((fit.flops_per_s.unwrap() / 5e11 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn tiles_and_waves_pad_the_work() {
        let op = Op::Matmul(Matmul::new(1, 1, 512, 512, DType::Fp32));
        // 1×512 output in 64×128 tiles: 4 tiles, two waves of two units, each tile full.
        let q = quantized_flops(&op, Some((64, 128)), 2);
        assert_eq!(q, 2.0 * 4.0 * 64.0 * 128.0 * 512.0);
        // 5 tiles on 2 units take 3 waves: 6 tiles' work.
        let op5 = Op::Matmul(Matmul::new(1, 64, 640, 8, DType::Fp32));
        assert_eq!(
            quantized_flops(&op5, Some((64, 128)), 2),
            2.0 * 6.0 * 64.0 * 128.0 * 8.0
        );
        assert_eq!(quantized_flops(&op, None, 2), op.flops());
    }

    #[test]
    fn exact_inside_and_outside_the_grid() {
        let hw = lavapipe();
        let g = group("wgpu:x", &[64, 128, 256, 512], |op| {
            1e-4 + op.flops() / 5e10
        });
        let at = |n: u64| {
            let op = Op::Matmul(Matmul::new(1, n, n, n, DType::Fp32));
            let (_, f) = key_and_features(&op).unwrap();
            (
                g.predict_seconds(&op, &f, &hw).unwrap(),
                1e-4 + op.flops() / 5e10,
            )
        };
        let ((s, p), truth) = at(128);
        assert_eq!(p, Provenance::Measured);
        assert_eq!(s, truth);
        let ((s, p), truth) = at(200);
        assert_eq!(p, Provenance::Interpolated);
        assert!((s / truth - 1.0).abs() < 1e-6, "{s} {truth}");
        let ((s, p), truth) = at(2048);
        assert_eq!(p, Provenance::Extrapolated);
        assert!((s / truth - 1.0).abs() < 1e-6, "{s} {truth}");
    }

    #[test]
    fn a_group_of_two_shapes_answers_only_for_them() {
        let hw = lavapipe();
        let g = group("wgpu:x", &[64, 128], |op| 1e-4 + op.flops() / 5e10);
        let at = |n: u64| {
            let op = Op::Matmul(Matmul::new(1, n, n, n, DType::Fp32));
            let (_, f) = key_and_features(&op).unwrap();
            g.predict_seconds(&op, &f, &hw)
        };
        assert_eq!(at(64).map(|(_, p)| p), Some(Provenance::Measured));
        assert_eq!(at(96), None);
        assert_eq!(at(1024), None);
    }

    #[test]
    fn the_fastest_well_supported_implementation_wins() {
        let hw = lavapipe();
        let slow = group("wgpu:slow", &[64, 128, 256, 512], |op| {
            1e-4 + op.flops() / 1e10
        });
        let fast = group("wgpu:fast", &[64, 128, 256, 512], |op| {
            1e-4 + op.flops() / 4e10
        });
        // Measured only on tiny shapes, and apparently very fast there: at 300 it extrapolates,
        // and must not beat an interpolation.
        let tiny = group("wgpu:tiny", &[8, 16, 24], |op| 1e-6 + op.flops() / 1e13);
        let op = Op::Matmul(Matmul::new(1, 300, 300, 300, DType::Fp32));
        let groups = [slow, fast, tiny];
        let (_, p, imp) = predict_fastest(&groups, &op, &hw).unwrap();
        assert_eq!((p, imp), (Provenance::Interpolated, "wgpu:fast"));
    }
}
