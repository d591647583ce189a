//! gpucost: what a transformer costs on a GPU — from datasheet figures today, from measured
//! kernels as calibrations arrive. See DESIGN.md for the module map and data flow.
//!
//! A module depends only on the modules above it in DESIGN.md's module map (dtype, ops, hw, cost,
//! arch, workload, …); `error` is shared by all and `cli` sits on top.

pub mod arch;
pub mod backend;
pub mod bench;
pub mod calibrate;
pub mod cli;
pub mod cost;
pub mod dtype;
pub mod error;
pub mod hw;
pub mod ops;
pub mod results;
pub mod workload;

pub use error::{Error, Result};
