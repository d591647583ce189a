//! The predicting library: three inputs — a `Model` (the architecture, `arch`), a `System` (the
//! hardware profile, its calibration and the stack of implementations, `system`) and an
//! `Execution` (what runs, `execution`) — go through `plan` (per-rank ops with counts) and
//! `price` (plain numbers, memoized op prices) to `report` (tables and versioned JSON).
//! No GPU crate is used here.

pub mod arch;
pub mod cost;
pub mod dtype;
pub mod execution;
pub mod frontier;
pub mod hw;
pub mod layout_search;
pub mod memory;
pub mod ops;
pub mod parallel;
pub mod plan;
pub mod price;
pub mod published;
pub mod published_serving;
pub mod report;
pub mod schema;
pub mod system;
pub mod throughput;
