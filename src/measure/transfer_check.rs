//! How well a transferred calibration predicts a GPU it never measured: every point measured on
//! the target, predicted by the source GPU's calibration carried over by the datasheet ratios
//! (`model::cost::transfer`), each implementation by its own transferred group, beside the
//! target's plain roofline; and how often the widened bars held.

use crate::error::{Error, Result};
use crate::measure::validation::{GroupStats, Residual, bar_coverage, kind_and_regime, stats};
use crate::model::cost::calibrated::{
    BarCoverage, CalibratedModel, Calibration, Group, Stack, key_and_features,
};
use crate::model::cost::{CostModel, Provenance, Roofline};
use crate::model::hw::HwProfile;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TransferReport {
    /// The measured GPU the calibration came from, and the one it was carried to.
    pub source: String,
    pub target: String,
    /// Over every target point (`n`, `median_ape`, … at the top level of the JSON).
    #[serde(flatten)]
    pub overall: GroupStats,
    /// The target points whose shape the source measured too: the transfer's own error, with
    /// the source's reduced to its noise.
    pub same_shapes: GroupStats,
    /// Per op kind.
    pub groups: Vec<GroupStats>,
    pub coverage: BarCoverage,
    pub residuals: Vec<Residual>,
}

/// Predicts every point of `measured` (the target's own measurements, grouped as a calibration
/// groups them) with `transferred` (a calibration carried over to `target`).
pub fn check(
    measured: &[Group],
    transferred: &Calibration,
    target: &HwProfile,
) -> Result<TransferReport> {
    let source = transferred
        .transferred_from
        .as_ref()
        .map(|t| t.device.clone())
        .ok_or_else(|| Error::Unsupported("the calibration checked is not transferred".into()))?;
    let mut residuals = Vec::new();
    let mut same_shape = Vec::new();
    for g in measured {
        let model = CalibratedModel::new(
            transferred.clone(),
            Stack::Only(g.key.implementation.clone()),
        );
        let source_group = transferred.groups.iter().find(|t| t.key == g.key);
        for p in &g.points {
            let Some((kind, regime)) = kind_and_regime(&p.op, target) else {
                continue;
            };
            let predicted = model.predict(&p.op, target)?;
            let roofline_s = Roofline.predict(&p.op, target)?.seconds;
            let ape = |s: f64| (s - p.measured_s).abs() / p.measured_s;
            let was_measured = source_group.is_some_and(|s| {
                key_and_features(&p.op).is_some_and(|(_, f)| {
                    s.points
                        .iter()
                        .any(|q| q.features.iter().zip(&f).all(|(a, b)| (a - b).abs() < 1e-9))
                })
            });
            same_shape.push(was_measured);
            residuals.push(Residual {
                group: g.key.op_kind(),
                op_kind: kind,
                regime,
                held_out: format!("transferred from {source}"),
                implementation: if predicted.provenance == Provenance::Roofline {
                    "roofline".into()
                } else {
                    g.key.implementation.clone()
                },
                shape: p.op.to_string(),
                measured_s: p.measured_s,
                predicted_s: predicted.seconds,
                roofline_s,
                ape: ape(predicted.seconds),
                roofline_ape: ape(roofline_s),
                provenance: predicted.provenance,
                bar_pct: predicted.error_pct,
            });
        }
    }
    if residuals.is_empty() {
        return Err(Error::Unknown(
            "no measured point of the target to check the transfer on".into(),
        ));
    }
    let all: Vec<&Residual> = residuals.iter().collect();
    let same: Vec<&Residual> = residuals
        .iter()
        .zip(&same_shape)
        .filter(|(_, s)| **s)
        .map(|(r, _)| r)
        .collect();
    let mut kinds: Vec<String> = residuals.iter().map(|r| r.group.clone()).collect();
    kinds.sort();
    kinds.dedup();
    let groups = kinds
        .into_iter()
        .map(|k| {
            let of: Vec<&Residual> = residuals.iter().filter(|r| r.group == k).collect();
            stats(k, &of)
        })
        .collect();
    Ok(TransferReport {
        source,
        target: target.name.clone(),
        overall: stats("every target point".into(), &all),
        same_shapes: stats("shapes the source measured".into(), &same),
        groups,
        coverage: bar_coverage(&all),
        residuals,
    })
}
