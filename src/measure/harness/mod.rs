//! The measurement harness: seeded inputs, a correctness check against the f64 reference (a
//! variant that fails gets no time), then timing on the device's clock with warm-up, rotated input
//! sets and a noise-based stopping rule.

pub mod random;
pub mod shapes;
pub mod stats;

use crate::measure::backend::{Backend, BackendError};
use crate::model::dtype::DType;
pub use crate::model::dtype::{fp8_bits, round_to};
use crate::model::ops::{Matmul, MemoryKind, Op};
use rand::{RngExt, SeedableRng};
pub use random::random_tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stats::Summary;
use std::time::{Duration, Instant};

/// Stopping rule and budget for one timed variant.
#[derive(Debug, Clone, Copy)]
pub struct TimingPlan {
    pub warmup_runs: usize,
    pub min_samples: usize,
    pub max_samples: usize,
    /// Stop once the coefficient of variation of the samples falls below this.
    pub target_cv: f64,
    /// Stop sampling after this long regardless.
    pub budget: Duration,
    /// Input sets are rotated over at least this many bytes so caches do not flatter.
    pub rotate_bytes: f64,
    /// Exactly this many input sets, where given, instead of what `rotate_bytes` asks for.
    pub input_sets: Option<usize>,
}

impl Default for TimingPlan {
    fn default() -> Self {
        TimingPlan {
            warmup_runs: 2,
            min_samples: 5,
            max_samples: 200,
            target_cv: 0.02,
            budget: Duration::from_secs(2),
            rotate_bytes: 0.0,
            input_sets: None,
        }
    }
}

/// The outcome of checking a variant against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correctness {
    /// max |out − ref| / max |ref|; infinite (written as null: JSON has no infinity) where the
    /// output held NaNs or the run failed.
    #[serde(deserialize_with = "null_as_infinity")]
    pub max_rel_error: f64,
    pub tolerance: f64,
    pub pass: bool,
    /// Why it failed, when it did (NaN left in the output, an error from the device).
    pub error: Option<String>,
}

/// Reads an error figure that JSON wrote as null because it was infinite.
fn null_as_infinity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

/// Normwise tolerance for a dtype: output rounding of the dtype plus fp32 accumulation over `k`.
pub fn tolerance(dtype: DType, k: u64) -> f64 {
    let accumulate = 2.0f64.powi(-23) * (k as f64).sqrt() * 4.0;
    let output = match dtype {
        DType::Fp16 => 2.0f64.powi(-10),
        DType::Bf16 => 2.0f64.powi(-7),
        DType::Fp8E4m3 => 2.0f64.powi(-3),
        DType::Fp8E5m2 => 2.0f64.powi(-2),
        _ => 2.0f64.powi(-22),
    };
    accumulate + 2.0 * output
}

/// Input tensors of a matmul for one set.
pub fn matmul_inputs(mm: &Matmul, seed: u64) -> Vec<Vec<f32>> {
    let b = mm.batch as usize;
    vec![
        random_tensor(b * (mm.m * mm.k) as usize, mm.input, seed),
        random_tensor(
            b * (mm.k * mm.n) as usize,
            mm.input,
            seed ^ 0x9e37_79b9_7f4a_7c15,
        ),
    ]
}

/// Input tensors of one set for any op the harness measures (matmul: A, B; attention: Q, K, V).
pub fn inputs(op: &Op, seed: u64) -> Result<Vec<Vec<f32>>, BackendError> {
    match op {
        Op::Matmul(mm) => Ok(matmul_inputs(mm, seed)),
        Op::Attention(a) => {
            let n = |heads: u64, len: u64, dim: u64| (a.batch * heads * len * dim) as usize;
            let q = random_tensor(n(a.q_heads, a.q_len, a.qk_head_dim), a.dtype, seed);
            let k = random_tensor(n(a.kv_heads, a.kv_len, a.qk_head_dim), a.dtype, seed ^ 0x51);
            // Shared keys and values: V is the first v_head_dim columns of K, given as its own
            // tensor too so that kernels reading a separate V compute the same attention.
            let v = if a.shared_kv {
                let (d, dv) = (a.qk_head_dim as usize, a.v_head_dim as usize);
                k.chunks(d)
                    .flat_map(|row| row[..dv].iter().copied())
                    .collect()
            } else {
                random_tensor(n(a.kv_heads, a.kv_len, a.v_head_dim), a.dtype, seed ^ 0xa3)
            };
            Ok(vec![q, k, v])
        }
        Op::Memory(m) => {
            let (rows, cols) = (m.rows as usize, m.cols as usize);
            let t = |n: usize, salt: u64| random_tensor(n, m.dtype, seed ^ salt);
            match crate::measure::backend::measured_memory_kind(m)? {
                MemoryKind::RmsNorm => Ok(vec![t(rows * cols, 0), t(cols, 0x77)]),
                MemoryKind::GatedActivation(_) => Ok(vec![t(rows * 2 * cols, 0)]),
                MemoryKind::ResidualAdd => Ok(vec![t(rows * cols, 0), t(rows * cols, 0x3c)]),
                _ => Ok(vec![t(rows * cols, 0)]),
            }
        }
        Op::Scan(sc) => Ok(scan_inputs(sc, seed)),
        other => Err(BackendError::Unsupported(format!("cannot measure {other}"))),
    }
}

/// q, k, v, α, β of a gated-delta scan: q and v uniform in [−1, 1); keys L2-normalized per token
/// (the caller's job in a model) before rounding to the dtype; gates α in [0.9, 1), so the state
/// remembers tens of tokens and rounding errors have time to accumulate; β in [0.05, 0.95).
pub fn scan_inputs(sc: &crate::model::ops::Scan, seed: u64) -> Vec<Vec<f32>> {
    let tokens = (sc.batch * sc.heads * sc.seq) as usize;
    let (dk, dv) = (sc.key_dim as usize, sc.value_dim as usize);
    let d = sc.dtype;
    let mut k = random_tensor(tokens * dk, DType::Fp32, seed ^ 0x51);
    k.par_chunks_mut(dk).for_each(|row| {
        let norm = row
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        for x in row.iter_mut() {
            *x = round_to(d, (f64::from(*x) / norm.max(1e-30)) as f32);
        }
    });
    let map = |salt: u64, f: fn(f32) -> f32| -> Vec<f32> {
        random_tensor(tokens, DType::Fp32, seed ^ salt)
            .into_iter()
            .map(|u| round_to(d, f(u)))
            .collect()
    };
    vec![
        random_tensor(tokens * dk, d, seed),
        k,
        random_tensor(tokens * dv, d, seed ^ 0xa3),
        map(0x6a7e, |u| 0.95 + 0.05 * u),
        map(0xbe7a, |u| 0.5 + 0.45 * u),
    ]
}

/// The tolerance a correct kernel for `op` meets.
pub fn op_tolerance(op: &Op) -> f64 {
    match op {
        Op::Matmul(mm) => tolerance(mm.output, mm.k),
        // Scores accumulate over the head dim, outputs over the keys; exp adds a little.
        Op::Attention(a) => 2.0 * tolerance(a.dtype, a.qk_head_dim.max(a.kv_len)),
        // sin and cos of angles up to the sequence length in f32: WGSL promises 2^-11 absolute
        // accuracy, and the angle itself carries the f32 rounding of pos · frequency.
        Op::Memory(m) if m.kind == MemoryKind::Rotary => {
            tolerance(m.dtype, 1) + 2.0f64.powi(-10) + 2.0f64.powi(-22) * m.rows as f64
        }
        // RMSNorm accumulates its sum of squares over the row.
        Op::Memory(m) => tolerance(m.dtype, m.cols) + 2.0f64.powi(-20),
        // The kernels keep the state in fp32, so no error of the dtype accumulates: each output
        // carries fp32 rounding from the seq × max(dk, dv) products behind it, and since every
        // step's transition α(I − βkkᵀ) has norm at most 1, earlier errors are not amplified
        // and add up as a random walk (the √ in `tolerance`); then one rounding to the dtype.
        // Doubled, as for attention, for the chunked form's triangular solve.
        Op::Scan(sc) => 2.0 * tolerance(sc.dtype, sc.seq * sc.key_dim.max(sc.value_dim)),
        other => tolerance(other.dtype(), 1),
    }
}

/// What a correct output must hold: the whole f64 reference for problems small enough to compute
/// on the host, else the reference at sampled output positions (corners always included); the
/// whole output is still scanned for NaN, so an unwritten element fails either way.
#[derive(Debug, Clone)]
pub enum Expected {
    Full(Vec<f64>),
    Sampled {
        len: usize,
        indices: Vec<usize>,
        values: Vec<f64>,
    },
}

/// Problems above this many FLOPs are checked at sampled positions.
pub const FULL_REFERENCE_MAX_FLOPS: f64 = 5e8;
/// So are problems with more output elements than this (memory-bound ops do few FLOPs each).
pub const FULL_REFERENCE_MAX_OUTPUTS: usize = 1 << 22;
/// Output elements (matmul) or rows (attention, memory-bound ops: this ÷ 32) a sampled check
/// computes.
const SAMPLES: usize = 2048;

/// Output elements of an op the harness measures.
fn output_len(op: &Op) -> usize {
    match op {
        Op::Matmul(mm) => (mm.batch * mm.m * mm.n) as usize,
        Op::Attention(a) => (a.batch * a.q_heads * a.q_len * a.v_head_dim) as usize,
        Op::Memory(m) => (m.rows * m.cols) as usize,
        Op::Scan(sc) => crate::measure::backend::cpu::scan_output_len(sc),
        _ => 0,
    }
}

/// The expected output of `op` on `inputs`.
pub fn expected(op: &Op, inputs: &[Vec<f32>], seed: u64) -> Result<Expected, BackendError> {
    if op.flops() <= FULL_REFERENCE_MAX_FLOPS && output_len(op) <= FULL_REFERENCE_MAX_OUTPUTS {
        return reference(op, inputs).map(Expected::Full);
    }
    sampled(op, inputs, seed)
}

/// The reference at a seeded sample of output positions: matmul elements, whole rows of
/// attention and of memory-bound ops; the first and last always among them.
fn sampled(op: &Op, inputs: &[Vec<f32>], seed: u64) -> Result<Expected, BackendError> {
    use crate::measure::backend::cpu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    // Whole rows of a `rows` × `width` output, each computed by `row`.
    let mut by_rows = |rows: usize, width: usize, row: &(dyn Fn(usize) -> Vec<f64> + Sync)| {
        let mut picked: Vec<usize> = (0..SAMPLES / 32)
            .map(|_| rng.random_range(0..rows))
            .collect();
        picked.extend([0, rows - 1]);
        let values: Vec<Vec<f64>> = picked.par_iter().map(|&r| row(r)).collect();
        Expected::Sampled {
            len: rows * width,
            indices: picked
                .iter()
                .flat_map(|r| (0..width).map(move |c| r * width + c))
                .collect(),
            values: values.concat(),
        }
    };
    match op {
        Op::Matmul(mm) => {
            let len = (mm.batch * mm.m * mm.n) as usize;
            let mut indices: Vec<usize> = (0..SAMPLES).map(|_| rng.random_range(0..len)).collect();
            indices.extend([0, len - 1]);
            let values = indices
                .par_iter()
                .map(|&i| cpu::matmul_element(mm, &inputs[0], &inputs[1], i))
                .collect();
            Ok(Expected::Sampled {
                len,
                indices,
                values,
            })
        }
        Op::Attention(a) => {
            let rows = (a.batch * a.q_heads * a.q_len) as usize;
            Ok(by_rows(rows, a.v_head_dim as usize, &|row| {
                cpu::attention_row(a, &inputs[0], &inputs[1], &inputs[2], row)
            }))
        }
        Op::Memory(m) => {
            let kind = crate::measure::backend::measured_memory_kind(m)?;
            let cols = m.cols as usize;
            let x = |row: usize, width: usize| &inputs[0][row * width..(row + 1) * width];
            Ok(by_rows(m.rows as usize, cols, &|row| match kind {
                MemoryKind::RmsNorm => cpu::rmsnorm(x(row, cols), &inputs[1], cols),
                MemoryKind::GatedActivation(_) => cpu::gated_silu(x(row, 2 * cols), cols),
                MemoryKind::ResidualAdd => {
                    cpu::residual_add(x(row, cols), &inputs[1][row * cols..(row + 1) * cols])
                }
                _ => cpu::rotary_row(x(row, cols), row, &cpu::RotaryLayout::standalone(m)),
            }))
        }
        Op::Scan(sc) => {
            // Whole heads: each one's outputs and final state, the first and last always.
            let heads = (sc.batch * sc.heads) as usize;
            let mut picked: Vec<usize> = (0..SAMPLES / 256)
                .map(|_| rng.random_range(0..heads))
                .collect();
            picked.extend([0, heads - 1]);
            let x = cpu::ScanInputs::from_list(inputs);
            let outs: Vec<cpu::HeadOutput> = picked
                .par_iter()
                .map(|&bh| cpu::scan_head(sc, &x, bh))
                .collect();
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for (&bh, h) in picked.iter().zip(outs) {
                let (o_at, s_at) = cpu::head_offsets(sc, bh);
                indices.extend((0..h.o.len()).map(|i| o_at + i));
                indices.extend((0..h.state.len()).map(|i| s_at + i));
                values.extend(h.o);
                values.extend(h.state);
            }
            Ok(Expected::Sampled {
                len: cpu::scan_output_len(sc),
                indices,
                values,
            })
        }
        other => Err(BackendError::Unsupported(format!(
            "no reference implementation for {other}"
        ))),
    }
}

/// Checks an output against what is expected of it.
pub fn check(out: &[f32], expected: &Expected, tolerance: f64) -> Correctness {
    match expected {
        Expected::Full(values) => compare(out, values, tolerance),
        Expected::Sampled {
            len,
            indices,
            values,
        } => {
            if out.len() != *len {
                return compare(out, &vec![0.0; *len], tolerance);
            }
            let unwritten = out.par_iter().filter(|v| !v.is_finite()).count();
            if unwritten > 0 {
                return Correctness {
                    max_rel_error: f64::INFINITY,
                    tolerance,
                    pass: false,
                    error: Some(format!(
                        "{unwritten} outputs are NaN or infinite (left unwritten?)"
                    )),
                };
            }
            let picked: Vec<f32> = indices.iter().map(|&i| out[i]).collect();
            let mut c = compare(&picked, values, tolerance);
            if c.pass {
                c.error = None;
            }
            c
        }
    }
}

/// Compares an output with the reference.
pub fn compare(out: &[f32], reference: &[f64], tolerance: f64) -> Correctness {
    if out.len() != reference.len() {
        return Correctness {
            max_rel_error: f64::INFINITY,
            tolerance,
            pass: false,
            error: Some(format!(
                "output has {} elements, expected {}",
                out.len(),
                reference.len()
            )),
        };
    }
    let scale = reference
        .iter()
        .fold(0.0f64, |m, r| m.max(r.abs()))
        .max(1e-30);
    let mut worst = 0.0f64;
    let mut nans = 0usize;
    for (o, r) in out.iter().zip(reference) {
        if !o.is_finite() {
            nans += 1;
            continue;
        }
        worst = worst.max((f64::from(*o) - r).abs() / scale);
    }
    let error = (nans > 0).then(|| format!("{nans} outputs are NaN or infinite (left unwritten?)"));
    Correctness {
        max_rel_error: if nans > 0 { f64::INFINITY } else { worst },
        tolerance,
        pass: nans == 0 && worst <= tolerance,
        error,
    }
}

/// A checked, and if correct timed, variant.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub variant: String,
    pub vendor: bool,
    pub correctness: Correctness,
    pub samples_s: Vec<f64>,
    pub warmup_runs: usize,
    pub summary: Option<Summary>,
    pub telemetry: Option<MeasuredTelemetry>,
}

/// Sensor readings around the timed samples of one variant, as records store them. Missing
/// fields read as empty and unknown ones are ignored, so records from other versions parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MeasuredTelemetry {
    pub before: crate::measure::backend::Telemetry,
    pub after: crate::measure::backend::Telemetry,
    /// Energy counter difference ÷ timed runs (includes the time between runs).
    pub energy_per_run_j: Option<f64>,
    /// Whether power or heat held the clocks down before or after the samples.
    pub throttled: bool,
}

/// The f64 reference output for `op` on `inputs`.
pub fn reference(op: &Op, inputs: &[Vec<f32>]) -> Result<Vec<f64>, BackendError> {
    match op {
        Op::Matmul(mm) => Ok(crate::measure::backend::cpu::matmul(
            mm, &inputs[0], &inputs[1],
        )),
        Op::Attention(a) => Ok(crate::measure::backend::cpu::attention(
            a, &inputs[0], &inputs[1], &inputs[2],
        )),
        Op::Memory(m) => {
            use crate::measure::backend::cpu;
            let cols = m.cols as usize;
            Ok(match crate::measure::backend::measured_memory_kind(m)? {
                MemoryKind::RmsNorm => cpu::rmsnorm(&inputs[0], &inputs[1], cols),
                MemoryKind::GatedActivation(_) => cpu::gated_silu(&inputs[0], cols),
                MemoryKind::ResidualAdd => cpu::residual_add(&inputs[0], &inputs[1]),
                _ => cpu::rotary(
                    &inputs[0],
                    m.rows as usize,
                    &cpu::RotaryLayout::standalone(m),
                ),
            })
        }
        Op::Scan(sc) => {
            use crate::measure::backend::cpu;
            Ok(cpu::scan(sc, &cpu::ScanInputs::from_list(inputs)))
        }
        other => Err(BackendError::Unsupported(format!(
            "no reference implementation for {other}"
        ))),
    }
}

/// Checks then times each variant of `op` on `backend`.
pub fn measure(
    backend: &mut dyn Backend,
    op: &Op,
    variants: &[&str],
    plan: &TimingPlan,
    seed: u64,
) -> Result<Vec<Measurement>, BackendError> {
    let set_bytes = op.min_bytes();
    let n_sets = plan
        .input_sets
        .unwrap_or_else(|| ((plan.rotate_bytes / set_bytes).ceil() as usize).clamp(1, 8))
        .max(1);
    let sets = (0..n_sets)
        .map(|i| inputs(op, seed.wrapping_add(i as u64)))
        .collect::<Result<Vec<_>, _>>()?;
    let expected = expected(op, &sets[0], seed)?;
    let tol = op_tolerance(op);
    backend.load(op, &sets)?;
    let mut out = Vec::new();
    for &variant in variants {
        let correctness = match backend.run(variant, 0) {
            Ok(result) => check(&result, &expected, tol),
            Err(e) => Correctness {
                max_rel_error: f64::INFINITY,
                tolerance: tol,
                pass: false,
                error: Some(e.to_string()),
            },
        };
        let vendor = backend
            .variants(op)
            .iter()
            .any(|v| v.name == variant && v.vendor);
        let mut m = Measurement {
            variant: variant.to_string(),
            vendor,
            correctness,
            samples_s: Vec::new(),
            warmup_runs: 0,
            summary: None,
            telemetry: None,
        };
        if m.correctness.pass {
            backend.time(variant, plan.warmup_runs)?;
            m.warmup_runs = plan.warmup_runs;
            let before = backend.telemetry();
            m.samples_s = sample(backend, variant, plan)?;
            let after = backend.telemetry();
            m.summary = Summary::of(&m.samples_s);
            m.telemetry = before.zip(after).map(|(before, after)| {
                let runs = m.samples_s.len().max(1) as f64;
                MeasuredTelemetry {
                    energy_per_run_j: before
                        .energy_j
                        .zip(after.energy_j)
                        .map(|(b, a)| (a - b) / runs),
                    throttled: !before.throttle_reasons.is_empty()
                        || !after.throttle_reasons.is_empty(),
                    before,
                    after,
                }
            });
        }
        out.push(m);
    }
    Ok(out)
}

/// Takes samples in growing batches until the noise target, the sample cap or the budget.
fn sample(
    backend: &mut dyn Backend,
    variant: &str,
    plan: &TimingPlan,
) -> Result<Vec<f64>, BackendError> {
    let start = Instant::now();
    let mut samples = backend.time(variant, plan.min_samples)?;
    while samples.len() < plan.max_samples && start.elapsed() < plan.budget {
        if Summary::of(&samples).is_some_and(|s| s.cv <= plan.target_cv) {
            break;
        }
        let more = samples.len().min(plan.max_samples - samples.len());
        samples.extend(backend.time(variant, more)?);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisoned_outputs_fail() {
        let c = compare(&[1.0, f32::NAN], &[1.0, 2.0], 1e-3);
        assert!(!c.pass && c.error.unwrap().contains("1 outputs are NaN"));
        let c = compare(&[1.0, 2.001], &[1.0, 2.0], 1e-3);
        assert!(c.pass && (c.max_rel_error - 0.0005).abs() < 1e-6);
        let c = compare(&[1.0, 2.1], &[1.0, 2.0], 1e-3);
        assert!(!c.pass);
    }

    /// A backend whose "right" variant computes the reference and whose "wrong" one is off by a
    /// little and "lazy" one leaves the output unwritten.
    struct Fake {
        info: crate::measure::backend::DeviceInfo,
        inputs: Vec<Vec<f32>>,
        op: Option<Op>,
        timed: Vec<String>,
    }

    impl Backend for Fake {
        fn device(&self) -> &crate::measure::backend::DeviceInfo {
            &self.info
        }
        fn variants(&self, _: &Op) -> Vec<crate::measure::backend::Variant> {
            Vec::new()
        }
        fn load(&mut self, op: &Op, sets: &[Vec<Vec<f32>>]) -> Result<(), BackendError> {
            self.op = Some(*op);
            self.inputs = sets[0].clone();
            Ok(())
        }
        fn run(&mut self, variant: &str, _: usize) -> Result<Vec<f32>, BackendError> {
            let op = self.op.unwrap();
            let r = reference(&op, &self.inputs)?;
            Ok(match variant {
                "right" => r.iter().map(|v| *v as f32).collect(),
                "wrong" => r.iter().map(|v| *v as f32 * 1.01).collect(),
                _ => vec![f32::NAN; r.len()],
            })
        }
        fn time(&mut self, variant: &str, runs: usize) -> Result<Vec<f64>, BackendError> {
            self.timed.push(variant.to_string());
            Ok(vec![1e-3; runs])
        }
    }

    #[test]
    fn a_failing_variant_is_reported_and_never_timed() {
        let mut fake = Fake {
            info: crate::measure::backend::DeviceInfo {
                backend: "fake".into(),
                name: "fake".into(),
                vendor: "-".into(),
                driver: "-".into(),
                device_type: "-".into(),
                memory_bytes: None,
                compute_units: None,
                timer_resolution_ns: None,
                clock: crate::measure::backend::Clock::WallClock,
                supports_f16: false,
            },
            inputs: Vec::new(),
            op: None,
            timed: Vec::new(),
        };
        let op = Op::Matmul(Matmul::new(1, 17, 9, 33, DType::Fp32));
        let plan = TimingPlan::default();
        let out = measure(&mut fake, &op, &["right", "wrong", "lazy"], &plan, 3).unwrap();
        assert!(out[0].correctness.pass && out[0].summary.is_some());
        assert!(
            !out[1].correctness.pass && out[1].samples_s.is_empty() && out[1].summary.is_none()
        );
        assert!(!out[2].correctness.pass && out[2].correctness.error.is_some());
        assert!(fake.timed.iter().all(|v| v == "right"), "{:?}", fake.timed);
    }

    #[test]
    fn sampled_reference_agrees_with_the_full_one() {
        let mm = Matmul::new(2, 300, 400, 2200, DType::Fp32);
        let op = Op::Matmul(mm);
        assert!(op.flops() > FULL_REFERENCE_MAX_FLOPS);
        let inputs = matmul_inputs(&mm, 5);
        let full = reference(&op, &inputs).unwrap();
        let Expected::Sampled {
            indices,
            values,
            len,
        } = expected(&op, &inputs, 5).unwrap()
        else {
            panic!("expected a sampled reference");
        };
        assert_eq!(len, full.len());
        for (i, v) in indices.iter().zip(&values) {
            assert!((full[*i] - v).abs() < 1e-9);
        }
        let out: Vec<f32> = full.iter().map(|v| *v as f32).collect();
        let exp = Expected::Sampled {
            len,
            indices: indices.clone(),
            values: values.clone(),
        };
        assert!(check(&out, &exp, 1e-5).pass);
        let mut bad = out.clone();
        bad[len / 2] = f32::NAN; // unwritten somewhere no sample looks
        assert!(!check(&bad, &exp, 1e-5).pass);
        let mut wrong = out;
        wrong[indices[0]] += 1.0;
        assert!(!check(&wrong, &exp, 1e-5).pass);
    }

    #[test]
    fn sampled_memory_reference_checks_whole_rows_of_every_kind() {
        use crate::model::ops::{Activation, MemoryOp, Pass};
        for kind in [
            MemoryKind::RmsNorm,
            MemoryKind::GatedActivation(Activation::Silu),
            MemoryKind::ResidualAdd,
            MemoryKind::Rotary,
        ] {
            let op = Op::Memory(MemoryOp::new(kind, Pass::Forward, 300, 256, DType::Bf16));
            let ins = inputs(&op, 4).unwrap();
            let full = reference(&op, &ins).unwrap();
            let Expected::Sampled {
                len,
                indices,
                values,
            } = sampled(&op, &ins, 4).unwrap()
            else {
                panic!("expected a sampled reference");
            };
            assert_eq!(len, full.len(), "{kind:?}");
            assert!(indices.len() >= 66 * 256 / 2 && indices.len() % 256 == 0);
            assert!(indices.contains(&0) && indices.contains(&(len - 1)));
            for (i, v) in indices.iter().zip(&values) {
                assert!((full[*i] - v).abs() < 1e-12, "{kind:?} at {i}");
            }
            let out: Vec<f32> = full.iter().map(|v| *v as f32).collect();
            let exp = Expected::Sampled {
                len,
                indices: indices.clone(),
                values,
            };
            assert!(check(&out, &exp, op_tolerance(&op)).pass, "{kind:?}");
            let mut wrong = out;
            wrong[indices[300]] += 1.0;
            assert!(!check(&wrong, &exp, op_tolerance(&op)).pass, "{kind:?}");
        }
        // A memory-bound op with more outputs than the full reference takes is sampled.
        let big = MemoryOp::new(
            MemoryKind::ResidualAdd,
            Pass::Forward,
            4097,
            1024,
            DType::Bf16,
        );
        let n = (big.rows * big.cols) as usize;
        let ins = vec![vec![0.5f32; n], vec![0.25f32; n]];
        assert!(matches!(
            expected(&Op::Memory(big), &ins, 1).unwrap(),
            Expected::Sampled { len, .. } if len == n
        ));
    }

    #[test]
    fn inputs_are_seeded_random_and_rounded() {
        let a = random_tensor(1000, DType::Fp16, 7);
        assert_eq!(a, random_tensor(1000, DType::Fp16, 7));
        assert_ne!(a, random_tensor(1000, DType::Fp16, 8));
        assert!(a.iter().all(|v| half::f16::from_f32(*v).to_f32() == *v));
        assert!(a.iter().filter(|v| **v == 0.0).count() < 5);
    }

    #[test]
    fn fp8_rounding_and_encoding() {
        assert_eq!(round_to(DType::Fp8E4m3, 0.3), 0.3125); // 1.25 · 2^-2
        assert_eq!(round_to(DType::Fp8E4m3, 1000.0), 448.0);
        assert_eq!(fp8_bits(DType::Fp8E4m3, 1.0), 0x38);
        assert_eq!(fp8_bits(DType::Fp8E4m3, -0.3125), 0x80 | (5 << 3) | 2);
        assert_eq!(fp8_bits(DType::Fp8E4m3, 2f32.powi(-9)), 0x01); // smallest subnormal
        assert_eq!(fp8_bits(DType::Fp8E5m2, 1.0), 0x3c);
        for v in random_tensor(1000, DType::Fp8E4m3, 3) {
            assert_eq!(round_to(DType::Fp8E4m3, v), v);
        }
        let ints = random_tensor(1000, DType::Int8, 3);
        assert!(ints.iter().all(|v| v.fract() == 0.0 && v.abs() <= 127.0));
        assert_eq!(round_to(DType::Tf32, 1.0 + 2f32.powi(-12)), 1.0);
    }

    #[test]
    fn tolerances_scale_with_dtype() {
        assert!(tolerance(DType::Fp32, 4096) < 1e-4);
        assert!(tolerance(DType::Fp32, 16) < tolerance(DType::Fp32, 4096));
        assert!(tolerance(DType::Fp16, 4096) > 1e-3);
    }
}
