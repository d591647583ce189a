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
use crate::model::ops::{Matmul, Op, OpClass};
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
            OpClass::Scan => "scan",
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
    /// A vendor library (cuBLAS, cuBLASLt, PyTorch SDPA): what frameworks run, and so what the
    /// production stack prices with.
    pub vendor: bool,
    /// The implementation's output tile (rows × columns; attention: query rows × 1), if known.
    pub tile: Option<(u32, u32)>,
    pub points: Vec<Point>,
    /// The time model over every point.
    pub fit: TimeFit,
    /// The time model of each regime with enough points of its own (a GEMV's time does not
    /// follow a tiled GEMM's law): what predictions in that regime use.
    #[serde(default)]
    pub regime_fits: Vec<(Regime, TimeFit)>,
}

/// What limits an op, as residual corrections and validation see it: a skinny matmul (a GEMV,
/// whose kernels differ from tiled GEMMs), or an op whose speed-of-light time is set by
/// arithmetic or by memory traffic. Neighbours correct a prediction only within its regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    Gemv,
    Compute,
    Memory,
}

impl Regime {
    pub fn name(self) -> &'static str {
        match self {
            Regime::Gemv => "gemv",
            Regime::Compute => "compute",
            Regime::Memory => "memory",
        }
    }
}

pub use super::GEMV_MAX_ROWS;

/// The regime of `op` on `hw`.
pub fn regime(op: &Op, hw: &HwProfile) -> Regime {
    if let Op::Matmul(m) = op
        && m.m.min(m.n) <= GEMV_MAX_ROWS
    {
        return Regime::Gemv;
    }
    let compute = peak_rate(op, hw).map_or(0.0, |r| op.flops() / r);
    let memory = op.min_bytes() / hw.memory_bandwidth_bytes_per_s.value;
    if compute >= memory {
        Regime::Compute
    } else {
        Regime::Memory
    }
}

/// Bars wider than this (± percent) are not promised: the better-validated model answers, and
/// a prediction that still has no narrower bar says so.
pub const MAX_ERROR_PCT: f64 = 50.0;

/// Held-out error bars of one op kind (and regime): ± percent, the p90 of |error| of held-out
/// predictions of each provenance, and of the roofline on the same points.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindErrorBars {
    /// "matmul bf16", "attention fp16 d128 decode"; empty for all kinds together.
    pub kind: String,
    /// None for every regime of the kind together.
    pub regime: Option<Regime>,
    pub measured: Option<f64>,
    pub interpolated: Option<f64>,
    pub extrapolated: Option<f64>,
    pub roofline: Option<f64>,
    /// Held-out predictions (of any provenance) behind these bars.
    pub n: usize,
    /// The roofline validated better than the calibrated model here: it answers.
    pub use_roofline: bool,
}

/// How well the bars kept their promise on points held out of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BarCoverage {
    /// Share of held-out predictions whose true time lay inside the bar (target 0.85–0.95).
    pub coverage: f64,
    pub median_width_pct: f64,
    pub p90_width_pct: f64,
    pub n: usize,
}

/// Every error bar of a calibration, most specific first: per kind and regime, per kind, then
/// over everything (`kind` empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBars {
    pub bars: Vec<KindErrorBars>,
    pub coverage: Option<BarCoverage>,
}

/// Residuals an op kind (or regime) needs before its own p90 replaces a coarser one.
pub const MIN_RESIDUALS_PER_BAR: usize = 5;

impl ErrorBars {
    /// The most specific bars that apply to `kind` in `regime`.
    fn entries<'a>(
        &'a self,
        kind: &'a str,
        regime: Regime,
    ) -> impl Iterator<Item = &'a KindErrorBars> + 'a {
        let exact = self
            .bars
            .iter()
            .filter(move |b| b.kind == kind && b.regime == Some(regime));
        let kind_wide = self
            .bars
            .iter()
            .filter(move |b| b.kind == kind && b.regime.is_none());
        let all = self
            .bars
            .iter()
            .filter(|b| b.kind.is_empty() && b.regime.is_none());
        exact.chain(kind_wide).chain(all)
    }

    /// The bar of a prediction of this provenance for an op of `kind` in `regime`: the most
    /// specific one that exists.
    pub fn for_provenance(&self, kind: &str, regime: Regime, p: Provenance) -> Option<f64> {
        self.entries(kind, regime).find_map(|b| match p {
            Provenance::Measured => b.measured,
            Provenance::Interpolated => b.interpolated,
            Provenance::Extrapolated => b.extrapolated,
            Provenance::Roofline => b.roofline,
            // A transferred answer's bar is looked up by how the source's law answered
            // (measured, interpolated or extrapolated there), before it is labelled.
            Provenance::Transferred => None,
        })
    }

    /// Whether the roofline answers instead of a calibrated prediction of `provenance` for
    /// `kind` in `regime`: validation found it better there (a measured shape always stands),
    /// or the calibrated bar is past the limit and the roofline's is narrower.
    pub fn roofline_replaces(&self, kind: &str, regime: Regime, provenance: Provenance) -> bool {
        let worse = provenance != Provenance::Measured && self.roofline_answers(kind, regime);
        let roofline = self.for_provenance(kind, regime, Provenance::Roofline);
        let too_wide = self
            .for_provenance(kind, regime, provenance)
            .is_some_and(|b| b > MAX_ERROR_PCT && roofline.is_some_and(|r| r < b));
        worse || too_wide
    }

    /// Whether validation chose the roofline for `kind` in `regime` (the most specific entry
    /// that has residuals decides).
    pub fn roofline_answers(&self, kind: &str, regime: Regime) -> bool {
        self.entries(kind, regime)
            .find(|b| b.n > 0)
            .is_some_and(|b| b.use_roofline)
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
    /// The collectives' fit inside a node, where the results held measured collectives
    /// (`bench --op collective`): it replaces the profile's assumed efficiency and fixed cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interconnect: Option<InterconnectFit>,
    /// Set on a calibration carried over from another GPU's measurements (`transfer`): its
    /// answers are labelled `transferred` and their bars widened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_from: Option<super::transfer::TransferSource>,
}

/// Measured ring collectives fitted to the alpha–beta model (`measure::interconnect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterconnectFit {
    /// Achieved bus bandwidth ÷ the profile's link bandwidth.
    pub collective_efficiency: f64,
    /// Fixed cost of one collective, seconds.
    pub collective_latency_s: f64,
    /// GPUs the collectives ran over.
    pub ranks: u64,
    /// Measured sizes behind the fit.
    pub points: usize,
    /// Median |error| of the fit on its own points, percent.
    pub median_abs_error_pct: f64,
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
        let cal: Calibration = crate::error::parse_json(file, text)?;
        cal.check(file)?;
        Ok(cal)
    }

    /// Every figure a prediction reads is within bounds: ops within the limits, times, noise,
    /// fits and bars finite and of the right sign, tiles at least one — so that what parses
    /// prices finitely.
    pub fn check(&self, file: &str) -> Result<()> {
        let bad = |path: String, why: String| Err(Error::field(file, &path, why));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if let Some(f) = &self.interconnect {
            if !(f.collective_efficiency > 0.0 && f.collective_efficiency <= 1.0) {
                return bad(
                    "interconnect.collective_efficiency".into(),
                    format!("must be in (0, 1], got {}", f.collective_efficiency),
                );
            }
            if !(non_negative(f.collective_latency_s)
                && f.collective_latency_s <= crate::model::ops::limits::LATENCY_MAX)
            {
                return bad(
                    "interconnect.collective_latency_s".into(),
                    format!(
                        "must be from 0 to {} s, got {}",
                        crate::model::ops::limits::LATENCY_MAX,
                        f.collective_latency_s
                    ),
                );
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            let at = |what: &str| format!("groups[{g}].{what}");
            if let Some((tm, tn)) = group.tile
                && (tm == 0 || tn == 0)
            {
                return bad(at("tile"), "a tile side is 0".into());
            }
            for fit in std::iter::once(&group.fit).chain(group.regime_fits.iter().map(|(_, f)| f)) {
                let rates_ok = [fit.flops_per_s, fit.bytes_per_s]
                    .into_iter()
                    .flatten()
                    .all(positive);
                if !non_negative(fit.launch_s) || !rates_ok {
                    return bad(
                        at("fit"),
                        "a time model's figures must be finite and positive".into(),
                    );
                }
            }
            for (i, p) in group.points.iter().enumerate() {
                let here = at(&format!("points[{i}]"));
                if let Err(e) = p.op.check() {
                    return bad(format!("{here}.op"), e);
                }
                if !positive(p.measured_s) || !positive(p.sol_s) || !non_negative(p.noise) {
                    return bad(
                        here,
                        "times must be finite and positive, noise finite".into(),
                    );
                }
                if p.features.iter().any(|f| !f.is_finite()) {
                    return bad(format!("{here}.features"), "must be finite".into());
                }
            }
        }
        for (i, b) in self.error_pct.bars.iter().enumerate() {
            let all = [b.measured, b.interpolated, b.extrapolated, b.roofline];
            if all.into_iter().flatten().any(|v| !non_negative(v)) {
                return bad(
                    format!("error_pct.bars[{i}]"),
                    "bars must be finite and non-negative".into(),
                );
            }
        }
        Ok(())
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
/// The profiles with an embedded calibration.
pub fn embedded_profiles() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(name, _)| *name)
}

pub fn embedded(profile: &str) -> Result<Option<Calibration>> {
    // Parsed once per process (a calibration is tens of kilobytes of JSON; a program that
    // predicts in a loop would parse it every time).
    static PARSED: std::sync::OnceLock<Vec<std::result::Result<Calibration, String>>> =
        std::sync::OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(name, text)| {
                Calibration::parse(&format!("hw_profiles/{name}.calibration.json"), text)
                    .map_err(|e| e.to_string())
            })
            .collect()
    });
    EMBEDDED
        .iter()
        .zip(parsed)
        .find(|((name, _), _)| *name == profile)
        .map(|(_, c)| c.clone().map_err(Error::Unsupported))
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
        Op::Scan(s) => Some((
            GroupKey {
                class: OpClass::Scan,
                dtype: s.dtype,
                kind: format!("gated-delta d{}", s.key_dim),
                implementation: String::new(),
            },
            vec![l(s.batch * s.heads), l(s.seq), l(s.key_dim)],
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
pub fn peak_rate(op: &Op, hw: &HwProfile) -> Result<f64> {
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

    /// Refits the time models to the group's points: over all of them (kept as is when they
    /// cannot be fitted), and per regime with at least `MIN_POINTS_TO_PREDICT` points.
    pub fn refit(&mut self, hw: &HwProfile) {
        let data: Vec<(Regime, Work, f64)> = self
            .points
            .iter()
            .map(|p| (regime(&p.op, hw), self.work(&p.op, hw), p.measured_s))
            .collect();
        let all: Vec<(Work, f64)> = data.iter().map(|(_, w, t)| (*w, *t)).collect();
        if let Some(f) = TimeFit::fit(&all) {
            self.fit = f;
        }
        self.regime_fits.clear();
        for reg in [Regime::Gemv, Regime::Compute, Regime::Memory] {
            let own: Vec<(Work, f64)> = data
                .iter()
                .filter(|(r, _, _)| *r == reg)
                .map(|(_, w, t)| (*w, *t))
                .collect();
            if own.len() >= MIN_POINTS_TO_PREDICT
                && let Some(f) = TimeFit::fit(&own)
            {
                self.regime_fits.push((reg, f));
            }
        }
    }

    /// The time model of `op`'s regime on `hw`, where the regime has one of its own.
    pub fn regime_fit_for_op(&self, op: &Op, hw: &HwProfile) -> Option<&TimeFit> {
        self.fit_for(regime(op, hw))
    }

    /// The time model of regime `reg`: its own where it has one.
    fn fit_for(&self, reg: Regime) -> Option<&TimeFit> {
        self.regime_fits
            .iter()
            .find(|(r, _)| *r == reg)
            .map(|(_, f)| f)
    }

    /// log(measured ÷ fitted) of a point under `fit`: what the time model misses there.
    fn residual(&self, fit: &TimeFit, p: &Point, hw: &HwProfile) -> f64 {
        (p.measured_s / fit.seconds(self.work(&p.op, hw))).ln()
    }

    /// This implementation's predicted time for `op` (with `features`), and how it was obtained.
    /// None for a group without points, or with too few to predict a shape it did not measure.
    ///
    /// The fitted time model is corrected by the log residuals of the nearest measured points in
    /// the op's regime (inverse-distance weighted, decaying with distance); then bounded by what
    /// was measured in that regime: never more efficient than the best point, and, beyond the
    /// largest problem, no less efficient than it.
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
        let reg = regime(op, hw);
        near.retain(|(_, p)| regime(&p.op, hw) == reg);
        // Nothing measured in this regime: the group does not speak for it.
        if near.is_empty() {
            return None;
        }
        let same: Vec<&Point> = near.iter().map(|(_, p)| *p).collect();
        let inside = !same.is_empty()
            && (0..features.len()).all(|i| {
                let (lo, hi) = same
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
                        (l.min(p.features[i]), h.max(p.features[i]))
                    });
                features[i] >= lo && features[i] <= hi
            });
        let sol = speed_of_light(op, hw).ok()?;
        let mut seconds = match self.fit_for(reg) {
            Some(fit) => {
                let (mut num, mut den) = (0.0, 0.0);
                for (d, p) in near.iter().take(4) {
                    let w = 1.0 / (d * d);
                    num += w * self.residual(fit, p, hw);
                    den += w;
                }
                // A correction measured far away is trusted less: it fades with the distance to
                // the nearest point, and outside the measured grid it is at most a factor of two.
                let r = num / den * (-near[0].0 / RESIDUAL_DECAY).exp();
                let r = if inside { r } else { r.clamp(-LN_2, LN_2) };
                fit.seconds(self.work(op, hw)) * r.exp()
            }
            // Too few points in the regime for a law of its own: the nearest one's utilization.
            None => sol / near[0].1.utilization(),
        };
        let pool = same;
        let best = pool.iter().map(|p| p.utilization()).fold(0.0f64, f64::max);
        if best > 0.0 {
            seconds = seconds.max(sol / best);
        }
        if !inside {
            let by_size = |a: &&&Point, b: &&&Point| a.sol_s.total_cmp(&b.sol_s);
            if let Some(largest) = pool.iter().max_by(by_size)
                && sol > largest.sol_s
            {
                // Larger than every measured problem: no lower utilization than the largest,
                // and no less time.
                seconds = seconds
                    .min(sol / largest.utilization())
                    .max(largest.measured_s);
            }
            if let Some(smallest) = pool.iter().min_by(by_size)
                && sol < smallest.sol_s
            {
                // Smaller than every measured problem: no more time than the smallest took.
                seconds = seconds.min(smallest.measured_s);
            }
        }
        let provenance = if inside {
            Provenance::Interpolated
        } else {
            Provenance::Extrapolated
        };
        Some((seconds.max(sol), provenance))
    }
}

/// Distance (in log2 units of the shape features) over which a neighbour's residual fades by e.
pub const RESIDUAL_DECAY: f64 = 2.0;

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
        Provenance::Extrapolated | Provenance::Transferred => 2,
        Provenance::Roofline => 3,
    }
}

/// Which implementations price a prediction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stack {
    /// What frameworks run: the vendor libraries (cuBLAS, cuBLASLt, PyTorch SDPA). An op no
    /// vendor implementation was measured for is priced by the roofline.
    #[default]
    Production,
    /// The hand-written kernels of this benchmark suite.
    Ours,
    /// Every measured implementation; the fastest well-supported one answers.
    All,
    /// One implementation, "backend:variant".
    Only(String),
}

impl Stack {
    /// `production`, `ours`, `all`, or one implementation name ("cuda:mma").
    pub fn parse(s: &str) -> Stack {
        match s {
            "production" => Stack::Production,
            "ours" => Stack::Ours,
            "all" => Stack::All,
            other => Stack::Only(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Stack::Production => "production",
            Stack::Ours => "ours",
            Stack::All => "all",
            Stack::Only(name) => name,
        }
    }

    pub fn admits(&self, g: &Group) -> bool {
        match self {
            Stack::Production => g.vendor,
            Stack::Ours => !g.vendor,
            Stack::All => true,
            Stack::Only(name) => &g.key.implementation == name,
        }
    }
}

/// The fastest prediction over `groups` that compete for `op` (same class, dtype and kind):
/// seconds, provenance, and the index of the group that gave it. Only the best-supported
/// predictions compete — measured before interpolated before extrapolated — so that an
/// implementation measured far from this shape cannot win on an extrapolation.
pub fn predict_fastest<'a>(
    groups: impl IntoIterator<Item = &'a Group>,
    op: &Op,
    hw: &HwProfile,
) -> Option<(f64, Provenance, usize)> {
    let (key, features) = key_and_features(op)?;
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| g.key.same_op_kind(&key))
        .filter_map(|(i, g)| g.predict_seconds(op, &features, hw).map(|(s, p)| (s, p, i)))
        .min_by(|a, b| {
            trust_rank(a.1)
                .cmp(&trust_rank(b.1))
                .then(a.0.total_cmp(&b.0))
        })
}

/// The calibrated model; ops its stack has no group for, and regimes where validation found
/// the roofline better, are priced by the roofline.
#[derive(Debug, Clone)]
pub struct CalibratedModel {
    pub calibration: Calibration,
    pub stack: Stack,
}

/// What priced an op, before the bar and the detail are added.
struct Answer {
    seconds: f64,
    provenance: Provenance,
    /// Index of the group that answered; None for the roofline.
    group: Option<usize>,
    error_pct: Option<f64>,
}

impl CalibratedModel {
    pub fn new(calibration: Calibration, stack: Stack) -> Self {
        CalibratedModel { calibration, stack }
    }

    /// `own_answer`, never faster than the same matmul with fewer rows: a matmul just above the
    /// GEMV size streams the same weights as the GEMV below it, and the two are priced by
    /// different laws (or the roofline), which must not make more rows cost less time.
    fn answer(&self, op: &Op, hw: &HwProfile) -> Result<Answer> {
        let own = self.own_answer(op, hw)?;
        let Op::Matmul(m) = op else { return Ok(own) };
        if m.batch != 1 || m.m <= GEMV_MAX_ROWS || m.n <= GEMV_MAX_ROWS {
            return Ok(own);
        }
        let gemv = Op::Matmul(Matmul {
            m: GEMV_MAX_ROWS,
            ..*m
        });
        let floor = self.own_answer(&gemv, hw)?;
        Ok(if floor.seconds > own.seconds {
            floor
        } else {
            own
        })
    }

    /// The calibrated answer for `op` where the stack has one and it is the better-validated
    /// model, else the roofline's; each with its held-out bar.
    fn own_answer(&self, op: &Op, hw: &HwProfile) -> Result<Answer> {
        let bars = &self.calibration.error_pct;
        let kind_regime = key_and_features(op).map(|(k, _)| (k.op_kind(), regime(op, hw)));
        let roofline = |hw: &HwProfile| -> Result<Answer> {
            Ok(Answer {
                seconds: Roofline.price(op, hw)?.seconds,
                provenance: Provenance::Roofline,
                group: None,
                error_pct: kind_regime
                    .as_ref()
                    .and_then(|(k, r)| bars.for_provenance(k, *r, Provenance::Roofline)),
            })
        };
        let admitted = self
            .calibration
            .groups
            .iter()
            .filter(|g| self.stack.admits(g));
        let Some((seconds, provenance, i)) = predict_fastest(admitted, op, hw) else {
            return roofline(hw);
        };
        // predict_fastest indexes the admitted groups; find the group itself.
        let group = self
            .calibration
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| self.stack.admits(g))
            .nth(i)
            .map(|(j, _)| j);
        let Some((kind, reg)) = kind_regime.as_ref() else {
            return roofline(hw);
        };
        if bars.roofline_replaces(kind, *reg, provenance) {
            return roofline(hw);
        }
        let bar = bars.for_provenance(kind, *reg, provenance);
        let provenance = if self.calibration.transferred_from.is_some() {
            Provenance::Transferred
        } else {
            provenance
        };
        Ok(Answer {
            seconds,
            provenance,
            group,
            error_pct: bar,
        })
    }

    /// The prediction for one implementation ("backend:variant"), where a group of it answers
    /// for `op` (compose prices each op with the kernel that ran it).
    pub fn predict_implementation(
        &self,
        op: &Op,
        hw: &HwProfile,
        implementation: &str,
    ) -> Result<Option<Prediction>> {
        let one = CalibratedModel {
            calibration: self.calibration.clone(),
            stack: Stack::Only(implementation.to_string()),
        };
        let own = one
            .calibration
            .groups
            .iter()
            .filter(|g| one.stack.admits(g));
        match predict_fastest(own, op, hw) {
            None => Ok(None),
            Some(_) => one.predict(op, hw).map(Some),
        }
    }

    fn prediction(&self, op: &Op, hw: &HwProfile, a: Answer, detailed: bool) -> Result<Prediction> {
        let sol = speed_of_light(op, hw)?;
        let compute_s = op.flops() / peak_rate(op, hw)?;
        let memory_s = op.min_bytes() / hw.memory_bandwidth_bytes_per_s.value;
        let implementation = self.implementation_name(a.group);
        Ok(Prediction {
            seconds: a.seconds,
            bound: if compute_s >= memory_s {
                Bound::Compute
            } else {
                Bound::Memory
            },
            provenance: a.provenance,
            flops: op.flops(),
            bytes: op.min_bytes(),
            compute_s,
            memory_s,
            latency_s: 0.0,
            error_pct: a.error_pct,
            implementation: a.group,
            detail: if detailed {
                format!(
                    "{implementation}, utilization {:.3} of speed of light",
                    sol / a.seconds
                )
            } else {
                String::new()
            },
        })
    }
}

/// The roofline with the error bars it earned on measured GPUs (its own p90 |error| per op kind
/// and regime, held out by nature: nothing was fitted).
#[derive(Debug, Clone)]
pub struct RooflineWithBars {
    pub bars: ErrorBars,
    /// The profiles whose measurements the bars come from.
    pub measured_on: Vec<String>,
}

impl RooflineWithBars {
    fn bar(&self, op: &Op, hw: &HwProfile) -> Option<f64> {
        let (key, _) = key_and_features(op)?;
        self.bars
            .for_provenance(&key.op_kind(), regime(op, hw), Provenance::Roofline)
    }
}

impl CostModel for RooflineWithBars {
    fn describe(&self, hw: &HwProfile) -> String {
        let bars = if self.measured_on.is_empty() {
            "no error bars (no measured GPU to validate them on)".to_string()
        } else {
            format!(
                "error bars: the roofline's held-out error on {}",
                self.measured_on.join(", ")
            )
        };
        format!("{}; {bars}", Roofline.describe(hw))
    }

    fn predict(&self, op: &Op, hw: &HwProfile) -> Result<Prediction> {
        let mut p = Roofline.predict(op, hw)?;
        p.error_pct = self.bar(op, hw);
        Ok(p)
    }

    fn price(&self, op: &Op, hw: &HwProfile) -> Result<OpPrice> {
        let mut p = Roofline.price(op, hw)?;
        p.error_pct = self.bar(op, hw);
        Ok(p)
    }
}

impl CostModel for CalibratedModel {
    fn describe(&self, hw: &HwProfile) -> String {
        let c = &self.calibration;
        if let Some(t) = &c.transferred_from {
            return format!(
                "transferred from {} ({}, {} groups, stack {}) by the datasheet ratios (bandwidth x{:.2}, {}), bars widened by ±{:.0}%; roofline for the rest: {}",
                t.device,
                c.driver,
                c.groups.len(),
                self.stack.name(),
                t.bandwidth_ratio,
                match t.bf16_ratio {
                    Some(r) => format!("bf16 peak x{r:.2}"),
                    None => format!("fp32 peak x{:.2}", t.fp32_ratio),
                },
                t.allowance_pct,
                Roofline.describe(hw)
            );
        }
        format!(
            "calibrated on {} ({}, {} groups, stack {}); roofline for the rest: {}",
            c.device,
            c.driver,
            c.groups.len(),
            self.stack.name(),
            Roofline.describe(hw)
        )
    }

    fn predict(&self, op: &Op, hw: &HwProfile) -> Result<Prediction> {
        let a = self.answer(op, hw)?;
        if a.group.is_none() {
            let mut p = Roofline.predict(op, hw)?;
            p.error_pct = a.error_pct;
            return Ok(p);
        }
        self.prediction(op, hw, a, true)
    }

    fn price(&self, op: &Op, hw: &HwProfile) -> Result<OpPrice> {
        let a = self.answer(op, hw)?;
        if a.group.is_none() {
            let mut p = Roofline.price(op, hw)?;
            p.error_pct = a.error_pct;
            return Ok(p);
        }
        self.prediction(op, hw, a, false).map(|p| p.price())
    }

    fn implementation_name(&self, group: Option<usize>) -> &str {
        group
            .and_then(|i| self.calibration.groups.get(i))
            .map_or("roofline", |g| g.key.implementation.as_str())
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
            vendor: false,
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
            regime_fits: Vec::new(),
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
    fn error_bars_take_the_most_specific_cell() {
        let cell = |kind: &str, regime, interpolated, roofline| KindErrorBars {
            kind: kind.into(),
            regime,
            interpolated,
            roofline,
            n: 10,
            ..KindErrorBars::default()
        };
        let bars = ErrorBars {
            bars: vec![
                cell("", None, Some(20.0), Some(40.0)),
                cell("matmul bf16", None, Some(8.0), None),
                cell("matmul bf16", Some(Regime::Gemv), Some(3.0), Some(12.0)),
            ],
            coverage: None,
        };
        let at = |kind, regime, p| bars.for_provenance(kind, regime, p);
        assert_eq!(
            at("matmul bf16", Regime::Gemv, Provenance::Interpolated),
            Some(3.0)
        );
        assert_eq!(
            at("matmul bf16", Regime::Compute, Provenance::Interpolated),
            Some(8.0)
        );
        assert_eq!(
            at("matmul bf16", Regime::Compute, Provenance::Roofline),
            Some(40.0)
        );
        assert_eq!(
            at("matmul fp16", Regime::Gemv, Provenance::Interpolated),
            Some(20.0)
        );
        assert_eq!(at("matmul bf16", Regime::Gemv, Provenance::Measured), None);
    }

    #[test]
    fn gemvs_and_bound_decide_the_regime() {
        let h100 = crate::model::hw::load("h100-sxm").unwrap();
        let mm = |m, n, k| Op::Matmul(Matmul::new(1, m, n, k, DType::Bf16));
        assert_eq!(regime(&mm(1, 4096, 4096), &h100), Regime::Gemv);
        assert_eq!(regime(&mm(4096, 4096, 4096), &h100), Regime::Compute);
        assert_eq!(regime(&mm(64, 8192, 8192), &h100), Regime::Memory);
    }

    /// Far beyond the measured sizes a group does not climb to the datasheet peak: it stays at
    /// the best utilization it was measured at.
    #[test]
    fn extrapolation_stays_below_the_best_measured_utilization() {
        let hw = lavapipe();
        // Utilization climbs with size up to 512, as launch costs amortize.
        let g = group("wgpu:x", &[64, 128, 256, 512], |op| {
            2e-4 + op.flops() / 5e10
        });
        let best = g.points.iter().map(|p| p.utilization()).fold(0.0, f64::max);
        let op = Op::Matmul(Matmul::new(1, 8192, 8192, 8192, DType::Fp32));
        let (_, f) = key_and_features(&op).unwrap();
        let (s, p) = g.predict_seconds(&op, &f, &hw).unwrap();
        assert_eq!(p, Provenance::Extrapolated);
        let sol = speed_of_light(&op, &hw).unwrap();
        assert!(sol / s <= best * (1.0 + 1e-9), "{} > {best}", sol / s);
    }

    /// Just above the GEMV size a matmul is priced by another law (or the roofline) than the
    /// GEMV below it; more rows still never cost less time.
    #[test]
    fn more_rows_never_cost_less_time_across_the_gemv_boundary() {
        let h100 = crate::model::hw::load("h100-sxm").unwrap();
        let model = CalibratedModel::new(embedded("h100-sxm").unwrap().unwrap(), Stack::Production);
        for (n, k) in [
            (4096, 4096),
            (14336, 4096),
            (4096, 14336),
            (1024, 1024),
            (128256, 4096),
        ] {
            let t = |m| {
                let op = Op::Matmul(Matmul::new(1, m, n, k, DType::Bf16));
                model.price(&op, &h100).unwrap().seconds
            };
            let times: Vec<f64> = [16, 17, 32, 64].into_iter().map(t).collect();
            assert!(times.windows(2).all(|w| w[1] >= w[0]), "{n}x{k}: {times:?}");
        }
    }

    #[test]
    fn stacks_admit_their_implementations() {
        let mut vendor = group("cuda:cublas", &[64, 128, 256], |op| op.flops() / 1e11);
        vendor.vendor = true;
        let ours = group("cuda:mma", &[64, 128, 256], |op| op.flops() / 1e11);
        assert!(Stack::Production.admits(&vendor) && !Stack::Production.admits(&ours));
        assert!(Stack::Ours.admits(&ours) && !Stack::Ours.admits(&vendor));
        assert!(Stack::All.admits(&ours) && Stack::All.admits(&vendor));
        assert!(Stack::parse("cuda:mma").admits(&ours));
        assert!(!Stack::parse("cuda:mma").admits(&vendor));
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
        // Beyond the grid the fit is held to the best utilization measured (512³ here), so a
        // law whose utilization keeps climbing is predicted conservatively, and never faster.
        let ((s, p), truth) = at(2048);
        assert_eq!(p, Provenance::Extrapolated);
        let best = g.points.iter().map(|p| p.utilization()).fold(0.0, f64::max);
        let op = Op::Matmul(Matmul::new(1, 2048, 2048, 2048, DType::Fp32));
        let capped = speed_of_light(&op, &hw).unwrap() / best;
        assert!(
            (s / capped - 1.0).abs() < 1e-9 && s >= truth,
            "{s} {truth} {capped}"
        );
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
        let (_, p, i) = predict_fastest(&groups, &op, &hw).unwrap();
        assert_eq!(
            (p, groups[i].key.implementation.as_str()),
            (Provenance::Interpolated, "wgpu:fast")
        );
    }
}
