//! The CUDA backend: hand-written kernels compiled by NVRTC and the vendor libraries (cuBLAS,
//! cuBLASLt) beside them, timed with CUDA events, with NVML telemetry. Every CUDA library is
//! loaded at run time; each is probed before its first use, so a machine without CUDA gets a
//! reason, not a panic.

pub mod nvrtc;
