//! Every CUDA kernel file of the spec table compiles with NVRTC for sm_80, sm_89 and sm_90a
//! through the same code path the program uses, defines every entry point its spec declares, and
//! takes the arguments its spec's launches pass.

use gpucost::measure::backend::cuda::{
    Arg, BLOCK_SPECS, Cuda, Layouts, QkNormLayout, SPECS, nvrtc, specs,
};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Activation, Attention, Matmul, MemoryKind, MemoryOp, Op, Pass};
use std::collections::{BTreeSet, HashMap};

const ARCHS: [&str; 3] = ["compute_80", "compute_89", "compute_90a"];

/// Ops of every class and dtype the CUDA kernels serve, enough for every entry point to be
/// launched by one.
fn sample_ops() -> Vec<Op> {
    let mut out = Vec::new();
    for dtype in [
        DType::Fp32,
        DType::Tf32,
        DType::Fp16,
        DType::Bf16,
        DType::Int8,
        DType::Fp8E4m3,
    ] {
        out.push(Op::Matmul(Matmul::new(1, 128, 256, 64, dtype)));
    }
    for dtype in [DType::Fp16, DType::Bf16] {
        for d in [64, 128] {
            for q_len in [1, 64] {
                out.push(Op::Attention(Attention {
                    batch: 2,
                    q_heads: 4,
                    kv_heads: 2,
                    q_len,
                    kv_len: 300,
                    qk_head_dim: d,
                    v_head_dim: d,
                    causal: q_len > 1,
                    window: None,
                    dtype,
                    kv_dtype: dtype,
                    fused: true,
                    pass: Pass::Forward,
                    shared_kv: false,
                }));
            }
        }
    }
    // Absorbed MLA decode: DeepSeek-V3's 128 heads over one shared latent K/V head.
    for dtype in [DType::Fp16, DType::Bf16] {
        out.push(Op::Attention(Attention {
            batch: 2,
            q_heads: 128,
            kv_heads: 1,
            q_len: 1,
            kv_len: 1000,
            qk_head_dim: specs::MLA_QK_HEAD_DIM,
            v_head_dim: specs::MLA_V_HEAD_DIM,
            causal: true,
            window: None,
            dtype,
            kv_dtype: dtype,
            fused: true,
            pass: Pass::Forward,
            shared_kv: true,
        }));
    }
    for dtype in [DType::Fp32, DType::Fp16, DType::Bf16] {
        for kind in [
            MemoryKind::RmsNorm,
            MemoryKind::GatedActivation(Activation::Silu),
            MemoryKind::ResidualAdd,
            MemoryKind::Rotary,
        ] {
            out.push(Op::Memory(MemoryOp {
                kind,
                pass: Pass::Forward,
                rows: 4,
                cols: 256,
                dtype,
            }));
        }
        out.push(Op::Scan(gpucost::model::ops::Scan {
            batch: 2,
            heads: 3,
            seq: 100,
            key_dim: 128,
            value_dim: 40,
            chunk: 64,
            dtype,
            pass: Pass::Forward,
        }));
    }
    out
}

/// A kernel parameter as PTX declares it, or an argument as a spec passes it: (type class,
/// bytes).
fn ptx_param(line: &str) -> (&'static str, usize) {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let ty = tokens
        .iter()
        .skip(1)
        .find(|t| !matches!(**t, ".align" | ".ptr" | ".global") && t.starts_with('.'))
        .copied()
        .unwrap_or("?");
    match ty {
        ".u64" | ".s64" | ".b64" => ("int", 8),
        ".u32" | ".s32" | ".b32" => ("int", 4),
        ".f32" => ("float", 4),
        ".b8" => {
            let n = line
                .rsplit_once('[')
                .and_then(|(_, n)| n.trim_end_matches([']', ',', ' ']).parse().ok())
                .unwrap_or(0);
            ("aggregate", n)
        }
        _ => ("?", 0),
    }
}

fn arg_kind(a: &Arg) -> (&'static str, usize) {
    match a {
        Arg::Buf(_) | Arg::I64(_) => ("int", 8),
        Arg::I32(_) => ("int", 4),
        Arg::F32(_) => ("float", 4),
        // The kernel's AttnLayout: four structs of four long longs.
        Arg::Layout(_) => ("aggregate", 128),
    }
}

/// The parameters of entry `name` in `ptx`, or None where it is not defined.
fn entry_params(ptx: &str, name: &str) -> Option<Vec<(&'static str, usize)>> {
    let start = ptx.find(&format!(".entry {name}("))?;
    let body = &ptx[start..];
    let end = body.find(')')?;
    Some(
        body[..end]
            .lines()
            .filter(|l| l.trim_start().starts_with(".param"))
            .map(ptx_param)
            .collect(),
    )
}

pub fn every_kernel_file_compiles_for_ampere_ada_and_hopper_with_its_entry_points() {
    let sources = specs::sources();
    assert!(!sources.is_empty());
    let mut failures = Vec::new();
    for source in &sources {
        let entries: Vec<&str> = SPECS
            .iter()
            .chain(BLOCK_SPECS)
            .filter_map(|s| match s.kernel {
                Cuda::Nvrtc {
                    source: src,
                    entries,
                    ..
                } if src.file == source.file => Some(entries),
                _ => None,
            })
            .flatten()
            .copied()
            .collect();
        for arch in ARCHS {
            match nvrtc::compile(source.file, source.text, arch) {
                Ok(ptx) => {
                    let ptx = ptx.to_src();
                    for e in &entries {
                        if entry_params(&ptx, e).is_none() {
                            failures.push(format!("{} {arch}: no entry {e}", source.file));
                        }
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What each spec launches names a declared entry point, and every declared entry point is
/// launched for some op: the table and the sample ops cover every kernel. Needs no NVRTC.
pub fn every_declared_entry_point_is_launched_and_every_launch_is_declared() {
    let ops = sample_ops();
    for spec in SPECS {
        let Cuda::Nvrtc {
            source,
            entries,
            launches,
        } = spec.kernel
        else {
            assert!(spec.variant.vendor, "{}: no source", spec.variant.name);
            continue;
        };
        assert!(!spec.variant.vendor, "{}: ours", spec.variant.name);
        let mut launched = BTreeSet::new();
        for op in ops.iter().filter(|op| spec.takes(op)) {
            for l in launches(op, &Layouts::default()).unwrap() {
                assert!(
                    entries.contains(&l.entry.as_str()),
                    "{}: {op} launches undeclared {}",
                    source.file,
                    l.entry
                );
                assert!(l.grid.0 > 0 && l.grid.1 > 0 && l.grid.2 > 0, "{l:?}");
                launched.insert(l.entry);
            }
        }
        let declared: BTreeSet<String> = entries.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            launched, declared,
            "{}: entry points never launched",
            source.file
        );
    }
}

/// Every launch passes the arguments its kernel takes: count, and each one's type and size,
/// against the PTX signature.
pub fn every_launch_matches_its_kernel_signature() {
    let mut ptx: HashMap<&str, String> = HashMap::new();
    let mut failures = Vec::new();
    for op in sample_ops() {
        for spec in SPECS.iter().filter(|s| s.takes(&op)) {
            let Cuda::Nvrtc {
                source, launches, ..
            } = spec.kernel
            else {
                continue;
            };
            let text = ptx.entry(source.file).or_insert_with(|| {
                nvrtc::compile(source.file, source.text, "compute_89")
                    .unwrap()
                    .to_src()
            });
            for l in launches(&op, &Layouts::default()).unwrap() {
                let params = entry_params(text, &l.entry).unwrap_or_default();
                let args: Vec<_> = l.args.iter().map(arg_kind).collect();
                if params != args {
                    failures.push(format!(
                        "{} {} for {op}: kernel takes {params:?}, spec passes {args:?}",
                        source.file, l.entry
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The block's own kernels (QK-norm, GeGLU): each declared entry point is launched, for f16 and
/// bf16, with the arguments its kernel takes; QK-norm is refused outside a block.
pub fn block_kernels_launch_what_they_declare_with_matching_signatures() {
    let layouts = Layouts {
        qk_norm: Some(QkNormLayout {
            heads: 6,
            q_heads: 4,
            in_row: 512,
        }),
        ..Layouts::default()
    };
    let mut failures = Vec::new();
    for spec in BLOCK_SPECS {
        let Cuda::Nvrtc {
            source,
            entries,
            launches,
        } = spec.kernel
        else {
            panic!("{}: a block kernel is ours", spec.variant.name);
        };
        let ptx = nvrtc::compile(source.file, source.text, "compute_89")
            .unwrap()
            .to_src();
        let mut launched = BTreeSet::new();
        for dtype in [DType::Fp16, DType::Bf16] {
            for kind in [
                MemoryKind::RmsNorm,
                MemoryKind::GatedActivation(Activation::Gelu),
            ] {
                let op = Op::Memory(MemoryOp::new(kind, Pass::Forward, 24, 64, dtype));
                if !spec.takes(&op) {
                    continue;
                }
                if kind == MemoryKind::RmsNorm {
                    assert!(launches(&op, &Layouts::default()).is_err());
                }
                for l in launches(&op, &layouts).unwrap() {
                    let params = entry_params(&ptx, &l.entry).unwrap_or_default();
                    let args: Vec<_> = l.args.iter().map(arg_kind).collect();
                    if params != args {
                        failures.push(format!(
                            "{} {}: kernel takes {params:?}, spec passes {args:?}",
                            source.file, l.entry
                        ));
                    }
                    launched.insert(l.entry);
                }
            }
        }
        let declared: BTreeSet<String> = entries.iter().map(|e| e.to_string()).collect();
        assert_eq!(launched, declared, "{}", source.file);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The tensor-core kernels really use the tensor-core instructions (and fp8 only where it exists).
pub fn mma_kernels_emit_mma_instructions() {
    if !nvrtc::available() || nvrtc::include_dir().is_err() {
        eprintln!("skipping: no NVRTC");
        return;
    }
    let source = specs::sources()
        .into_iter()
        .find(|s| s.file == "matmul_mma.cu")
        .unwrap();
    let ptx = nvrtc::compile(source.file, source.text, "compute_89")
        .unwrap()
        .to_src();
    for needle in [
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32",
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32",
        "cp.async.cg.shared.global",
    ] {
        assert!(ptx.contains(needle), "compute_89 PTX lacks {needle}");
    }
    let ampere = nvrtc::compile(source.file, source.text, "compute_80")
        .unwrap()
        .to_src();
    assert!(
        !ampere.contains("e4m3.e4m3"),
        "fp8 MMA must not be emitted for sm_80"
    );
    // The MLA decode kernel runs its scores and P·V on tensor cores, its tiles staged through
    // ldmatrix, and stays within the 48 KiB of static shared memory a launch gets by default.
    let mla = specs::sources()
        .into_iter()
        .find(|s| s.file == "attention_mla_decode.cu")
        .unwrap();
    let ptx = nvrtc::compile(mla.file, mla.text, "compute_80")
        .unwrap()
        .to_src();
    for needle in [
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
        "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16",
    ] {
        assert!(ptx.contains(needle), "MLA decode PTX lacks {needle}");
    }
    // The shared arrays are named after the template instance (mla_partial<__half>, ...).
    for instance in ["mla_partialI6__half", "mla_partialI13__nv_bfloat16"] {
        let shared: u64 = ptx
            .lines()
            .filter(|l| l.contains(".shared .align") && l.contains(instance))
            .filter_map(|l| l.split('[').nth(1)?.split(']').next()?.parse::<u64>().ok())
            .sum();
        assert!(
            shared > 0 && shared <= 48 * 1024,
            "{instance}: {shared} bytes of shared memory"
        );
    }
}
