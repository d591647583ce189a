//! The second input: the system a prediction is for — a hardware profile, the calibration of
//! it (if any), the stack of implementations that prices ops, and so the cost model. The profile
//! and its calibration travel together, checked to belong to each other once, here.

use crate::error::{Error, Result};
pub use crate::model::cost::calibrated::Stack;
use crate::model::cost::calibrated::{
    CalibratedModel, Calibration, ErrorBars, RooflineWithBars, embedded, embedded_profiles,
};
use crate::model::cost::sustained::Sustained;
use crate::model::cost::{CostModel, transfer};
use crate::model::hw::{self, HwProfile};
use std::path::Path;

pub struct System {
    pub hw: HwProfile,
    pub cost_model: Box<dyn CostModel>,
    /// Where the profile came from (the embedded catalog, or a file), for provenance.
    pub hardware_origin: String,
}

impl System {
    /// `hw` priced by `calibration` with `stack` where it has a calibration, else by the
    /// roofline (also with `roofline`). The roofline carries the bars it earned held out: on
    /// this GPU's measurements where they exist, else on the measured GPUs'. A calibration of
    /// another profile is refused.
    pub fn new(
        hw: HwProfile,
        calibration: Option<Calibration>,
        roofline: bool,
        stack: Stack,
    ) -> Result<System> {
        if let Some(c) = &calibration
            && c.profile != hw.name
        {
            return Err(Error::Unsupported(format!(
                "the calibration of '{}' cannot price '{}'",
                c.profile, hw.name
            )));
        }
        let mut hw = hw;
        // Measured collectives replace the profile's assumed efficiency and fixed cost.
        if let Some(f) = calibration.as_ref().and_then(|c| c.interconnect.as_ref())
            && !roofline
        {
            hw.model.collective_efficiency = f.collective_efficiency;
            hw.model.collective_latency_s = f.collective_latency_s;
        }
        let cost_model: Box<dyn CostModel> = match (calibration, roofline) {
            (Some(c), false) => Box::new(CalibratedModel::new(c, stack)),
            (Some(c), true) => Box::new(RooflineWithBars {
                measured_on: vec![c.transferred_from.map_or(c.profile, |t| t.profile)],
                bars: c.error_pct,
            }),
            (None, _) => Box::new(borrowed_roofline_bars()?),
        };
        // Predictions are of steps that hold the GPU at its power limit for seconds.
        let fraction = hw.sustained_fraction();
        let cost_model: Box<dyn CostModel> = if fraction < 1.0 {
            Box::new(Sustained {
                inner: cost_model,
                fraction,
            })
        } else {
            cost_model
        };
        let hardware_origin = format!("{} (embedded catalog)", hw.name);
        Ok(System {
            hw,
            cost_model,
            hardware_origin,
        })
    }

    /// The system for `--hw NAME_OR_FILE` on the production stack: the calibration file given,
    /// else the one embedded for the GPU; the roofline with `roofline`.
    pub fn load(hw_arg: &str, calibration_file: Option<&Path>, roofline: bool) -> Result<System> {
        System::load_with(hw_arg, calibration_file, roofline, Stack::Production)
    }

    /// `load` with a stack of implementations.
    pub fn load_with(
        hw_arg: &str,
        calibration_file: Option<&Path>,
        roofline: bool,
        stack: Stack,
    ) -> Result<System> {
        let hardware = hw::load(hw_arg)?;
        let from_catalog = is_catalog_profile(hw_arg, &hardware);
        let calibration = calibration_for(hw_arg, calibration_file, roofline, &hardware)?;
        let origin = if from_catalog {
            format!("{} (embedded catalog)", hardware.name)
        } else {
            format!("{} (file {hw_arg})", hardware.name)
        };
        let mut system = System::new(hardware, calibration, roofline, stack)?;
        system.hardware_origin = origin;
        Ok(system)
    }

    /// One line saying what prices the ops and where its numbers come from.
    /// Sets the GPUs per node (a cluster's topology, overriding the profile's).
    pub fn set_gpus_per_node(&mut self, gpus: u64) {
        self.hw.interconnect.gpus_per_node = Some(crate::model::hw::Sourced {
            value: gpus as f64,
            source: "--gpus-per-node".into(),
        });
    }

    pub fn describe(&self) -> String {
        self.cost_model.describe(&self.hw)
    }
}

/// The roofline's held-out bars on every GPU with an embedded calibration, the widest where
/// several have one: what a GPU never measured borrows.
fn borrowed_roofline_bars() -> Result<RooflineWithBars> {
    let mut merged = ErrorBars::default();
    let mut measured_on = Vec::new();
    for name in embedded_profiles() {
        let Some(c) = embedded(name)? else { continue };
        if !c.groups.iter().any(|g| g.vendor) {
            continue; // only a vendor library's measurements say how far the roofline is off
        }
        measured_on.push(c.profile.clone());
        for b in c.error_pct.bars {
            match merged
                .bars
                .iter_mut()
                .find(|m| m.kind == b.kind && m.regime == b.regime)
            {
                Some(m) => {
                    m.roofline = match (m.roofline, b.roofline) {
                        (Some(x), Some(y)) => Some(x.max(y)),
                        (x, y) => x.or(y),
                    }
                }
                None => merged.bars.push(b),
            }
        }
    }
    Ok(RooflineWithBars {
        bars: merged,
        measured_on,
    })
}

/// Whether `--hw hw_arg` named the catalog's own profile (not a user's file named like it).
fn is_catalog_profile(hw_arg: &str, hardware: &HwProfile) -> bool {
    hw::catalog_names().contains(&hardware.name.as_str()) && !hw_arg.ends_with(".toml")
}

/// The calibration `--hw hw_arg` is priced with: `load_calibration`'s for a catalog profile or
/// with a file given. A user's profile named like a catalog GPU is not that GPU: a measured
/// GPU's calibration reaches it only transferred, under its own figures.
pub fn calibration_for(
    hw_arg: &str,
    calibration_file: Option<&Path>,
    roofline: bool,
    hardware: &HwProfile,
) -> Result<Option<Calibration>> {
    match (calibration_file, is_catalog_profile(hw_arg, hardware)) {
        (None, false) if roofline => Ok(None),
        (None, false) => transfer::nearest(hardware),
        _ => load_calibration(calibration_file, roofline, hardware),
    }
}

/// The calibration a system uses: the file given, else the one embedded for the GPU, else the
/// nearest measured GPU's transferred to it; none with `roofline`. A file calibrating another
/// profile is refused by name.
pub fn load_calibration(
    calibration_file: Option<&Path>,
    roofline: bool,
    hardware: &HwProfile,
) -> Result<Option<Calibration>> {
    Ok(match (calibration_file, roofline) {
        (_, true) => None,
        (Some(path), _) => {
            let file = path.display().to_string();
            let cal = Calibration::parse(&file, &crate::error::read_to_string(path)?)?;
            if cal.profile != hardware.name {
                return Err(Error::field(
                    &file,
                    "profile",
                    format!("calibrates '{}', not --hw {}", cal.profile, hardware.name),
                ));
            }
            Some(cal)
        }
        (None, false) => match embedded(&hardware.name)? {
            Some(own) => Some(own),
            // Never measured: the nearest measured GPU's calibration, carried over.
            None => transfer::nearest(hardware)?,
        },
    })
}
