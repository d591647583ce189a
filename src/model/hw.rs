//! Hardware profiles: what a GPU can do, each figure with its source. The catalog in
//! `hw_profiles/` is embedded in the binary so predictions work on any machine; users may pass
//! their own profile file in the same format.

use crate::error::{Error, Result, parse_toml};
use crate::model::dtype::{DType, PeakClass};
use crate::model::ops::limits;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A figure and where it comes from (datasheet, whitepaper, or a measurement and its command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

/// The figures of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwProfile {
    /// Short name used on the command line (`h100-sxm`).
    pub name: String,
    /// Full product name.
    pub display_name: String,
    pub vendor: String,
    pub architecture: String,
    /// What a compute unit is called on this device ("SM", "CU", "core").
    #[serde(default = "default_compute_unit")]
    pub compute_unit: String,
    pub compute_units: Sourced<u32>,
    pub boost_clock_hz: Sourced<f64>,
    pub memory_bytes: Sourced<f64>,
    pub memory_bandwidth_bytes_per_s: Sourced<f64>,
    pub l2_bytes: Sourced<f64>,
    /// Board power limit; absent where no figure can be sourced (a CPU device), and then energy is
    /// not predicted.
    #[serde(default)]
    pub tdp_w: Option<Sourced<f64>>,
    #[serde(default)]
    pub price_usd_per_hour: Option<Sourced<f64>>,
    /// Fraction of its short-run compute rate the GPU keeps through a long step held at its power
    /// limit: kernel benchmarks run for milliseconds at the boost clock, a training step runs for
    /// seconds at the clock the board's power limit allows. Absent: not derated, for want of a
    /// figure.
    #[serde(default)]
    pub sustained_compute_fraction: Option<Sourced<f64>>,
    /// Dense (no 2:4 sparsity) peak rates, FLOP/s (OP/s for integers).
    pub peak_flops: PeakFlops,
    #[serde(default)]
    pub interconnect: Interconnect,
    /// Cost-model defaults for this device; see `ModelDefaults` for what each means.
    #[serde(default)]
    pub model: ModelDefaults,
}

fn default_compute_unit() -> String {
    "SM".into()
}

/// Dense peak rates per precision. A precision the device cannot run on its matrix units is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakFlops {
    pub fp32: Sourced<f64>,
    #[serde(default)]
    pub tf32: Option<Sourced<f64>>,
    #[serde(default)]
    pub fp16: Option<Sourced<f64>>,
    #[serde(default)]
    pub bf16: Option<Sourced<f64>>,
    #[serde(default)]
    pub fp8: Option<Sourced<f64>>,
    #[serde(default)]
    pub int8: Option<Sourced<f64>>,
    #[serde(default)]
    pub int4: Option<Sourced<f64>>,
}

/// Link bandwidths per GPU, bytes/s in each direction, and the node they sit in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interconnect {
    /// GPUs in one node of the reference system (a DGX/HGX board holds 8); absent for a single
    /// card, which is then a node of one.
    #[serde(default)]
    pub gpus_per_node: Option<Sourced<f64>>,
    /// GPUs one NVLink domain joins (8 through NVSwitch on SXM boards, 2 through a bridge on PCIe
    /// cards); a larger group inside a node talks over PCIe. Absent: all of the node.
    #[serde(default)]
    pub nvlink_gpus: Option<Sourced<f64>>,
    /// Whether the NVSwitch reduces in the switch (NVLink SHARP, "NVLS"), so an all-reduce sends
    /// and receives each byte once instead of 2(n−1)/n times.
    #[serde(default)]
    pub nvls: Option<Sourced<bool>>,
    /// GPU-to-GPU inside a node (NVLink); absent on cards without one.
    #[serde(default)]
    pub nvlink_bytes_per_s: Option<Sourced<f64>>,
    /// Host link (PCIe), each direction.
    #[serde(default)]
    pub pcie_bytes_per_s: Option<Sourced<f64>>,
    /// Network between nodes, per GPU.
    #[serde(default)]
    pub network_bytes_per_s: Option<Sourced<f64>>,
}

/// Cost-model assumptions for a device. These are not datasheet figures: they are the defaults the
/// roofline model uses until a calibration from measured kernels replaces them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelDefaults {
    /// Fraction of peak a large, well-shaped vendor-library matmul reaches. 0.80 by default:
    /// cuBLAS bf16 reached 791 of 989 TFLOP/s on an H100 SXM (results/nvidia-h100-80gb-hbm3).
    pub matmul_efficiency: f64,
    /// Fraction of peak a fused attention kernel reaches. 0.60 by default (FlashAttention-2 on
    /// A100 reports up to ~70%; on H100 the FA2 kernels reach ~35–40%, set in that profile).
    pub attention_efficiency: f64,
    /// Fraction of peak bandwidth a streaming kernel reaches. 0.90 by default (a device-to-device
    /// copy on an H100 SXM moves about 3.0 of 3.35 TB/s).
    pub memory_efficiency: f64,
    /// Fraction of link bandwidth a collective reaches. 0.80 by default.
    pub collective_efficiency: f64,
    /// Fixed cost of one kernel launch, seconds.
    pub launch_latency_s: f64,
    /// Fixed cost of one collective (launch and synchronisation), seconds.
    pub collective_latency_s: f64,
    /// Cost of one algorithm step (a hop of a ring or a tree level) inside a node, seconds.
    pub nvlink_step_latency_s: f64,
    /// Cost of one algorithm step across the network, seconds.
    pub network_step_latency_s: f64,
    /// Output tile shapes (rows, cols) a matmul library can choose between; the model takes the
    /// fastest after tile and wave quantization.
    pub matmul_tiles: Vec<[u64; 2]>,
}

impl Default for ModelDefaults {
    fn default() -> Self {
        ModelDefaults {
            matmul_efficiency: 0.80,
            attention_efficiency: 0.60,
            memory_efficiency: 0.90,
            collective_efficiency: 0.80,
            launch_latency_s: 4e-6,
            collective_latency_s: 10e-6,
            nvlink_step_latency_s: 1e-6,
            network_step_latency_s: 5e-6,
            matmul_tiles: vec![
                [128, 256],
                [256, 128],
                [128, 128],
                [128, 64],
                [64, 128],
                [64, 64],
            ],
        }
    }
}

impl HwProfile {
    /// The sustained fraction of the compute rate (1 where the profile gives none).
    pub fn sustained_fraction(&self) -> f64 {
        self.sustained_compute_fraction
            .as_ref()
            .map_or(1.0, |f| f.value)
    }

    /// Dense peak for matmuls in `dtype`, or `None` where the device has no such rate.
    pub fn peak_flops(&self, dtype: DType) -> Option<f64> {
        let p = &self.peak_flops;
        let s = match dtype.peak_class() {
            PeakClass::Fp32 => Some(&p.fp32),
            PeakClass::Tf32 => p.tf32.as_ref(),
            PeakClass::Fp16 => p.fp16.as_ref(),
            PeakClass::Bf16 => p.bf16.as_ref(),
            PeakClass::Fp8 => p.fp8.as_ref(),
            PeakClass::Int8 => p.int8.as_ref(),
            PeakClass::Int4 => p.int4.as_ref(),
        };
        s.map(|s| s.value)
    }

    /// Like `peak_flops`, but an error naming the device when the rate is missing.
    pub fn require_peak_flops(&self, dtype: DType) -> Result<f64> {
        self.peak_flops(dtype).ok_or_else(|| {
            Error::Unsupported(format!(
                "{} has no {dtype} matrix rate in its profile (supported: {})",
                self.name,
                self.supported_dtypes()
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    pub fn supported_dtypes(&self) -> Vec<DType> {
        DType::ALL
            .into_iter()
            .filter(|&d| self.peak_flops(d).is_some())
            .collect()
    }

    /// GPUs in one node (1 for a single card).
    pub fn gpus_per_node(&self) -> u64 {
        self.interconnect
            .gpus_per_node
            .as_ref()
            .map_or(1, |g| g.value as u64)
    }

    /// GPUs one NVLink domain joins (all of the node when the profile does not say).
    pub fn nvlink_gpus(&self) -> u64 {
        self.interconnect
            .nvlink_gpus
            .as_ref()
            .map_or(self.gpus_per_node(), |g| g.value as u64)
    }

    pub fn tdp_w(&self) -> Option<f64> {
        self.tdp_w.as_ref().map(|p| p.value)
    }

    /// Price per GPU-hour in US dollars, where the profile has one.
    pub fn price_usd_per_hour(&self) -> Option<f64> {
        self.price_usd_per_hour.as_ref().map(|p| p.value)
    }

    /// Every figure with its dotted field name, for display and validation.
    pub fn figures(&self) -> Vec<(String, f64, &str)> {
        let p = &self.peak_flops;
        let i = &self.interconnect;
        // compute_units is the one integer figure; the rest are f64, some optional.
        let rest: [(&str, Option<&Sourced<f64>>); 19] = [
            ("boost_clock_hz", Some(&self.boost_clock_hz)),
            ("memory_bytes", Some(&self.memory_bytes)),
            (
                "memory_bandwidth_bytes_per_s",
                Some(&self.memory_bandwidth_bytes_per_s),
            ),
            ("l2_bytes", Some(&self.l2_bytes)),
            ("tdp_w", self.tdp_w.as_ref()),
            ("price_usd_per_hour", self.price_usd_per_hour.as_ref()),
            (
                "sustained_compute_fraction",
                self.sustained_compute_fraction.as_ref(),
            ),
            ("peak_flops.fp32", Some(&p.fp32)),
            ("peak_flops.tf32", p.tf32.as_ref()),
            ("peak_flops.fp16", p.fp16.as_ref()),
            ("peak_flops.bf16", p.bf16.as_ref()),
            ("peak_flops.fp8", p.fp8.as_ref()),
            ("peak_flops.int8", p.int8.as_ref()),
            ("peak_flops.int4", p.int4.as_ref()),
            (
                "interconnect.nvlink_bytes_per_s",
                i.nvlink_bytes_per_s.as_ref(),
            ),
            ("interconnect.pcie_bytes_per_s", i.pcie_bytes_per_s.as_ref()),
            (
                "interconnect.network_bytes_per_s",
                i.network_bytes_per_s.as_ref(),
            ),
            ("interconnect.gpus_per_node", i.gpus_per_node.as_ref()),
            ("interconnect.nvlink_gpus", i.nvlink_gpus.as_ref()),
        ];
        let mut out = vec![(
            "compute_units".to_string(),
            f64::from(self.compute_units.value),
            self.compute_units.source.as_str(),
        )];
        for (name, figure) in rest {
            if let Some(f) = figure {
                out.push((name.to_string(), f.value, f.source.as_str()));
            }
        }
        out
    }

    /// Checks every figure is positive, finite, within `limits` and carries a source; checks the
    /// model defaults.
    pub fn validate(&self, file: &str) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::field(file, "name", "must not be empty"));
        }
        // The name becomes part of file names (NAME.calibration.json).
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.name.len() > 64 || !self.name.chars().all(plain) || self.name.starts_with('.') {
            return Err(Error::field(
                file,
                "name",
                format!(
                    "'{}' must be at most 64 letters, digits, '-', '_' or '.', not starting with '.'",
                    self.name.escape_debug()
                ),
            ));
        }
        if self.compute_units.value > limits::COMPUTE_UNITS {
            return Err(Error::field(
                file,
                "compute_units.value",
                format!(
                    "{} exceeds the limit of {}",
                    self.compute_units.value,
                    limits::show(u64::from(limits::COMPUTE_UNITS))
                ),
            ));
        }
        for (field, value, source) in self.figures() {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::field(
                    file,
                    &format!("{field}.value"),
                    format!("must be a positive number, got {value}"),
                ));
            }
            // Bounded so that every time, rate and energy derived from the figure is finite.
            let max = if field == "price_usd_per_hour" {
                limits::PRICE_PER_HOUR
            } else {
                limits::FIGURE_MAX
            };
            if !(limits::FIGURE_MIN..=max).contains(&value) {
                return Err(Error::field(
                    file,
                    &format!("{field}.value"),
                    format!(
                        "{value:e} is outside [{:e}, {max:e}], the range gpucost accepts",
                        limits::FIGURE_MIN
                    ),
                ));
            }
            if source.trim().is_empty() {
                return Err(Error::field(
                    file,
                    &format!("{field}.source"),
                    "every figure needs a source",
                ));
            }
        }
        // A fraction: positive and within the figures' range is checked above.
        if let Some(f) = &self.sustained_compute_fraction
            && f.value > 1.0
        {
            return Err(Error::field(
                file,
                "sustained_compute_fraction.value",
                format!("must be in (0, 1], got {}", f.value),
            ));
        }
        let m = &self.model;
        for (field, v) in [
            ("model.matmul_efficiency", m.matmul_efficiency),
            ("model.attention_efficiency", m.attention_efficiency),
            ("model.memory_efficiency", m.memory_efficiency),
            ("model.collective_efficiency", m.collective_efficiency),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(Error::field(
                    file,
                    field,
                    format!("must be in (0, 1], got {v}"),
                ));
            }
            if v < limits::EFFICIENCY_MIN {
                return Err(Error::field(
                    file,
                    field,
                    format!(
                        "{v} is below {:e}, the smallest efficiency gpucost accepts",
                        limits::EFFICIENCY_MIN
                    ),
                ));
            }
        }
        for (field, v) in [
            ("model.launch_latency_s", m.launch_latency_s),
            ("model.collective_latency_s", m.collective_latency_s),
            ("model.nvlink_step_latency_s", m.nvlink_step_latency_s),
            ("model.network_step_latency_s", m.network_step_latency_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::field(
                    file,
                    field,
                    format!("must be a non-negative number, got {v}"),
                ));
            }
            if v > limits::LATENCY_MAX {
                return Err(Error::field(
                    file,
                    field,
                    format!("{v} s exceeds the limit of {} s", limits::LATENCY_MAX),
                ));
            }
        }
        let i = &self.interconnect;
        for (field, v) in [
            ("interconnect.gpus_per_node", &i.gpus_per_node),
            ("interconnect.nvlink_gpus", &i.nvlink_gpus),
        ] {
            if let Some(v) = v
                && (v.value.fract() != 0.0 || v.value < 1.0 || v.value > limits::RANKS as f64)
            {
                return Err(Error::field(
                    file,
                    &format!("{field}.value"),
                    format!(
                        "must be a whole number from 1 to {}, got {}",
                        limits::show(limits::RANKS),
                        v.value
                    ),
                ));
            }
        }
        if let Some(n) = &i.nvls
            && n.source.trim().is_empty()
        {
            return Err(Error::field(
                file,
                "interconnect.nvls.source",
                "every figure needs a source",
            ));
        }
        if m.matmul_tiles.is_empty() || m.matmul_tiles.iter().any(|t| t[0] == 0 || t[1] == 0) {
            return Err(Error::field(
                file,
                "model.matmul_tiles",
                "needs at least one tile, each side positive",
            ));
        }
        if m.matmul_tiles.len() > limits::TILES {
            return Err(Error::field(
                file,
                "model.matmul_tiles",
                format!(
                    "{} tiles exceed the limit of {}",
                    m.matmul_tiles.len(),
                    limits::TILES
                ),
            ));
        }
        if let Some(t) = m
            .matmul_tiles
            .iter()
            .flatten()
            .find(|&&t| t > limits::TILE_SIDE)
        {
            return Err(Error::field(
                file,
                "model.matmul_tiles",
                format!(
                    "a tile side of {t} exceeds the limit of {}",
                    limits::show(limits::TILE_SIDE)
                ),
            ));
        }
        Ok(())
    }
}

/// The embedded catalog: (name, file name, TOML text).
const CATALOG: &[(&str, &str)] = &[
    (
        "h100-sxm",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/h100-sxm.toml"
        )),
    ),
    (
        "h100-pcie",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/h100-pcie.toml"
        )),
    ),
    (
        "h200-sxm",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/h200-sxm.toml"
        )),
    ),
    (
        "a100-sxm-80gb",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/a100-sxm-80gb.toml"
        )),
    ),
    (
        "a100-sxm-40gb",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/a100-sxm-40gb.toml"
        )),
    ),
    (
        "l40s",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/l40s.toml"
        )),
    ),
    (
        "rtx-4090",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/rtx-4090.toml"
        )),
    ),
    (
        "lavapipe",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hw_profiles/lavapipe.toml"
        )),
    ),
];

/// Names of the embedded profiles.
pub fn catalog_names() -> Vec<&'static str> {
    CATALOG.iter().map(|(n, _)| *n).collect()
}

/// The catalog profile that describes a device, from the name its driver reports.
pub fn profile_for_device(device_name: &str) -> Option<&'static str> {
    let n = device_name.to_ascii_lowercase();
    let name = if n.contains("llvmpipe") {
        "lavapipe"
    } else if n.contains("h100") && n.contains("pcie") {
        "h100-pcie"
    } else if n.contains("h100") {
        "h100-sxm"
    } else if n.contains("h200") {
        "h200-sxm"
    } else if n.contains("a100") && n.contains("40gb") {
        "a100-sxm-40gb"
    } else if n.contains("a100") {
        "a100-sxm-80gb"
    } else if n.contains("l40s") {
        "l40s"
    } else if n.contains("4090") {
        "rtx-4090"
    } else {
        return None;
    };
    Some(name)
}

/// Parses and validates a profile from TOML text; `file` names it in errors.
pub fn parse_profile(file: &str, text: &str) -> Result<HwProfile> {
    let profile: HwProfile = parse_toml(file, text)?;
    profile.validate(file)?;
    Ok(profile)
}

/// All embedded profiles, in catalog order.
pub fn catalog() -> Result<Vec<HwProfile>> {
    CATALOG
        .iter()
        .map(|(name, text)| parse_profile(&format!("hw_profiles/{name}.toml"), text))
        .collect()
}

/// A profile by catalog name, or from a TOML file when `name_or_path` is a path.
pub fn load(name_or_path: &str) -> Result<HwProfile> {
    let key = name_or_path.trim().to_ascii_lowercase();
    if let Some((name, text)) = CATALOG.iter().find(|(n, _)| *n == key) {
        return parse_profile(&format!("hw_profiles/{name}.toml"), text);
    }
    let path = Path::new(name_or_path);
    if path.exists() || name_or_path.ends_with(".toml") || name_or_path.contains('/') {
        let text = crate::error::read_to_string(path)?;
        return parse_profile(name_or_path, &text);
    }
    Err(Error::Unknown(format!(
        "unknown GPU '{name_or_path}' (known: {}; or pass a profile .toml file)",
        catalog_names().join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_profile_parses_and_names_itself() {
        let all = catalog().unwrap();
        assert_eq!(all.len(), CATALOG.len());
        for (p, (name, _)) in all.iter().zip(CATALOG) {
            assert_eq!(&p.name, name);
            assert!(p.peak_flops(DType::Fp32).is_some());
        }
    }

    #[test]
    fn h100_peaks_match_the_datasheet_leads() {
        let h = load("h100-sxm").unwrap();
        assert_eq!(h.compute_units.value, 132);
        assert_eq!(h.peak_flops(DType::Bf16), Some(989.4e12));
        assert_eq!(h.peak_flops(DType::Fp8E5m2), Some(1978.9e12));
        let a = load("a100-sxm-80gb").unwrap();
        assert!(a.require_peak_flops(DType::Fp8E4m3).is_err());
    }

    #[test]
    fn a_figure_without_a_source_is_refused() {
        let original = "source = \"NVIDIA H100 Tensor Core GPU datasheet, SXM: 80 GB HBM3\"";
        assert!(CATALOG[0].1.contains(original));
        let text = CATALOG[0].1.replace(original, "source = \" \"");
        let e = parse_profile("x.toml", &text).unwrap_err().to_string();
        assert_eq!(
            e,
            "x.toml: memory_bytes.source: every figure needs a source"
        );
    }

    #[test]
    fn device_names_map_to_profiles() {
        assert_eq!(
            profile_for_device("llvmpipe (LLVM 15.0.6, 256 bits)"),
            Some("lavapipe")
        );
        assert_eq!(
            profile_for_device("NVIDIA H100 80GB HBM3"),
            Some("h100-sxm")
        );
        assert_eq!(profile_for_device("NVIDIA H100 PCIe"), Some("h100-pcie"));
        assert_eq!(profile_for_device("NVIDIA H200"), Some("h200-sxm"));
        assert_eq!(profile_for_device("AMD Radeon RX 7900"), None);
    }

    #[test]
    fn unknown_gpu_lists_the_catalog() {
        let e = load("h900").unwrap_err().to_string();
        assert!(
            e.contains("unknown GPU 'h900'") && e.contains("h100-sxm"),
            "{e}"
        );
    }

    #[test]
    fn figures_and_names_beyond_the_limits_are_refused() {
        let text = CATALOG[0].1;
        let e = |t: &str| parse_profile("x.toml", t).unwrap_err().to_string();
        assert!(
            e(&text.replace("value = 132,", "value = 2000000,"))
                .starts_with("x.toml: compute_units.value: 2000000 exceeds the limit of 2^20")
        );
        assert!(
            e(&text.replace("name = \"h100-sxm\"", "name = \"../h100\""))
                .starts_with("x.toml: name: '../h100' must be")
        );
        assert!(
            e(&text.replace("value = 989.4e12", "value = 1e30"))
                .starts_with("x.toml: peak_flops.fp16.value: 1e30 is outside [1e-3, 1e21]")
        );
    }
}
