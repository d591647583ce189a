//! Every versioned document gpucost writes, with its version in one place. Bump a version on any
//! change a reader could trip on (a key removed or renamed, a unit or meaning changed); adding a
//! key is not a breaking change. docs/json-schema.md describes each document.

/// `gpucost predict --format json` (2: the parallel layout in the setups — `microbatches`
/// became `micro_batch`, with ep, cp, schedule, ZeRO and overlap — and a `cluster` section).
pub const PREDICT: u32 = 2;
/// `hw_profiles/<profile>.calibration.json`, written by `gpucost calibrate` (2: one group per
/// implementation, a fitted time model; 3: vendor flags, bars per kind and regime with the
/// roofline's, held-out coverage).
pub const CALIBRATION: u32 = 3;
/// One line of a results file (`results/<device>/*.jsonl`), written by `gpucost bench`.
pub const RECORD: u32 = 1;
/// A composition report (`results/<device>/compose-*.json`), written by `gpucost compose`.
pub const COMPOSE: u32 = 1;
/// `gpucost frontier --format json`.
pub const FRONTIER: u32 = 1;
/// One answer line of `gpucost score`.
pub const SCORE: u32 = 1;
/// `gpucost validate --published FILE --format json`.
pub const PUBLISHED: u32 = 1;
/// `gpucost predict --search-parallelism --format json`.
pub const LAYOUTS: u32 = 1;
/// `gpucost predict --offline-throughput --format json`.
pub const OFFLINE: u32 = 1;
