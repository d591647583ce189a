//! Every CUDA kernel file of the spec table compiles with NVRTC through the same code path the
//! program uses — for sm_80, sm_89 and sm_90a, or for sm_90a alone where its target is Hopper's
//! architecture-specific instructions — defines every entry point its spec declares, and takes
//! the arguments its spec's launches pass.

use gpucost::measure::backend::cuda::{
    Arg, BLOCK_SPECS, Cuda, Launch, Layouts, QkNormLayout, SPECS, Target, nvrtc, specs,
};
use gpucost::model::dtype::DType;
use gpucost::model::ops::{Activation, Attention, Matmul, MemoryKind, MemoryOp, Op, Pass};
use std::collections::{BTreeSet, HashMap};

/// The architecture a file's PTX signatures are read from: sm_89 (fp8 MMA) for files every
/// device runs, sm_90a for Hopper-only files.
fn signature_arch(file: &str) -> &'static str {
    match specs::target_of(file) {
        Target::Any => "compute_89",
        Target::Sm90a => "compute_90a",
    }
}

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
        // A CUtensorMap: sixteen 64-bit words.
        Arg::TensorMap(_) => ("aggregate", 128),
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
        for arch in specs::target_of(source.file).archs() {
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
            ..
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
                nvrtc::compile(source.file, source.text, signature_arch(source.file))
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
            ..
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

fn source_named(file: &str) -> gpucost::measure::backend::spec::Source {
    specs::sources()
        .into_iter()
        .find(|s| s.file == file)
        .unwrap()
}

/// The PTX of entry `name`: from its `.entry` line to the next one.
fn entry_body<'a>(ptx: &'a str, name: &str) -> &'a str {
    let start = ptx
        .find(&format!(".entry {name}("))
        .unwrap_or_else(|| panic!("no entry {name}"));
    let rest = &ptx[start + 1..];
    &ptx[start..start + 1 + rest.find(".entry ").unwrap_or(rest.len())]
}

/// The Hopper GEMM is one: compiled for compute_90a alone, each entry point's PTX holds the
/// wgmma of its type and tile, TMA tensor loads, the mbarrier pipeline and the register
/// hand-over between producer and consumers, and the file holds no mma.sync or ldmatrix it could
/// have fallen back to.
pub fn wgmma_kernels_emit_hopper_instructions() {
    let source = source_named("matmul_wgmma.cu");
    assert_eq!(specs::target_of(source.file), Target::Sm90a);
    assert_eq!(Target::Sm90a.archs(), ["compute_90a"]);
    let ptx = nvrtc::compile(source.file, source.text, "compute_90a")
        .unwrap()
        .to_src();
    for (ty, k) in [("f16", 16), ("bf16", 16), ("e4m3", 32)] {
        for (tile, n) in [("m128n256", 256), ("m64n128", 128)] {
            let entry = format!("wgmma_{ty}_{tile}");
            let body = entry_body(&ptx, &entry);
            for needle in [
                format!("wgmma.mma_async.sync.aligned.m64n{n}k{k}.f32.{ty}.{ty}"),
                "wgmma.fence.sync.aligned".into(),
                "wgmma.commit_group.sync.aligned".into(),
                "wgmma.wait_group.sync.aligned".into(),
                "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                    .into(),
                "mbarrier.init.shared::cta.b64".into(),
                "mbarrier.arrive.expect_tx.shared::cta.b64".into(),
                "mbarrier.try_wait.parity.shared::cta.b64".into(),
                "setmaxnreg.dec.sync.aligned.u32 40".into(),
                "setmaxnreg.inc.sync.aligned.u32 232".into(),
            ] {
                assert!(body.contains(&needle), "{entry}: PTX lacks {needle}");
            }
        }
    }
    for absent in ["mma.sync", "ldmatrix", "cp.async.cg"] {
        assert!(!ptx.contains(absent), "matmul_wgmma.cu emits {absent}");
    }
}

/// The Hopper attention kernel too: compiled for compute_90a alone, each entry point's PTX holds
/// Q·Kᵀ as m64n128k16 wgmma from shared memory, P·V as m64n{d}k16 wgmma with A in registers,
/// TMA tensor loads, the mbarrier ring and the register hand-over; no mma.sync or ldmatrix.
pub fn attention_wgmma_kernel_emits_hopper_instructions() {
    let source = source_named("attention_wgmma.cu");
    assert_eq!(specs::target_of(source.file), Target::Sm90a);
    let ptx = nvrtc::compile(source.file, source.text, "compute_90a")
        .unwrap()
        .to_src();
    for ty in ["f16", "bf16"] {
        for d in [64, 128] {
            let entry = format!("attn_wgmma_{ty}_d{d}");
            let body = entry_body(&ptx, &entry);
            let wgmma = |shape: &str| format!("wgmma.mma_async.sync.aligned.{shape}.f32.{ty}.{ty}");
            // Q·Kᵀ: both operands descriptors (two 64-bit registers after the accumulators).
            let qk = body
                .lines()
                .any(|l| l.contains(&wgmma("m64n128k16")) && l.contains("}, %rd"));
            assert!(
                qk,
                "{entry}: PTX lacks Q·Kᵀ as m64n128k16 from shared memory"
            );
            // P·V: A as four 32-bit registers, B a descriptor.
            let pv = body
                .lines()
                .any(|l| l.contains(&wgmma(&format!("m64n{d}k16"))) && l.contains("}, {%r"));
            assert!(
                pv,
                "{entry}: PTX lacks P·V as m64n{d}k16 with A in registers"
            );
            for needle in [
                "wgmma.fence.sync.aligned",
                "wgmma.commit_group.sync.aligned",
                "wgmma.wait_group.sync.aligned",
                "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes",
                "mbarrier.init.shared::cta.b64",
                "mbarrier.arrive.expect_tx.shared::cta.b64",
                "mbarrier.try_wait.parity.shared::cta.b64",
                "setmaxnreg.dec.sync.aligned.u32 40",
                "setmaxnreg.inc.sync.aligned.u32 232",
            ] {
                assert!(body.contains(needle), "{entry}: PTX lacks {needle}");
            }
        }
    }
    for absent in ["mma.sync", "ldmatrix", "cp.async.cg"] {
        assert!(!ptx.contains(absent), "attention_wgmma.cu emits {absent}");
    }
}

/// Every sm_90a kernel, compiled to a CUBIN by NVRTC with ptxas verbose: no spills, no ptxas
/// warning (a serialized wgmma among them), registers × threads within the SM's 64K, the
/// producer's released registers enough for the consumers' setmaxnreg.inc, and static plus
/// dynamic shared memory within the 227 KiB a Hopper block may have. Prints the table
/// docs/hopper-kernels.md quotes (`cargo test --test gpu -- hopper_kernels --nocapture`).
pub fn hopper_kernels_fit_the_sm() {
    const REGISTERS: u32 = 64 * 1024;
    const SMEM_PER_BLOCK: u32 = 227 * 1024;
    // Each Hopper entry point's launch for the sample ops: threads per block, dynamic smem.
    let mut launched: HashMap<String, Launch> = HashMap::new();
    let mut files = BTreeSet::new();
    for op in sample_ops() {
        for spec in SPECS.iter().filter(|s| s.takes(&op)) {
            if let Cuda::Nvrtc {
                source,
                launches,
                target: Target::Sm90a,
                ..
            } = spec.kernel
            {
                files.insert(source.file);
                for l in launches(&op, &Layouts::default()).unwrap() {
                    launched.insert(l.entry.clone(), l);
                }
            }
        }
    }
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    eprintln!(
        "{:<22} {:>7} {:>5} {:>6} {:>7} {:>11} {:>12}",
        "entry (sm_90a)", "threads", "regs", "spills", "stack", "static smem", "dynamic smem"
    );
    for file in files {
        let source = source_named(file);
        let (entries, warnings) = nvrtc::resources(file, source.text, "sm_90a").unwrap();
        failures.extend(warnings.iter().map(|w| format!("{file}: {w}")));
        for r in entries {
            let Some(l) = launched.get(&r.entry) else {
                failures.push(format!("{file}: {} is never launched", r.entry));
                continue;
            };
            let threads = l.block.0 * l.block.1 * l.block.2;
            eprintln!(
                "{:<22} {threads:>7} {:>5} {:>6} {:>7} {:>11} {:>12}",
                r.entry,
                r.registers,
                r.spill_stores_bytes + r.spill_loads_bytes,
                r.stack_bytes,
                r.static_smem_bytes,
                l.smem
            );
            if r.spill_stores_bytes + r.spill_loads_bytes > 0 {
                failures.push(format!("{}: spills {r:?}", r.entry));
            }
            if r.registers * threads > REGISTERS {
                failures.push(format!(
                    "{}: {} registers × {threads}",
                    r.entry, r.registers
                ));
            }
            // One producer warpgroup drops to 40 registers; the consumers rise to 232.
            let consumers = threads - 128;
            if 128 * r.registers.saturating_sub(40) < consumers * 232u32.saturating_sub(r.registers)
            {
                failures.push(format!(
                    "{}: {} registers leave too few for setmaxnreg.inc 232",
                    r.entry, r.registers
                ));
            }
            if r.static_smem_bytes + l.smem > SMEM_PER_BLOCK {
                failures.push(format!(
                    "{}: {} + {} bytes of shared memory",
                    r.entry, r.static_smem_bytes, l.smem
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fp32 SIMT GEMM (matmul_fp32_simt.cu), compiled to a CUBIN for sm_80 and sm_90a with
/// ptxas verbose: no spills, no stack, no ptxas warning, and registers low enough that two
/// 128×128 blocks (four 64×64 ones) share an SM, so one block's loads overlap another's math;
/// the static shared memory (two stages of A and B) within the 48 KiB a block has without
/// opting in. Prints the table docs/measurements.md quotes
/// (`cargo test --test gpu -- simt_gemm --nocapture`).
pub fn simt_gemm_fits_the_sm() {
    const REGISTERS: u32 = 64 * 1024;
    const STATIC_SMEM: u32 = 48 * 1024;
    let op = Op::Matmul(Matmul::new(1, 256, 256, 256, DType::Fp32));
    // Each entry's launch, and how many of its blocks must fit an SM's registers at once.
    let mut launched: HashMap<String, (Launch, u32)> = HashMap::new();
    for (variant, resident) in [("simt", 2), ("simt-64", 4)] {
        let spec = SPECS.iter().find(|s| s.variant.name == variant).unwrap();
        let Cuda::Nvrtc {
            source, launches, ..
        } = spec.kernel
        else {
            panic!("{variant} is ours")
        };
        assert_eq!(source.file, "matmul_fp32_simt.cu");
        for l in launches(&op, &Layouts::default()).unwrap() {
            launched.insert(l.entry.clone(), (l, resident));
        }
    }
    let source = source_named("matmul_fp32_simt.cu");
    let mut failures = Vec::new();
    eprintln!(
        "{:<22} {:>6} {:>7} {:>5} {:>6} {:>6} {:>12}",
        "entry", "arch", "threads", "regs", "spills", "stack", "static smem"
    );
    for arch in ["sm_80", "sm_90a"] {
        let (entries, warnings) = nvrtc::resources(source.file, source.text, arch).unwrap();
        failures.extend(warnings.iter().map(|w| format!("{arch}: {w}")));
        assert_eq!(entries.len(), launched.len(), "{arch}: {entries:?}");
        for r in entries {
            let (l, resident) = &launched[&r.entry];
            let threads = l.block.0 * l.block.1 * l.block.2;
            eprintln!(
                "{:<22} {arch:>6} {threads:>7} {:>5} {:>6} {:>6} {:>12}",
                r.entry,
                r.registers,
                r.spill_stores_bytes + r.spill_loads_bytes,
                r.stack_bytes,
                r.static_smem_bytes
            );
            if r.spill_stores_bytes + r.spill_loads_bytes > 0 || r.stack_bytes > 0 {
                failures.push(format!("{} {arch}: spills or stack {r:?}", r.entry));
            }
            if r.registers * threads * resident > REGISTERS {
                failures.push(format!(
                    "{} {arch}: {} registers × {threads} threads × {resident} blocks",
                    r.entry, r.registers
                ));
            }
            if r.static_smem_bytes == 0 || r.static_smem_bytes > STATIC_SMEM {
                failures.push(format!(
                    "{} {arch}: {} bytes of static shared memory",
                    r.entry, r.static_smem_bytes
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
