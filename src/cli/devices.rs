//! `gpucost devices`: every backend, every adapter, and for what is missing, why.

use super::Format;
use crate::measure::backend::{Clock, DeviceInfo, cuda, wgpu as wgpu_backend};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Style;

#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Serialize)]
struct BackendReport {
    backend: &'static str,
    available: bool,
    /// Why the backend has no device, where it has none.
    reason: Option<String>,
    devices: Vec<DeviceInfo>,
}

fn reports() -> Vec<BackendReport> {
    let adapters = wgpu_backend::adapters();
    vec![
        BackendReport {
            backend: "cpu",
            available: true,
            reason: Some("f64 reference for correctness checks, never timed as a contender".into()),
            devices: Vec::new(),
        },
        BackendReport {
            backend: "wgpu",
            available: !adapters.is_empty(),
            reason: adapters.is_empty().then(|| {
                "no adapter: no Vulkan driver found (without a GPU: apt-get install mesa-vulkan-drivers libvulkan1 for lavapipe)".to_string()
            }),
            devices: adapters,
        },
        cuda_report(),
    ]
}

fn cuda_report() -> BackendReport {
    let status = cuda::library_status();
    let missing: Vec<String> = status
        .iter()
        .filter_map(|(lib, why)| why.as_ref().map(|w| format!("{lib}: {w}")))
        .collect();
    let mut devices = Vec::new();
    let mut errors = Vec::new();
    if status
        .iter()
        .any(|(lib, why)| *lib == "driver" && why.is_none())
    {
        match cudarc::driver::CudaContext::device_count() {
            Ok(n) => {
                for i in 0..n.max(0) as usize {
                    match cuda::CudaBackend::open(i) {
                        Ok(b) => devices.push(crate::measure::backend::Backend::device(&b).clone()),
                        Err(e) => errors.push(format!("device {i}: {e}")),
                    }
                }
            }
            Err(e) => errors.push(format!("{e:?}")),
        }
    }
    let mut notes = missing;
    notes.extend(errors);
    BackendReport {
        backend: "cuda",
        available: !devices.is_empty(),
        reason: (!notes.is_empty()).then(|| notes.join("; ")),
        devices,
    }
}

pub fn run(a: DevicesArgs) -> Result<()> {
    let reports = reports();
    let mut out = String::new();
    if a.format == Format::Json {
        outln!(out, "{}", serde_json::to_string_pretty(&reports)?);
        return super::emit(&out);
    }
    let mut b = Builder::default();
    b.push_record([
        "backend", "#", "device", "type", "driver", "timer", "f16", "note",
    ]);
    for r in &reports {
        if r.devices.is_empty() {
            b.push_record([
                r.backend.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                r.reason.clone().unwrap_or_default(),
            ]);
        }
        for (i, d) in r.devices.iter().enumerate() {
            let timer = match (d.clock, d.timer_resolution_ns) {
                (Clock::DeviceTimestamp, Some(ns)) => format!("timestamps ({ns} ns/tick)"),
                (Clock::DeviceTimestamp, None) => "timestamps".into(),
                (Clock::WallClock, _) => "wall clock (no timestamps)".into(),
            };
            b.push_record([
                d.backend.clone(),
                i.to_string(),
                d.name.clone(),
                d.device_type.clone(),
                d.driver.clone(),
                timer,
                if d.supports_f16 { "yes" } else { "no" }.into(),
                crate::model::hw::profile_for_device(&d.name)
                    .map(|p| format!("profile {p}"))
                    .unwrap_or_else(|| "no catalog profile".into()),
            ]);
        }
    }
    outln!(out, "{}", b.build().with(Style::rounded()));
    super::emit(&out)
}
