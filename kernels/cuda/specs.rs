//! The CUDA kernels and the vendor libraries beside them, one entry per implementation: the
//! variant, the ops and dtypes it serves, its tile, and for ours the file, its entry points and
//! the launches one run makes (grid, block, shared memory, arguments by role). The CUDA backend,
//! the output tiles the cost model pads to, and the NVRTC tests all read this table: a new kernel
//! is its `.cu` file and one entry here.

use super::launch::{Arg, Buf, Cuda, Launch, Layouts, Library, Target, TensorMap, TmaElem};
use crate::measure::backend::spec::{KernelSpec, Serves, Source, any_shape};
use crate::measure::backend::{AttentionLayout, BackendError, Result, Variant};
use crate::model::dtype::DType;
use crate::model::ops::{Activation, Attention, Matmul, MemoryKind, MemoryOp, Op, Scan};

macro_rules! cu {
    ($file:literal) => {
        Source {
            file: $file,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/cuda/", $file)),
        }
    };
}

/// Value columns per block and the largest key dim of the chunked scan (scan_gated_delta.cu).
pub const SCAN_BV: u64 = 16;
pub const SCAN_DK_MAX: u64 = 128;

/// Blocks the split-KV decode kernel aims for over all sequences and heads: about two waves of
/// eight resident 128-thread blocks on each of an H100's or H200's 132 SMs, so that the whole GPU
/// streams the cache whatever the batch, heads and context.
pub const DECODE_TARGET_BLOCKS: u64 = 2 * 8 * 132;
/// The fewest keys a decode split takes (unless the context is shorter): below it the partials
/// and their merge cost more than the parallelism gains.
pub const DECODE_MIN_CHUNK: u64 = 64;
/// Splits are whole steps of the kernel's key loop (4 warps × 4 keys at head dim 64).
const DECODE_STEP: u64 = 16;
/// Largest f32 score matrix the naive attention materializes.
pub const MAX_SCORE_BYTES: u64 = 8 << 30;

const HALF: &[DType] = &[DType::Fp16, DType::Bf16];

pub static SPECS: &[KernelSpec<Cuda>] = &[
    KernelSpec {
        variant: Variant {
            name: "naive",
            idea: "one thread per output, operands from global memory",
            vendor: false,
            tile: Some((16, 16)),
            baseline: true,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp32],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("matmul_fp32_naive.cu"),
            entries: &["matmul_fp32_naive"],
            launches: |op, _| matmul_launch(op, "matmul_fp32_naive".into(), 16, (16, 16, 1), 0),
        },
    },
    KernelSpec {
        variant: Variant {
            name: "tiled",
            idea: "32x32 shared-memory tiles",
            vendor: false,
            tile: Some((32, 32)),
            baseline: true,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp32],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("matmul_fp32_tiled.cu"),
            entries: &["matmul_fp32_tiled"],
            launches: |op, _| matmul_launch(op, "matmul_fp32_tiled".into(), 32, (32, 32, 1), 0),
        },
    },
    KernelSpec {
        variant: Variant {
            name: "regblock",
            idea: "128x128 block, 8x8 register micro-tiles, warp tiling, float4 loads",
            vendor: false,
            tile: Some((128, 128)),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp32],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("matmul_fp32_regblock.cu"),
            entries: &["matmul_fp32_regblock"],
            launches: |op, _| matmul_launch(op, "matmul_fp32_regblock".into(), 128, (256, 1, 1), 0),
        },
    },
    KernelSpec {
        variant: Variant {
            name: "simt",
            idea: "128x128 block, 8x8 micro-tiles, conflict-free warp tiling, double-buffered smem",
            vendor: false,
            tile: Some((128, 128)),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp32],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("matmul_fp32_simt.cu"),
            entries: &["matmul_fp32_simt"],
            launches: |op, _| matmul_launch(op, "matmul_fp32_simt".into(), 128, (256, 1, 1), 0),
        },
    },
    KernelSpec {
        variant: Variant {
            name: "simt-64",
            idea: "the simt kernel on 64x64 blocks of 64 threads, for small and skinny problems",
            vendor: false,
            tile: Some((64, 64)),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp32],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("matmul_fp32_simt.cu"),
            entries: &["matmul_fp32_simt_64"],
            launches: |op, _| matmul_launch(op, "matmul_fp32_simt_64".into(), 64, (64, 1, 1), 0),
        },
    },
    KernelSpec {
        variant: Variant {
            name: "cublas",
            idea: "cuBLAS sgemm (plain fp32 math)",
            vendor: true,
            tile: None,
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp32],
        accepts: any_shape,
        kernel: Cuda::Library(Library::Cublas),
    },
    KernelSpec {
        variant: Variant {
            name: "mma",
            idea: "mma.sync tensor cores, 128x128 block, cp.async double buffering",
            vendor: false,
            tile: Some((128, 128)),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[
            DType::Tf32,
            DType::Fp16,
            DType::Bf16,
            DType::Int8,
            DType::Fp8E4m3,
        ],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("matmul_mma.cu"),
            entries: &["mma_tf32", "mma_f16", "mma_bf16", "mma_i8", "mma_e4m3"],
            launches: |op, _| {
                let (suffix, elem_bytes, b_transposed) = match op.dtype() {
                    DType::Tf32 => ("tf32", 4u32, false),
                    DType::Fp16 => ("f16", 2, false),
                    DType::Bf16 => ("bf16", 2, false),
                    DType::Int8 => ("i8", 1, true),
                    DType::Fp8E4m3 => ("e4m3", 1, true),
                    other => {
                        return Err(BackendError::Unsupported(format!("mma for {other}")));
                    }
                };
                // Two stages of A (128 rows × 80 bytes) and B (see matmul_mma.cu).
                let a_bytes = 128 * 80;
                let b_bytes = if b_transposed {
                    128 * 80
                } else {
                    (64 / elem_bytes) * (128 * elem_bytes + 16)
                };
                let smem = 2 * (a_bytes + b_bytes);
                matmul_launch(op, format!("mma_{suffix}"), 128, (256, 1, 1), smem)
            },
        },
    },
    KernelSpec {
        variant: Variant {
            name: "wgmma",
            idea: "Hopper (sm_90a): TMA into 128B-swizzled shared memory, mbarrier pipeline, producer and two consumer warpgroups on wgmma, persistent 128x256 tiles",
            vendor: false,
            tile: Some((128, 256)),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: WGMMA_DTYPES,
        accepts: wgmma_shape,
        kernel: Cuda::Nvrtc {
            source: cu!("matmul_wgmma.cu"),
            entries: &[
                "wgmma_f16_m128n256",
                "wgmma_bf16_m128n256",
                "wgmma_e4m3_m128n256",
            ],
            launches: |op, layouts| wgmma_launch(op, layouts, &WGMMA_LARGE),
            target: Target::Sm90a,
        },
    },
    KernelSpec {
        variant: Variant {
            name: "wgmma-m64",
            idea: "the wgmma kernel with 64x128 tiles and one consumer warpgroup, 8 stages: for small m",
            vendor: false,
            tile: Some((64, 128)),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: WGMMA_DTYPES,
        accepts: wgmma_shape,
        kernel: Cuda::Nvrtc {
            source: cu!("matmul_wgmma.cu"),
            entries: &[
                "wgmma_f16_m64n128",
                "wgmma_bf16_m64n128",
                "wgmma_e4m3_m64n128",
            ],
            launches: |op, layouts| wgmma_launch(op, layouts, &WGMMA_NARROW),
            target: Target::Sm90a,
        },
    },
    KernelSpec {
        variant: Variant {
            name: "cublas",
            idea: "cublasGemmStridedBatchedEx",
            vendor: true,
            tile: None,
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp16, DType::Bf16, DType::Int8],
        // int8 cuBLAS needs k and n multiples of 4.
        accepts: |op| match op {
            Op::Matmul(mm) if mm.input == DType::Int8 => {
                mm.k.is_multiple_of(4) && mm.n.is_multiple_of(4)
            }
            _ => true,
        },
        kernel: Cuda::Library(Library::Cublas),
    },
    KernelSpec {
        variant: Variant {
            name: "cublas-tf32",
            idea: "cuBLAS fp32 with TF32 tensor-core math (CUBLAS_COMPUTE_32F_FAST_TF32)",
            vendor: true,
            tile: None,
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Tf32],
        accepts: any_shape,
        kernel: Cuda::Library(Library::Cublas),
    },
    KernelSpec {
        variant: Variant {
            name: "cublaslt",
            idea: "cuBLASLt fp8 e4m3 matmul, bf16 out",
            vendor: true,
            tile: None,
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: &[DType::Fp8E4m3],
        // cuBLASLt fp8 wants batch 1 and dimensions that are multiples of 16.
        accepts: |op| {
            matmul(op).is_some_and(|mm| {
                mm.batch == 1 && [mm.m, mm.n, mm.k].iter().all(|d| d.is_multiple_of(16))
            })
        },
        kernel: Cuda::Library(Library::CublasLt),
    },
    KernelSpec {
        variant: Variant {
            name: "naive",
            idea: "three kernels through a materialized f32 score matrix",
            vendor: false,
            tile: None,
            baseline: true,
        },
        serves: Serves::Attention,
        dtypes: HALF,
        accepts: |op| {
            attention(op).is_some_and(|a| {
                standard_heads(a) && a.batch * a.q_heads * a.q_len * a.kv_len * 4 <= MAX_SCORE_BYTES
            })
        },
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("attention_naive.cu"),
            entries: &[
                "attn_naive_scores_f16",
                "attn_naive_pv_f16",
                "attn_naive_scores_bf16",
                "attn_naive_pv_bf16",
                "attn_naive_softmax",
            ],
            launches: |op, _| {
                let (a, s) = attention_scalars(op)?;
                let rows = (a.batch * a.q_heads * a.q_len) as u32;
                let (sq, skv, d) = (a.q_len as u32, a.kv_len as u32, a.qk_head_dim as u32);
                let shape = [s.hq, s.hkv, s.sq, s.skv, s.d].map(Arg::I32);
                let mut scores = vec![Arg::Buf(Buf::Input(0)), Arg::Buf(Buf::Input(1))];
                scores.push(Arg::Buf(Buf::Scratch));
                scores.extend(shape.clone());
                scores.extend([Arg::I32(s.causal), Arg::I32(s.window), Arg::F32(s.scale)]);
                let mut pv = vec![
                    Arg::Buf(Buf::Scratch),
                    Arg::Buf(Buf::Input(2)),
                    Arg::Buf(Buf::Output),
                ];
                pv.extend(shape);
                Ok(vec![
                    Launch {
                        entry: format!("attn_naive_scores_{}", s.suffix),
                        grid: (skv.div_ceil(16), sq.div_ceil(16), s.bh),
                        block: (16, 16, 1),
                        smem: 0,
                        args: scores,
                    },
                    Launch {
                        entry: "attn_naive_softmax".into(),
                        grid: (rows.min(65535), rows.div_ceil(65535), 1),
                        block: (256, 1, 1),
                        smem: 0,
                        args: vec![
                            Arg::Buf(Buf::Scratch),
                            Arg::I32(rows as i32),
                            Arg::I32(s.skv),
                        ],
                    },
                    Launch {
                        entry: format!("attn_naive_pv_{}", s.suffix),
                        grid: (d.div_ceil(16), sq.div_ceil(16), s.bh),
                        block: (16, 16, 1),
                        smem: 0,
                        args: pv,
                    },
                ])
            },
        },
    },
    KernelSpec {
        variant: Variant {
            name: "flash",
            idea: "FlashAttention-2-style fused forward on mma.sync, online softmax in registers",
            vendor: false,
            tile: Some((64, 1)),
            baseline: false,
        },
        serves: Serves::Attention,
        dtypes: HALF,
        accepts: |op| attention(op).is_some_and(standard_heads),
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("attention_flash.cu"),
            entries: &[
                "attn_flash_f16_d64",
                "attn_flash_f16_d128",
                "attn_flash_bf16_d64",
                "attn_flash_bf16_d128",
            ],
            launches: |op, layouts| {
                let (a, s) = attention_scalars(op)?;
                let layout = layouts
                    .attention
                    .unwrap_or_else(|| AttentionLayout::head_major(a));
                let mut args = [Buf::Input(0), Buf::Input(1), Buf::Input(2), Buf::Output]
                    .map(Arg::Buf)
                    .to_vec();
                args.extend([s.hq, s.hkv, s.sq, s.skv, s.causal, s.window].map(Arg::I32));
                args.extend([Arg::F32(s.scale), Arg::Layout(layout)]);
                Ok(vec![Launch {
                    entry: format!("attn_flash_{}_d{}", s.suffix, s.d),
                    grid: ((a.q_len as u32).div_ceil(64), s.bh, 1),
                    block: (128, 1, 1),
                    smem: 2 * 64 * (a.qk_head_dim as u32 + 8) * 2,
                    args,
                }])
            },
        },
    },
    KernelSpec {
        variant: Variant {
            name: "flash-wgmma",
            idea: "Hopper (sm_90a) FlashAttention-3-style forward: TMA K/V ring on mbarriers, producer warpgroup, two consumer warpgroups on wgmma (P from registers), 128-query tiles",
            vendor: false,
            tile: Some((128, 1)),
            baseline: false,
        },
        serves: Serves::Attention,
        dtypes: HALF,
        accepts: |op| attention(op).is_some_and(attention_wgmma_shape),
        kernel: Cuda::Nvrtc {
            target: Target::Sm90a,
            source: cu!("attention_wgmma.cu"),
            entries: &[
                "attn_wgmma_f16_d64",
                "attn_wgmma_f16_d128",
                "attn_wgmma_bf16_d64",
                "attn_wgmma_bf16_d128",
            ],
            launches: attention_wgmma_launch,
        },
    },
    KernelSpec {
        variant: Variant {
            name: "decode",
            idea: "one query token, KV cache split across blocks, partials merged",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Attention,
        dtypes: HALF,
        accepts: |op| attention(op).is_some_and(|a| a.q_len == 1 && standard_heads(a)),
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("attention_decode.cu"),
            entries: &[
                "attn_decode_f16_d64",
                "attn_decode_combine_f16_d64",
                "attn_decode_f16_d128",
                "attn_decode_combine_f16_d128",
                "attn_decode_bf16_d64",
                "attn_decode_combine_bf16_d64",
                "attn_decode_bf16_d128",
                "attn_decode_combine_bf16_d128",
            ],
            launches: |op, _| {
                let (a, s) = attention_scalars(op)?;
                let (splits, chunk) = decode_split(a);
                let mut partial = [Buf::Input(0), Buf::Input(1), Buf::Input(2), Buf::Scratch]
                    .map(Arg::Buf)
                    .to_vec();
                partial.extend([s.hq, s.hkv, s.skv, chunk as i32, s.window].map(Arg::I32));
                partial.push(Arg::F32(s.scale));
                Ok(vec![
                    Launch {
                        entry: format!("attn_decode_{}_d{}", s.suffix, s.d),
                        grid: (splits, s.bh, 1),
                        block: (128, 1, 1),
                        smem: 0,
                        args: partial,
                    },
                    Launch {
                        entry: format!("attn_decode_combine_{}_d{}", s.suffix, s.d),
                        grid: (s.bh, 1, 1),
                        block: (s.d as u32, 1, 1),
                        smem: 0,
                        args: vec![
                            Arg::Buf(Buf::Scratch),
                            Arg::Buf(Buf::Output),
                            Arg::I32(splits as i32),
                        ],
                    },
                ])
            },
        },
    },
    KernelSpec {
        variant: Variant {
            name: "mla-decode",
            idea: "absorbed MLA decode: 16 heads per block on mma.sync over one shared latent K/V tile, split-KV",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Attention,
        dtypes: HALF,
        accepts: |op| attention(op).is_some_and(mla_decode_shape),
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("attention_mla_decode.cu"),
            entries: &[
                "attn_mla_decode_f16",
                "attn_mla_decode_combine_f16",
                "attn_mla_decode_bf16",
                "attn_mla_decode_combine_bf16",
            ],
            launches: |op, _| {
                let (a, s) = attention_scalars(op)?;
                let (splits, chunk) = mla_decode_split(a);
                let groups = (a.q_heads / a.kv_heads).div_ceil(MLA_HEADS_PER_BLOCK);
                let mut partial = [Buf::Input(0), Buf::Input(1), Buf::Scratch]
                    .map(Arg::Buf)
                    .to_vec();
                // A decode query sees the whole cache unless a causal window cuts it.
                let window = if a.causal { s.window } else { 0 };
                partial.extend([s.hq, s.hkv, s.skv, chunk as i32, window].map(Arg::I32));
                partial.push(Arg::F32(s.scale));
                Ok(vec![
                    Launch {
                        entry: format!("attn_mla_decode_{}", s.suffix),
                        grid: (splits, (a.batch * a.kv_heads * groups) as u32, 1),
                        block: (128, 1, 1),
                        smem: 0,
                        args: partial,
                    },
                    Launch {
                        entry: format!("attn_mla_decode_combine_{}", s.suffix),
                        grid: (s.bh, 1, 1),
                        block: (MLA_V_HEAD_DIM as u32, 1, 1),
                        smem: 0,
                        args: vec![
                            Arg::Buf(Buf::Scratch),
                            Arg::Buf(Buf::Output),
                            Arg::I32(splits as i32),
                        ],
                    },
                ])
            },
        },
    },
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "one thread per element (per pair for rotary, one block per row for RMSNorm), f32 math",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[
            MemoryKind::RmsNorm,
            MemoryKind::GatedActivation(Activation::Silu),
            MemoryKind::ResidualAdd,
            MemoryKind::Rotary,
        ]),
        dtypes: &[DType::Fp32, DType::Fp16, DType::Bf16],
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("memory.cu"),
            entries: &[
                "rmsnorm_f32",
                "gated_silu_f32",
                "residual_add_f32",
                "rotary_f32",
                "rmsnorm_f16",
                "gated_silu_f16",
                "residual_add_f16",
                "rotary_f16",
                "rmsnorm_bf16",
                "gated_silu_bf16",
                "residual_add_bf16",
                "rotary_bf16",
            ],
            launches: memory_launch,
        },
    },
    KernelSpec {
        variant: Variant {
            name: "chunked",
            idea: "gated delta rule in 64-token chunks: WY representation, UT transform, state passed between chunks",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Scan,
        dtypes: &[DType::Fp32, DType::Fp16, DType::Bf16],
        accepts: |op| {
            scan(op).is_some_and(|s| s.key_dim <= SCAN_DK_MAX && s.batch * s.heads <= 65535)
        },
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("scan_gated_delta.cu"),
            entries: &[
                "scan_gated_delta_f32",
                "scan_gated_delta_f16",
                "scan_gated_delta_bf16",
            ],
            launches: scan_launch,
        },
    },
];

/// Kernels only the transformer block runs (the composition check), each the op's only
/// implementation there: QK-norm reading the heads in place from the QKV projection, and GeGLU.
/// Not offered to `bench`; compiled and signature-checked with the table above.
pub static BLOCK_SPECS: &[KernelSpec<Cuda>] = &[
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "QK-norm: one block per (token, head), heads read in place from the QKV projection",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[MemoryKind::RmsNorm]),
        dtypes: HALF,
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("block.cu"),
            entries: &["qk_norm_f16", "qk_norm_bf16"],
            launches: |op, layouts| {
                let Op::Memory(m) = op else {
                    return Err(wrong_op(op));
                };
                let l = layouts.qk_norm.ok_or_else(|| {
                    BackendError::Unsupported("qk-norm runs inside a block only".into())
                })?;
                let eps = crate::measure::backend::cpu::RMSNORM_EPS as f32;
                let mut args = [Buf::Input(0), Buf::Input(1), Buf::Output]
                    .map(Arg::Buf)
                    .to_vec();
                args.extend(
                    [m.rows as u32, m.cols as u32, l.heads, l.q_heads, l.in_row]
                        .map(|x| Arg::I32(x as i32)),
                );
                args.push(Arg::F32(eps));
                Ok(vec![Launch {
                    entry: format!("qk_norm_{}", half_suffix(op)?),
                    grid: (m.rows as u32, 1, 1),
                    block: (128, 1, 1),
                    smem: 0,
                    args,
                }])
            },
        },
    },
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "GeGLU (GELU's tanh form): one thread per element, grid-stride",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[MemoryKind::GatedActivation(Activation::Gelu)]),
        dtypes: HALF,
        accepts: any_shape,
        kernel: Cuda::Nvrtc {
            target: Target::Any,
            source: cu!("block.cu"),
            entries: &["gated_gelu_f16", "gated_gelu_bf16"],
            launches: |op, _| {
                let Op::Memory(m) = op else {
                    return Err(wrong_op(op));
                };
                Ok(vec![Launch {
                    entry: format!("gated_gelu_{}", half_suffix(op)?),
                    grid: ((m.rows * m.cols).div_ceil(256).clamp(1, 65535) as u32, 1, 1),
                    block: (256, 1, 1),
                    smem: 0,
                    args: vec![
                        Arg::Buf(Buf::Input(0)),
                        Arg::Buf(Buf::Output),
                        Arg::I32(m.rows as i32),
                        Arg::I32(m.cols as i32),
                    ],
                }])
            },
        },
    },
];

/// The entry-point suffix of a 16-bit op.
fn half_suffix(op: &Op) -> Result<&'static str> {
    match op.dtype() {
        DType::Fp16 => Ok("f16"),
        DType::Bf16 => Ok("bf16"),
        _ => Err(wrong_op(op)),
    }
}

/// The Hopper GEMM's types: fp16 and bf16 (fp32 accumulate), fp8 e4m3 (bf16 out).
const WGMMA_DTYPES: &[DType] = &[DType::Fp16, DType::Bf16, DType::Fp8E4m3];

/// Multiprocessors a persistent kernel's grid assumes when the device's count is not given: an
/// H100 SXM's or an H200's.
pub const DEFAULT_SMS: u32 = 132;

/// One tile configuration of matmul_wgmma.cu (its `WG_LARGE` / `WG_NARROW`).
pub struct WgmmaTile {
    /// Consumer warpgroups, 64 rows of the tile each.
    pub consumers: u32,
    pub bn: u32,
    pub stages: u32,
    /// The entry-point suffix, "m{BM}n{BN}".
    pub name: &'static str,
}

impl WgmmaTile {
    pub fn bm(&self) -> u32 {
        64 * self.consumers
    }

    /// Dynamic shared memory, as the kernel's `WgTile::SMEM` lays it out: alignment slack for
    /// the 1024-byte swizzle atom, the stages (128 bytes of K per row of A and of B), the
    /// epilogue slabs (64 rows of 144 bytes per consumer) and two 8-byte barriers per stage.
    pub fn smem(&self) -> u32 {
        1024 + self.stages * (self.bm() + self.bn) * 128
            + self.consumers * 64 * 144
            + self.stages * 16
    }
}

pub const WGMMA_LARGE: WgmmaTile = WgmmaTile {
    consumers: 2,
    bn: 256,
    stages: 4,
    name: "m128n256",
};
pub const WGMMA_NARROW: WgmmaTile = WgmmaTile {
    consumers: 1,
    bn: 128,
    stages: 8,
    name: "m64n128",
};

/// What the wgmma kernel takes: TMA's 16-byte aligned row strides (k · element bytes, and for
/// 16-bit B, stored k×n, n · 2), n a multiple of 8 for the 16-byte output stores, and tile
/// counts and extents within the kernel's 32-bit integers.
fn wgmma_shape(op: &Op) -> bool {
    matmul(op).is_some_and(|mm| {
        let k_align = if mm.input == DType::Fp8E4m3 { 16 } else { 8 };
        let small = |x: u64| x <= i32::MAX as u64;
        mm.k.is_multiple_of(k_align)
            && mm.n.is_multiple_of(8)
            && [mm.m, mm.n, mm.k, mm.batch].into_iter().all(small)
            && small(mm.batch * mm.m.div_ceil(64) * mm.n.div_ceil(128))
    })
}

/// matmul_wgmma.cu: TMA maps over A (k, m, batch) and B ((n, k, batch) for 16-bit types, k×n
/// row-major; (k, n, batch) for fp8, stored n×k), one persistent CTA per multiprocessor (fewer
/// when there are fewer tiles), 128 threads per warpgroup. Takes (map A, map B, c, m, n, k,
/// batch).
fn wgmma_launch(op: &Op, layouts: &Layouts, t: &WgmmaTile) -> Result<Vec<Launch>> {
    let mm = matmul(op).ok_or_else(|| wrong_op(op))?;
    let (suffix, elem, b_mn) = match mm.input {
        DType::Fp16 => ("f16", TmaElem::F16, true),
        DType::Bf16 => ("bf16", TmaElem::Bf16, true),
        DType::Fp8E4m3 => ("e4m3", TmaElem::U8, false),
        _ => return Err(wrong_op(op)),
    };
    let e = elem.bytes();
    let (m, n, k, batch) = (mm.m, mm.n, mm.k, mm.batch);
    // 128 bytes of K per stage: one swizzle span.
    let bk = (128 / e) as u32;
    let a = TensorMap {
        buf: Buf::Input(0),
        elem,
        dims: [k, m, batch],
        strides: [k * e, m * k * e],
        boxed: [bk, t.bm(), 1],
    };
    let b = if b_mn {
        TensorMap {
            buf: Buf::Input(1),
            elem,
            dims: [n, k, batch],
            strides: [n * e, k * n * e],
            boxed: [64, bk, 1],
        }
    } else {
        TensorMap {
            buf: Buf::Input(1),
            elem,
            dims: [k, n, batch],
            strides: [k * e, n * k * e],
            boxed: [bk, t.bn, 1],
        }
    };
    let tiles = batch * m.div_ceil(u64::from(t.bm())) * n.div_ceil(u64::from(t.bn));
    let sms = u64::from(layouts.sms.unwrap_or(DEFAULT_SMS).max(1));
    let mut args = vec![Arg::TensorMap(a), Arg::TensorMap(b), Arg::Buf(Buf::Output)];
    args.extend([m, n, k, batch].map(|x| Arg::I32(x as i32)));
    Ok(vec![Launch {
        entry: format!("wgmma_{suffix}_{}", t.name),
        grid: (tiles.min(sms) as u32, 1, 1),
        block: (128 * (1 + t.consumers), 1, 1),
        smem: t.smem(),
        args,
    }])
}

/// Which devices kernel file `file` is built for: its specs' target.
pub fn target_of(file: &str) -> Target {
    SPECS
        .iter()
        .chain(BLOCK_SPECS)
        .find_map(|s| match s.kernel {
            Cuda::Nvrtc { source, target, .. } if source.file == file => Some(target),
            _ => None,
        })
        .unwrap_or(Target::Any)
}

/// Every kernel file of the table and of the block's, each once.
pub fn sources() -> Vec<Source> {
    crate::measure::backend::spec::unique_sources(SPECS.iter().chain(BLOCK_SPECS).filter_map(|s| {
        match s.kernel {
            Cuda::Nvrtc { source, .. } => Some(source),
            Cuda::Library(_) => None,
        }
    }))
}

/// The keys a decode query sees: the last `window` of the cache, or all of it (as
/// attention_decode.cu reads its window argument).
pub fn decode_keys(a: &Attention) -> u64 {
    match a.window {
        Some(w) if w > 0 => w.min(a.kv_len),
        _ => a.kv_len,
    }
}

/// The split-KV decode kernel's split of the keys a query sees: (splits, keys per split). Enough
/// splits that the blocks over all sequences and heads number about `DECODE_TARGET_BLOCKS`, none
/// under `DECODE_MIN_CHUNK` keys (unless the context is), each a whole number of the kernel's
/// key steps: a batch of one with a few heads splits its context finely, a large batch keeps
/// whole long slices (fewer partials to merge).
pub fn decode_split(a: &Attention) -> (u32, u64) {
    let keys = decode_keys(a).max(1);
    let units = (a.batch * a.q_heads).max(1);
    let max_splits = (keys / DECODE_MIN_CHUNK).max(1);
    let want = DECODE_TARGET_BLOCKS.div_ceil(units).clamp(1, max_splits);
    let chunk = keys.div_ceil(want).div_ceil(DECODE_STEP) * DECODE_STEP;
    (keys.div_ceil(chunk) as u32, chunk)
}

/// Equal query and value head dims of 64 or 128, keys and values apart: what the naive, flash
/// and decode kernels are written for.
fn standard_heads(a: &Attention) -> bool {
    !a.shared_kv && a.qk_head_dim == a.v_head_dim && matches!(a.qk_head_dim, 64 | 128)
}

/// The head dims of the absorbed MLA decode kernel: DeepSeek-V2/V3's latent (512) plus rotary
/// key (64), values the latent.
pub const MLA_QK_HEAD_DIM: u64 = 576;
pub const MLA_V_HEAD_DIM: u64 = 512;
/// Query heads per block of the MLA decode kernel (one mma tile's rows).
pub const MLA_HEADS_PER_BLOCK: u64 = 16;
/// Keys per shared-memory tile of the MLA decode kernel; splits are whole tiles.
const MLA_TILE: u64 = 32;
/// Blocks the MLA decode kernel aims for: two waves of a 132-SM H100/H200, so a batch of one
/// still streams its cache from every SM.
const MLA_TARGET_BLOCKS: u64 = 264;

/// Whether `a` is an absorbed MLA decode step the MLA kernel runs.
pub fn mla_decode_shape(a: &Attention) -> bool {
    a.shared_kv
        && a.q_len == 1
        && a.qk_head_dim == MLA_QK_HEAD_DIM
        && a.v_head_dim == MLA_V_HEAD_DIM
}

/// The MLA decode kernel's split of the context: (splits, keys per split), enough splits for
/// about `MLA_TARGET_BLOCKS` blocks with at least two tiles each.
pub fn mla_decode_split(a: &Attention) -> (u32, u64) {
    let groups = (a.q_heads / a.kv_heads.max(1)).div_ceil(MLA_HEADS_PER_BLOCK);
    let units = (a.batch * a.kv_heads * groups).max(1);
    let max_splits = a.kv_len.div_ceil(2 * MLA_TILE).max(1);
    let want = MLA_TARGET_BLOCKS.div_ceil(units).clamp(1, max_splits);
    let chunk = a.kv_len.div_ceil(want).div_ceil(MLA_TILE) * MLA_TILE;
    (a.kv_len.div_ceil(chunk).max(1) as u32, chunk)
}

fn matmul(op: &Op) -> Option<&Matmul> {
    match op {
        Op::Matmul(mm) => Some(mm),
        _ => None,
    }
}

fn attention(op: &Op) -> Option<&Attention> {
    match op {
        Op::Attention(a) => Some(a),
        _ => None,
    }
}

fn scan(op: &Op) -> Option<&Scan> {
    match op {
        Op::Scan(s) => Some(s),
        _ => None,
    }
}

/// scan_gated_delta.cu: one block of 128 threads per 16 value columns of each sequence and head;
/// its shared memory is static. Takes (q, k, v, α, β, out, bh, seq, dk, dv).
fn scan_launch(op: &Op, _: &Layouts) -> Result<Vec<Launch>> {
    let s = scan(op).ok_or_else(|| wrong_op(op))?;
    let suffix = match s.dtype {
        DType::Fp32 => "f32",
        DType::Fp16 => "f16",
        DType::Bf16 => "bf16",
        _ => return Err(wrong_op(op)),
    };
    let bh = s.batch * s.heads;
    let mut args = (0..5).map(|i| Arg::Buf(Buf::Input(i))).collect::<Vec<_>>();
    args.push(Arg::Buf(Buf::Output));
    args.extend([bh, s.seq, s.key_dim, s.value_dim].map(|x| Arg::I32(x as i32)));
    Ok(vec![Launch {
        entry: format!("scan_gated_delta_{suffix}"),
        grid: (s.value_dim.div_ceil(SCAN_BV) as u32, bh as u32, 1),
        block: (128, 1, 1),
        smem: 0,
        args,
    }])
}

fn wrong_op(op: &Op) -> BackendError {
    BackendError::Unsupported(format!("cuda: no such kernel for {op}"))
}

/// C = A·B, one block per `tile`×`tile` of each batch's output; every matmul kernel takes
/// (a, b, c, m, n, k).
fn matmul_launch(
    op: &Op,
    entry: String,
    tile: u32,
    block: (u32, u32, u32),
    smem: u32,
) -> Result<Vec<Launch>> {
    let mm = matmul(op).ok_or_else(|| wrong_op(op))?;
    let mut args = [Buf::Input(0), Buf::Input(1), Buf::Output]
        .map(Arg::Buf)
        .to_vec();
    args.extend([mm.m, mm.n, mm.k].map(|x| Arg::I32(x as i32)));
    Ok(vec![Launch {
        entry,
        grid: (
            (mm.n as u32).div_ceil(tile),
            (mm.m as u32).div_ceil(tile),
            mm.batch as u32,
        ),
        block,
        smem,
        args,
    }])
}

/// What every attention kernel is told about its problem.
struct AttentionScalars {
    suffix: &'static str,
    hq: i32,
    hkv: i32,
    sq: i32,
    skv: i32,
    d: i32,
    causal: i32,
    window: i32,
    scale: f32,
    /// Sequences × query heads.
    bh: u32,
}

fn attention_scalars(op: &Op) -> Result<(&Attention, AttentionScalars)> {
    let a = attention(op).ok_or_else(|| wrong_op(op))?;
    let suffix = match a.dtype {
        DType::Fp16 => "f16",
        DType::Bf16 => "bf16",
        _ => return Err(wrong_op(op)),
    };
    Ok((
        a,
        AttentionScalars {
            suffix,
            hq: a.q_heads as i32,
            hkv: a.kv_heads as i32,
            sq: a.q_len as i32,
            skv: a.kv_len as i32,
            d: a.qk_head_dim as i32,
            causal: i32::from(a.causal),
            window: a.window.unwrap_or(0) as i32,
            scale: 1.0f32 / (a.qk_head_dim as f32).sqrt(),
            bh: (a.batch * a.q_heads) as u32,
        },
    ))
}

/// memory.cu: grid-stride loops with enough blocks of 256 threads to fill the device and no more
/// than the work needs; RMSNorm one block per row. Math in f32 whatever the storage type.
fn memory_launch(op: &Op, layouts: &Layouts) -> Result<Vec<Launch>> {
    let Op::Memory(m @ MemoryOp { rows, cols, .. }) = op else {
        return Err(wrong_op(op));
    };
    let suffix = match m.dtype {
        DType::Fp32 => "f32",
        DType::Fp16 => "f16",
        DType::Bf16 => "bf16",
        _ => return Err(wrong_op(op)),
    };
    let blocks = |items: u64| items.div_ceil(256).clamp(1, 65535) as u32;
    let (r, c) = (*rows as i32, *cols as i32);
    let (name, grid, args) = match m.kind {
        MemoryKind::RmsNorm => {
            let eps = crate::measure::backend::cpu::RMSNORM_EPS as f32;
            let mut args = [Buf::Input(0), Buf::Input(1), Buf::Output]
                .map(Arg::Buf)
                .to_vec();
            args.extend([Arg::I32(r), Arg::I32(c), Arg::F32(eps)]);
            ("rmsnorm", *rows as u32, args)
        }
        MemoryKind::GatedActivation(Activation::Silu) => {
            let args = vec![
                Arg::Buf(Buf::Input(0)),
                Arg::Buf(Buf::Output),
                Arg::I32(r),
                Arg::I32(c),
            ];
            ("gated_silu", blocks(rows * cols), args)
        }
        MemoryKind::ResidualAdd => {
            let mut args = [Buf::Input(0), Buf::Input(1), Buf::Output]
                .map(Arg::Buf)
                .to_vec();
            args.push(Arg::I64((rows * cols) as i64));
            ("residual_add", blocks(rows * cols), args)
        }
        MemoryKind::Rotary => {
            let rot = layouts
                .rotary
                .unwrap_or_else(|| crate::measure::backend::cpu::RotaryLayout::standalone(m));
            let mut args = vec![Arg::Buf(Buf::Input(0)), Arg::Buf(Buf::Output), Arg::I32(r)];
            args.extend(
                [rot.cols, rot.head_dim, rot.seq_len, rot.in_row, rot.out_row]
                    .map(|x| Arg::I32(x as i32)),
            );
            args.push(Arg::F32(rot.theta as f32));
            ("rotary", blocks(rows * rot.cols as u64 / 2), args)
        }
        _ => return Err(wrong_op(op)),
    };
    Ok(vec![Launch {
        entry: format!("{name}_{suffix}"),
        grid: (grid, 1, 1),
        block: (256, 1, 1),
        smem: 0,
        args,
    }])
}

/// Query rows per CTA and keys per tile of attention_wgmma.cu (`AW_BM`, `AW_BN`).
pub const ATTENTION_WGMMA_ROWS: u32 = 128;

/// attention_wgmma.cu's dynamic shared memory (its `AwTile::SMEM`): alignment slack for the
/// 1024-byte swizzle atom, the Q tile, the K and V tiles of each stage (128 rows × d 16-bit
/// values each) and 8 bytes per barrier (a full and an empty one per stage, and Q's).
pub fn attention_wgmma_smem(d: u32) -> u32 {
    let stages = if d == 64 { 4 } else { 3 };
    let tile = 128 * d * 2;
    1024 + tile + stages * 2 * tile + (2 * stages + 1) * 8
}

/// What attention_wgmma.cu is written for: the standard heads (64 or 128), lengths within TMA's
/// 32-bit extents and the kernel's integers, and sequences × query heads within the grid's y
/// (65,535).
fn attention_wgmma_shape(a: &Attention) -> bool {
    let small = |x: u64| x <= i32::MAX as u64;
    standard_heads(a)
        && a.kv_heads > 0
        && a.q_heads.is_multiple_of(a.kv_heads)
        && [a.q_len, a.kv_len].into_iter().all(small)
        && a.batch * a.q_heads <= 65535
}

/// A TMA map {d, len, batch·heads} over one of Q, K, V, or why the layout has none: the (batch,
/// head) pairs must be equally spaced and apart (batch stride = heads · head stride, or one
/// sequence; head stride ≥ len · row stride), rows 16-byte aligned, and the view start at the
/// buffer (the map's base is the buffer's).
fn attention_tensor_map(
    which: &str,
    buf: Buf,
    elem: TmaElem,
    s: &crate::measure::backend::Strided,
    (batch, heads, len, d): (u64, u64, u64, u64),
) -> Result<TensorMap> {
    let e = elem.bytes();
    // The stride from one (batch, head) pair to the next, in elements.
    let pair = if batch * heads == 1 {
        len * s.row
    } else {
        s.head
    };
    let uniform = (batch == 1 || s.batch == heads * s.head) && pair >= len * s.row;
    if !uniform || s.offset != 0 || !(s.row * e).is_multiple_of(16) {
        return Err(BackendError::Unsupported(format!(
            "cuda flash-wgmma: the {which} layout {s:?} is not one TMA map (batch stride = heads x head stride, 16-byte rows, no offset)"
        )));
    }
    Ok(TensorMap {
        buf,
        elem,
        dims: [d, len, batch * heads],
        strides: [s.row * e, pair * e],
        boxed: [64, ATTENTION_WGMMA_ROWS, 1],
    })
}

/// attention_wgmma.cu: TMA maps over Q, K and V, one CTA of three warpgroups per 128 queries of
/// each sequence and query head. Takes (map Q, map K, map V, o, hq, hkv, sq, skv, causal,
/// window, scale, layout).
fn attention_wgmma_launch(op: &Op, layouts: &Layouts) -> Result<Vec<Launch>> {
    let (a, s) = attention_scalars(op)?;
    let layout = layouts
        .attention
        .unwrap_or_else(|| AttentionLayout::head_major(a));
    let elem = if a.dtype == DType::Bf16 {
        TmaElem::Bf16
    } else {
        TmaElem::F16
    };
    let d = a.qk_head_dim;
    let maps = [
        ("Q", Buf::Input(0), &layout.q, a.q_heads, a.q_len),
        ("K", Buf::Input(1), &layout.k, a.kv_heads, a.kv_len),
        ("V", Buf::Input(2), &layout.v, a.kv_heads, a.kv_len),
    ];
    let mut args = Vec::new();
    for (which, buf, strided, heads, len) in maps {
        let map = attention_tensor_map(which, buf, elem, strided, (a.batch, heads, len, d))?;
        args.push(Arg::TensorMap(map));
    }
    args.push(Arg::Buf(Buf::Output));
    args.extend([s.hq, s.hkv, s.sq, s.skv, s.causal, s.window].map(Arg::I32));
    args.extend([Arg::F32(s.scale), Arg::Layout(layout)]);
    Ok(vec![Launch {
        entry: format!("attn_wgmma_{}_d{}", s.suffix, s.d),
        grid: ((a.q_len as u32).div_ceil(ATTENTION_WGMMA_ROWS), s.bh, 1),
        block: (384, 1, 1),
        smem: attention_wgmma_smem(d as u32),
        args,
    }])
}
