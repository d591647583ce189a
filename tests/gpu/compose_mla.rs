//! The composition check's multi-head latent attention layer (DeepSeek-V3): the block is the
//! workload's MLA prefill layer, its kernels (the query rotary in place, the shared rotary key,
//! the key assembly, attention with keys wider than values) match the f64 reference on lavapipe,
//! and each part of the latent attention is wired.

use crate::common::{self, path};
use gpucost::measure::backend::Backend;
use gpucost::measure::backend::block::{self, BlockInputs, BlockShape};
use gpucost::measure::backend::block_mla;
use gpucost::measure::compose;
use gpucost::measure::harness::{self, TimingPlan};
use gpucost::model::arch::Architecture;
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Activation, Attention, Op, Pass};

fn example() -> Architecture {
    gpucost::model::arch::load(&path("examples/compose/deepseek-v3-layer.toml")).unwrap()
}

/// The same layer with one query projection instead of the query latent (DeepSeek-V2-Lite's
/// form, `q_lora_rank` 0).
fn without_query_latent() -> Architecture {
    let mut arch = example();
    if let Some(m) = arch.mla.as_mut() {
        m.q_lora_rank = 0;
    }
    arch
}

fn names(b: &BlockShape) -> Vec<&str> {
    b.ops.iter().map(|(n, _)| n.as_str()).collect()
}

/// The block runs the ops `predict` prices for an MLA prefill layer, key assembly included, at
/// the published DeepSeek-V3 config's sizes as at the example's.
pub fn the_mla_block_is_the_workloads_prefill_layer() {
    let b = compose::block_shape(&example(), 2, 9, DType::Fp32).unwrap();
    assert_eq!(names(&b), block_mla::block_ops(true, Activation::Silu));
    let a = b.attention();
    assert_eq!(
        (a.q_heads, a.kv_heads, a.qk_head_dim, a.v_head_dim),
        (4, 4, 48, 32)
    );
    // One key per token and head: its 32 rope-less columns and the 16 shared rotary ones.
    match b.op("k-assemble") {
        Some(Op::Memory(m)) => assert_eq!((m.rows, m.cols), (18, 4 * 48)),
        other => panic!("k-assemble: {other:?}"),
    }
    let v3 = gpucost::model::arch::load(&path("tests/fixtures/deepseek-v3.json")).unwrap();
    let b = compose::block_shape(&v3, 1, 16, DType::Bf16).unwrap();
    assert_eq!(names(&b), block_mla::block_ops(true, Activation::Silu));
    let a = b.attention();
    assert_eq!((a.q_heads, a.qk_head_dim, a.v_head_dim), (128, 192, 128));
    let b = compose::block_shape(&without_query_latent(), 1, 9, DType::Fp32).unwrap();
    assert_eq!(names(&b), block_mla::block_ops(false, Activation::Silu));
    assert!(names(&b).contains(&"q") && !names(&b).contains(&"q-down"));
}

/// The fused attention kernel with keys wider than values and each head's own keys (the
/// decompressed MLA prefill's attention, DeepSeek-V3's 192 and 128), on its own, against the
/// f64 reference: odd lengths, causal and not, two sequences.
pub fn fused_attention_takes_keys_wider_than_values() {
    let mut backend = common::wgpu();
    let plan = TimingPlan {
        warmup_runs: 0,
        min_samples: 1,
        max_samples: 1,
        ..Default::default()
    };
    for (causal, (qk, v)) in [(true, (192, 128)), (false, (48, 32))] {
        let op = Op::Attention(Attention {
            batch: 2,
            q_heads: 3,
            kv_heads: 3,
            q_len: 37,
            kv_len: 37,
            qk_head_dim: qk,
            v_head_dim: v,
            causal,
            window: None,
            dtype: DType::Fp32,
            kv_dtype: DType::Fp32,
            fused: true,
            pass: Pass::Forward,
            shared_kv: false,
        });
        for m in harness::measure(&mut backend, &op, &["fused"], &plan, 3).unwrap() {
            assert!(m.correctness.pass, "{op}: {:?}", m.correctness);
        }
    }
}

type Edit = fn(&mut BlockShape, &mut BlockInputs);

fn mla(w: &mut BlockInputs) -> &mut block_mla::MlaWeights {
    w.mla.as_mut().unwrap()
}

/// Changes to one part of the latent attention each: the device output must fail against the
/// reference with that part changed, so a kernel that skipped or misplaced it would be caught.
fn edits() -> Vec<(&'static str, Edit)> {
    vec![
        // Row 0 of kv-down, column 64: the first element of the shared rotary key.
        ("the shared rotary key", |_, w| {
            mla(w).kv_down[64] += 1.0;
        }),
        // Row 0 of q-up, column 32: the first rotary element of query head 0.
        ("a query head's rotary part", |_, w| {
            mla(w).q_up[32] += 1.0;
        }),
        ("the key/value latent's norm", |_, w| {
            mla(w).kv_norm[3] += 4.0;
        }),
        // Row 0 of kv-up, column 33: a value column of head 0 (after its 32 key columns).
        ("a value", |_, w| {
            mla(w).kv_up[33] += 1.0;
        }),
        // The rotary angles (query and shared key alike).
        ("the rotary base", |b, _| b.theta = 500.0),
    ]
}

/// The MLA layer on lavapipe matches its f64 reference, whole and on prefixes, with and without
/// the query latent, and each part of its attention is wired.
pub fn the_mla_block_matches_its_reference_and_each_part_is_wired() {
    let mut backend = common::wgpu();
    for (what, arch) in [
        ("query latent", example()),
        ("query projection", without_query_latent()),
    ] {
        // Two sequences of 45 tokens: batch strides and partial tiles in every kernel.
        let b = compose::block_shape(&arch, 2, 45, DType::Fp32).unwrap();
        let m = compose::measure(&mut backend, &b, 1, 7).unwrap();
        assert!(m.correctness.pass, "{what}: {:?}", m.correctness);
        assert_eq!(m.ops.len(), b.ops.len());
        let m = compose::measure_with(&mut backend, &b, 1, 7, 0.0).unwrap();
        assert!(
            m.correctness.pass,
            "{what} on prefixes: {:?}",
            m.correctness
        );
        let inputs = compose::inputs(&b, 7);
        let run = backend.run_block(&b, &inputs, 1).unwrap();
        let mut edits = edits();
        if what == "query latent" {
            edits.push(("the query latent's norm", |_, w| {
                mla(w).q_norm[5] += 4.0;
            }));
        }
        for (part, edit) in edits {
            let (mut b2, mut w2) = (b.clone(), inputs.clone());
            edit(&mut b2, &mut w2);
            let other = block::reference(&b2, &w2.x, &w2, &|v| v as f32);
            let c = harness::compare(&run.output, &other, compose::tolerance_of(&b));
            assert!(!c.pass, "{what}: changing {part} went unnoticed: {c:?}");
        }
    }
    if backend.device().supports_f16 {
        let b = compose::block_shape(&example(), 1, 48, DType::Fp16).unwrap();
        let m = compose::measure(&mut backend, &b, 1, 3).unwrap();
        assert!(m.correctness.pass, "f16: {:?}", m.correctness);
    } else {
        eprintln!("adapter has no shader-f16: f16 MLA block not checked");
    }
}
