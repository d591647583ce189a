//! Device backends: something that can run a kernel variant on a device and time it on the
//! device's clock. `cpu` is the f64 reference used to check results (not a contender); `wgpu`
//! runs the WGSL kernels on any GPU, or on the CPU through Mesa's lavapipe; `cuda` runs the CUDA
//! kernels and the vendor libraries on NVIDIA GPUs. Each backend's kernels are declared in one
//! table beside their sources (`spec`); `host` rounds and packs values for device buffers.

pub mod block;
pub mod block_mla;
pub mod block_recurrent;
pub mod cpu;
pub mod cuda;
pub mod host;
pub mod nccl;
pub mod spec;
pub mod wgpu;

use crate::model::ops::Op;
use serde::{Deserialize, Serialize};

/// Errors a backend reports. Kernel and device failures are not the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("device error: {0}")]
    Device(String),
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// Mesa's implicit Vulkan layer VK_LAYER_MESA_device_select asks Wayland for the default GPU,
/// and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" on every adapter opened
/// where there is no session (servers, containers, CI). gpucost picks adapters by index itself,
/// so where that directory is missing the layer is switched off by its documented variable.
///
/// # Safety
/// Sets an environment variable: call it before any other thread exists (first thing in main).
pub unsafe fn quiet_vulkan_device_select() {
    let runtime_dir_ok =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !runtime_dir_ok && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller promises no other thread reads the environment yet.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Which clock a timing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// Timestamps written by the device around the kernel.
    DeviceTimestamp,
    /// Host wall clock around submit-and-wait: includes submission overhead. A labelled fallback.
    WallClock,
}

/// What a backend knows of its device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub backend: String,
    pub name: String,
    pub vendor: String,
    pub driver: String,
    pub device_type: String,
    pub memory_bytes: Option<u64>,
    pub compute_units: Option<u32>,
    /// Nanoseconds per timestamp tick, where the device has timestamps.
    pub timer_resolution_ns: Option<f64>,
    pub clock: Clock,
    pub supports_f16: bool,
}

impl DeviceInfo {
    /// A file-system-safe name for the results folder: "llvmpipe-llvm-15-0-6-256-bits".
    pub fn slug(&self) -> String {
        let mut s: String = self
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        while s.contains("--") {
            s = s.replace("--", "-");
        }
        s.trim_matches('-').to_string()
    }
}

/// One kernel implementation of an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    /// One line: the idea of the kernel.
    pub idea: &'static str,
    /// A vendor library (cuBLAS, cuBLASLt) rather than one of ours.
    pub vendor: bool,
    /// Output rows × columns one workgroup (block) computes; attention: query rows × 1. The
    /// cost model pads shapes to it (tile quantization). None where unknown (vendor libraries).
    pub tile: Option<(u32, u32)>,
    /// A slow teaching baseline, skipped by default on large problems.
    pub baseline: bool,
}

/// The tile of an implementation ("backend:variant", as results name it) for an op class,
/// where the backend declares one.
pub fn output_tile(implementation: &str, class: crate::model::ops::OpClass) -> Option<(u32, u32)> {
    let (backend, name) = implementation.split_once(':')?;
    match backend {
        "wgpu" => spec::tile(wgpu::SPECS, name, class),
        "cuda" => spec::tile(cuda::SPECS, name, class),
        _ => None,
    }
}

/// Strides (batch, head, row) and offset, in elements, of one attention operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strided {
    pub batch: u64,
    pub head: u64,
    pub row: u64,
    pub offset: u64,
}

/// Where the fused attention kernel finds Q, K, V and writes O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionLayout {
    pub q: Strided,
    pub k: Strided,
    pub v: Strided,
    pub o: Strided,
}

impl AttentionLayout {
    /// Contiguous [batch, heads, len, dim] tensors, as the benchmark and the naive kernels use.
    pub fn head_major(a: &crate::model::ops::Attention) -> Self {
        let t = |heads: u64, len: u64, dim: u64| Strided {
            batch: heads * len * dim,
            head: len * dim,
            row: dim,
            offset: 0,
        };
        AttentionLayout {
            q: t(a.q_heads, a.q_len, a.qk_head_dim),
            k: t(a.kv_heads, a.kv_len, a.qk_head_dim),
            v: t(a.kv_heads, a.kv_len, a.v_head_dim),
            o: t(a.q_heads, a.q_len, a.v_head_dim),
        }
    }
}

/// The memory-bound ops the backends have kernels for (forward RMSNorm, SwiGLU, residual add,
/// rotary over whole heads), or why not.
pub fn measured_memory_kind(
    m: &crate::model::ops::MemoryOp,
) -> Result<crate::model::ops::MemoryKind> {
    use crate::model::ops::{Activation, MemoryKind, Pass};
    let ok = m.pass == Pass::Forward
        && match m.kind {
            MemoryKind::RmsNorm | MemoryKind::ResidualAdd => true,
            MemoryKind::GatedActivation(a) => a == Activation::Silu,
            MemoryKind::Rotary => cpu::rotary_head_dim(m.cols).is_some(),
            _ => false,
        };
    if ok {
        Ok(m.kind)
    } else {
        Err(BackendError::Unsupported(format!(
            "no kernel for {} (have: forward rmsnorm, gated-silu, residual-add, rotary over \
             whole heads)",
            Op::Memory(*m)
        )))
    }
}

/// Input tensors a memory-bound op's kernel reads (RMSNorm: x and the weight).
pub fn memory_input_count(kind: crate::model::ops::MemoryKind) -> usize {
    use crate::model::ops::MemoryKind;
    match kind {
        MemoryKind::RmsNorm | MemoryKind::ResidualAdd => 2,
        _ => 1,
    }
}

/// One reading of a device's sensors (NVML on NVIDIA). Missing fields read as unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Telemetry {
    pub sm_clock_mhz: Option<u32>,
    pub memory_clock_mhz: Option<u32>,
    pub power_w: Option<f64>,
    pub temperature_c: Option<u32>,
    /// Active reasons the clocks are held down by power or heat; empty when not throttled.
    pub throttle_reasons: Vec<String>,
    /// The device's cumulative energy counter.
    pub energy_j: Option<f64>,
}

/// A device that runs kernel variants.
///
/// Usage: `load` a problem with its input sets (host values already rounded to the op's dtype),
/// then `run` a variant on one set and read the output back, or `time` it over the sets.
pub trait Backend {
    fn device(&self) -> &DeviceInfo;
    /// Variants that can run `op` (its shape kind and dtype) on this device.
    fn variants(&self, op: &Op) -> Vec<Variant>;
    /// Uploads the problem: `sets[i]` holds the input tensors of set i (matmul: A, B).
    fn load(&mut self, op: &Op, sets: &[Vec<Vec<f32>>]) -> Result<()>;
    /// Fills the output with NaN, runs `variant` once on input set `set`, returns the output.
    fn run(&mut self, variant: &str, set: usize) -> Result<Vec<f32>>;
    /// Runs `variant` `runs` times, rotating over the input sets, returning each run's seconds.
    fn time(&mut self, variant: &str, runs: usize) -> Result<Vec<f64>>;
    /// A sensor reading, where the device has sensors this backend can read.
    fn telemetry(&self) -> Option<Telemetry> {
        None
    }
    /// Runs a transformer block forward: once with poisoned buffers (output returned), then
    /// `runs` timed times.
    fn run_block(
        &mut self,
        _block: &block::BlockShape,
        _inputs: &block::BlockInputs,
        _runs: usize,
    ) -> Result<block::BlockRun> {
        Err(BackendError::Unsupported(format!(
            "{}: no transformer-block runner for this backend",
            self.device().backend
        )))
    }
    /// Runs a recurrent layer (Gated DeltaNet and its MLP, or a Mamba-2 mixer) forward: once
    /// with poisoned buffers (output returned), then `runs` timed times.
    fn run_recurrent_block(
        &mut self,
        _layer: &block_recurrent::RecurrentShape,
        _inputs: &block_recurrent::RecurrentInputs,
        _runs: usize,
    ) -> Result<block::BlockRun> {
        Err(BackendError::Unsupported(format!(
            "{}: no recurrent-layer runner for this backend",
            self.device().backend
        )))
    }
}
