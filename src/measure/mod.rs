//! Measuring kernels (behind the `measure` feature): `backend` runs ops (the f64 CPU reference,
//! wgpu, CUDA with NVML), `harness` checks then times them, `records` is the results record
//! schema and store, `fit` turns records into a calibration and validates it, `compose` builds
//! and checks a whole transformer block. It imports `model`; `model` never imports it.

pub mod backend;
pub mod compose;
pub mod compose_recurrent;
pub mod fit;
pub mod harness;
pub mod interconnect;
pub mod records;
pub mod transfer_check;
pub mod validation;
