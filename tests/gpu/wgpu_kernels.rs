//! Every WGSL kernel of the spec table, in every dtype, checked against the f64 reference on a
//! real wgpu adapter (Mesa's lavapipe in CI).

use crate::common;
use gpucost::measure::backend::Backend;
use gpucost::measure::backend::wgpu::SPECS;
use gpucost::measure::harness::{self, TimingPlan};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Op, OpClass};

/// Checks (and briefly times) every variant the backend offers on every smoke shape of `class`,
/// in both dtypes: each shape is offered exactly the kernels of the table that take it, and every
/// kernel of the table for the class is checked on at least one shape.
fn check_smoke_shapes(class: OpClass) {
    let mut backend = common::wgpu();
    eprintln!("adapter: {:?}", backend.device());
    let plan = TimingPlan {
        warmup_runs: 1,
        min_samples: 2,
        max_samples: 2,
        ..TimingPlan::default()
    };
    let mut checked = vec![false; SPECS.len()];
    let mut dtypes = Vec::new();
    for dtype in [DType::Fp32, DType::Fp16] {
        if dtype == DType::Fp16 && !backend.device().supports_f16 {
            eprintln!("adapter has no shader-f16: fp16 variants not checked");
            continue;
        }
        dtypes.push(dtype);
        let ops: Vec<Op> = match class {
            OpClass::Matmul => harness::shapes::matmul_shapes("smoke", dtype, f64::INFINITY)
                .unwrap()
                .into_iter()
                .map(Op::Matmul)
                .collect(),
            OpClass::Memory => harness::shapes::memory_shapes("smoke", dtype, f64::INFINITY)
                .unwrap()
                .into_iter()
                .map(Op::Memory)
                .collect(),
            OpClass::Scan => harness::shapes::scan_shapes("smoke", dtype, f64::INFINITY)
                .unwrap()
                .into_iter()
                .map(Op::Scan)
                .collect(),
            _ => harness::shapes::attention_shapes("smoke", dtype, f64::INFINITY)
                .unwrap()
                .into_iter()
                .map(Op::Attention)
                .collect(),
        };
        for op in ops {
            let variants: Vec<&str> = backend.variants(&op).iter().map(|v| v.name).collect();
            let expected: Vec<&str> = SPECS
                .iter()
                .filter(|s| s.takes(&op))
                .map(|s| s.variant.name)
                .collect();
            assert_eq!(variants, expected, "{op}");
            assert!(!variants.is_empty(), "{op}: no kernel");
            for (i, spec) in SPECS.iter().enumerate() {
                checked[i] |= spec.takes(&op);
            }
            for m in harness::measure(&mut backend, &op, &variants, &plan, 42).unwrap() {
                assert!(
                    m.correctness.pass,
                    "{op} {}: {:?}",
                    m.variant, m.correctness
                );
                assert_eq!(m.samples_s.len(), 2);
                assert!(m.samples_s.iter().all(|s| *s > 0.0), "{:?}", m.samples_s);
            }
        }
    }
    for (spec, checked) in SPECS.iter().zip(checked) {
        let files: Vec<&str> = spec.kernel.stages.iter().map(|s| s.source.file).collect();
        let in_scope =
            spec.serves.class() == class && dtypes.iter().any(|d| spec.dtypes.contains(d));
        assert!(
            checked || !in_scope,
            "{} {files:?}: no smoke shape runs it",
            spec.variant.name
        );
    }
}

pub fn every_matmul_kernel_matches_the_reference_on_smoke_shapes() {
    check_smoke_shapes(OpClass::Matmul);
}

pub fn every_attention_kernel_matches_the_reference_on_smoke_shapes() {
    check_smoke_shapes(OpClass::Attention);
}

pub fn every_memory_kernel_matches_the_reference_on_smoke_shapes() {
    check_smoke_shapes(OpClass::Memory);
}

pub fn every_scan_kernel_matches_the_reference_on_smoke_shapes() {
    check_smoke_shapes(OpClass::Scan);
}

/// A long fp16 sequence (8192 tokens, dk 128): the state is kept in fp32, so the error stays
/// at the dtype's output rounding instead of growing with the length, and the unrolled kernel
/// stays under llvmpipe's loop-trip cap (the looped first version left these outputs unwritten).
pub fn a_long_scan_stays_within_its_tolerance() {
    let mut backend = common::wgpu();
    let dtype = if backend.device().supports_f16 {
        DType::Fp16
    } else {
        DType::Fp32
    };
    let op = Op::Scan(gpucost::model::ops::Scan {
        batch: 1,
        heads: 1,
        seq: 8192,
        key_dim: 128,
        value_dim: 32,
        chunk: 64,
        dtype,
        pass: gpucost::model::ops::Pass::Forward,
    });
    let plan = TimingPlan {
        warmup_runs: 0,
        min_samples: 1,
        max_samples: 1,
        ..TimingPlan::default()
    };
    for m in harness::measure(&mut backend, &op, &["recurrent"], &plan, 7).unwrap() {
        eprintln!("{op}: {:?}", m.correctness);
        assert!(m.correctness.pass, "{op}: {:?}", m.correctness);
    }
}

/// A real kernel's output, compared with the reference of other inputs, must fail the check.
pub fn a_wrong_answer_fails_the_check() {
    let mut backend = common::wgpu();
    let mm = gpucost::model::ops::Matmul::new(1, 16, 16, 16, DType::Fp32);
    let op = Op::Matmul(mm);
    let sets = vec![harness::matmul_inputs(&mm, 1)];
    backend.load(&op, &sets).unwrap();
    let out = backend.run("regblock", 0).unwrap();
    // Reference computed from different inputs: the comparison must fail.
    let other = harness::matmul_inputs(&mm, 2);
    let wrong_ref = harness::reference(&op, &other).unwrap();
    let c = harness::compare(&out, &wrong_ref, harness::tolerance(DType::Fp32, 16));
    assert!(!c.pass);
}

/// Attention whose values are the first columns of its keys (absorbed MLA's latent, at a width
/// the WGSL kernels take): the harness hands the kernels V as those columns, and the reference
/// reads them from K, so a kernel passes only if both agree.
pub fn shared_kv_attention_matches_the_reference() {
    use gpucost::model::ops::{Attention, Pass};
    let mut backend = common::wgpu();
    let plan = TimingPlan {
        warmup_runs: 0,
        min_samples: 1,
        max_samples: 1,
        ..Default::default()
    };
    for (q_len, kv_len) in [(1, 77), (9, 9)] {
        let op = Op::Attention(Attention {
            batch: 2,
            q_heads: 8,
            kv_heads: 1,
            q_len,
            kv_len,
            qk_head_dim: 96,
            v_head_dim: 64,
            causal: true,
            window: None,
            dtype: DType::Fp32,
            kv_dtype: DType::Fp32,
            fused: true,
            pass: Pass::Forward,
            shared_kv: true,
        });
        let variants: Vec<&str> = backend.variants(&op).iter().map(|v| v.name).collect();
        assert!(!variants.is_empty(), "{op}: no kernel");
        for m in harness::measure(&mut backend, &op, &variants, &plan, 5).unwrap() {
            assert!(
                m.correctness.pass,
                "{op} {}: {:?}",
                m.variant, m.correctness
            );
        }
    }
}
