//! gpucost: what a transformer costs on a GPU — from datasheet figures, and from measured kernels
//! where a calibration exists. docs/design.md has the module map and the data flow.
//!
//! `model` is the predicting library and needs no GPU crate; `measure` (the default-on `measure`
//! feature) runs and times kernels and fits calibrations, and may import `model`, never the
//! reverse; `cli` sits on top of both. `error` is shared by all.

pub mod api;
pub mod cli;
pub mod error;
#[cfg(feature = "measure")]
pub mod measure;
pub mod model;

pub use error::{Error, Result};
