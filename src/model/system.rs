//! The second input: the system a prediction is for — a hardware profile, the calibration of
//! it (if any) and the cost model that prices ops on it. The profile and its calibration travel
//! together, checked to belong to each other once, here.

use crate::error::{Error, Result};
use crate::model::cost::calibrated::{CalibratedModel, Calibration, embedded};
use crate::model::cost::{CostModel, Roofline};
use crate::model::hw::{self, HwProfile};
use std::path::Path;

pub struct System {
    pub hw: HwProfile,
    pub cost_model: Box<dyn CostModel>,
    /// Where the profile came from (the embedded catalog, or a file), for provenance.
    pub hardware_origin: String,
}

impl System {
    /// `hw` priced by `calibration` where it has one, else by the roofline. A calibration of
    /// another profile is refused, naming the file.
    pub fn new(hw: HwProfile, calibration: Option<Calibration>) -> Result<System> {
        let cost_model: Box<dyn CostModel> = match calibration {
            Some(c) => {
                if c.profile != hw.name {
                    return Err(Error::Unsupported(format!(
                        "the calibration of '{}' cannot price '{}'",
                        c.profile, hw.name
                    )));
                }
                Box::new(CalibratedModel { calibration: c })
            }
            None => Box::new(Roofline),
        };
        let hardware_origin = format!("{} (embedded catalog)", hw.name);
        Ok(System {
            hw,
            cost_model,
            hardware_origin,
        })
    }

    /// The system for `--hw NAME_OR_FILE`: the calibration file given, else the one embedded for
    /// the GPU; none with `roofline`.
    pub fn load(hw_arg: &str, calibration_file: Option<&Path>, roofline: bool) -> Result<System> {
        let hardware = hw::load(hw_arg)?;
        let calibration = load_calibration(calibration_file, roofline, &hardware)?;
        let from_catalog =
            hw::catalog_names().contains(&hardware.name.as_str()) && !hw_arg.ends_with(".toml");
        let origin = if from_catalog {
            format!("{} (embedded catalog)", hardware.name)
        } else {
            format!("{} (file {hw_arg})", hardware.name)
        };
        let mut system = System::new(hardware, calibration)?;
        system.hardware_origin = origin;
        Ok(system)
    }

    /// One line saying what prices the ops and where its numbers come from.
    pub fn describe(&self) -> String {
        self.cost_model.describe(&self.hw)
    }
}

/// The calibration a system uses: the file given, else the one embedded for the GPU; none with
/// `roofline`. A file calibrating another profile is refused by name.
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
        (None, false) => embedded(&hardware.name)?,
    })
}
