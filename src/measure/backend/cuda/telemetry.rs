//! NVML telemetry read around every measurement: clocks, power, temperature, throttle reasons and
//! the energy counter. Read-only: gpucost never changes clocks, power limits or GPU modes.

use super::super::Telemetry;
use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};

/// An NVML session for one GPU.
pub struct Nvml1 {
    nvml: Nvml,
    index: u32,
}

/// Throttle reasons that mean the clocks were held down by power or heat (idle and
/// application-clock settings are not throttling).
fn throttling(r: ThrottleReasons) -> Vec<String> {
    let bad = ThrottleReasons::SW_POWER_CAP
        | ThrottleReasons::HW_SLOWDOWN
        | ThrottleReasons::SW_THERMAL_SLOWDOWN
        | ThrottleReasons::HW_THERMAL_SLOWDOWN
        | ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN
        | ThrottleReasons::SYNC_BOOST;
    let mut out = Vec::new();
    for (name, flag) in bad.iter_names() {
        if r.contains(flag) {
            out.push(name.to_lowercase());
        }
    }
    out
}

impl Nvml1 {
    /// Opens NVML (libnvidia-ml) for GPU `index`; the reason where it cannot.
    pub fn open(index: u32) -> Result<Nvml1, String> {
        let nvml = Nvml::init().map_err(|e| format!("nvml: {e}"))?;
        nvml.device_by_index(index)
            .map_err(|e| format!("nvml: device {index}: {e}"))?;
        Ok(Nvml1 { nvml, index })
    }

    pub fn driver_version(&self) -> Option<String> {
        self.nvml.sys_driver_version().ok()
    }

    /// One reading; fields the device does not report are `None`.
    pub fn read(&self) -> Telemetry {
        let Ok(d) = self.nvml.device_by_index(self.index) else {
            return Telemetry::default();
        };
        Telemetry {
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
            power_w: d.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            throttle_reasons: d
                .current_throttle_reasons()
                .map(throttling)
                .unwrap_or_default(),
            energy_j: d
                .total_energy_consumption()
                .ok()
                .map(|mj| mj as f64 / 1000.0),
        }
    }
}
