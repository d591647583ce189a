//! The CUDA backend: hand-written kernels compiled by NVRTC and the vendor libraries (cuBLAS,
//! cuBLASLt) beside them, timed with CUDA events with the L2 flushed before every sample, and
//! NVML telemetry. Every CUDA library is loaded at run time and probed before its first use, so a
//! machine without CUDA gets a reason, not a panic.

pub mod blas;
mod block;
pub mod nvrtc;
pub mod telemetry;

use super::{Backend, BackendError, Clock, DeviceInfo, Result, Telemetry, Variant};
use crate::model::dtype::DType;
use crate::model::dtype::fp8_bits;
use crate::model::ops::{Attention, Matmul, Op, Pass};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Whether each CUDA library can be loaded; `None` where it can, the reason where not.
pub fn library_status() -> Vec<(&'static str, Option<String>)> {
    // SAFETY: these only probe for the shared libraries.
    let present = unsafe {
        [
            (
                "driver",
                cudarc::driver::sys::is_culib_present(),
                "libcuda.so",
            ),
            (
                "nvrtc",
                cudarc::nvrtc::sys::is_culib_present(),
                "libnvrtc.so",
            ),
            (
                "cublas",
                cudarc::cublas::sys::is_culib_present(),
                "libcublas.so",
            ),
            (
                "cublaslt",
                cudarc::cublaslt::sys::is_culib_present(),
                "libcublasLt.so",
            ),
        ]
    };
    let mut out: Vec<(&'static str, Option<String>)> = present
        .into_iter()
        .map(|(name, ok, lib)| (name, (!ok).then(|| format!("{lib} not found"))))
        .collect();
    out.push(("nvml", telemetry::Nvml1::open(0).err()));
    out
}

fn drv(e: impl std::fmt::Debug) -> BackendError {
    BackendError::Device(format!("{e:?}"))
}

const FP32_VARIANTS: [Variant; 4] = [
    Variant {
        name: "naive",
        idea: "one thread per output, operands from global memory",
        vendor: false,
        tile: Some((16, 16)),
    },
    Variant {
        name: "tiled",
        idea: "32x32 shared-memory tiles",
        vendor: false,
        tile: Some((32, 32)),
    },
    Variant {
        name: "regblock",
        idea: "128x128 block, 8x8 register micro-tiles, warp tiling, float4 loads",
        vendor: false,
        tile: Some((128, 128)),
    },
    Variant {
        name: "cublas",
        idea: "cuBLAS sgemm (plain fp32 math)",
        vendor: true,
        tile: None,
    },
];
const MMA: Variant = Variant {
    name: "mma",
    idea: "mma.sync tensor cores, 128x128 block, cp.async double buffering",
    vendor: false,
    tile: Some((128, 128)),
};
const CUBLAS: Variant = Variant {
    name: "cublas",
    idea: "cublasGemmStridedBatchedEx",
    vendor: true,
    tile: None,
};
const CUBLAS_TF32: Variant = Variant {
    name: "cublas-tf32",
    idea: "cuBLAS fp32 with TF32 tensor-core math (CUBLAS_COMPUTE_32F_FAST_TF32)",
    vendor: true,
    tile: None,
};
const CUBLASLT: Variant = Variant {
    name: "cublaslt",
    idea: "cuBLASLt fp8 e4m3 matmul, bf16 out",
    vendor: true,
    tile: None,
};
const ATTN_NAIVE: Variant = Variant {
    name: "naive",
    idea: "three kernels through a materialized f32 score matrix",
    vendor: false,
    tile: None,
};
const ATTN_FLASH: Variant = Variant {
    name: "flash",
    idea: "FlashAttention-2-style fused forward on mma.sync, online softmax in registers",
    vendor: false,
    tile: Some((64, 1)),
};
const ATTN_DECODE: Variant = Variant {
    name: "decode",
    idea: "one query token, KV cache split across blocks, partials merged",
    vendor: false,
    tile: None,
};

/// The element type a buffer holds on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    F32,
    F16,
    Bf16,
    Fp8E4m3,
    I8,
    I32,
}

impl Elem {
    fn bytes(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::Bf16 => 2,
            Elem::Fp8E4m3 | Elem::I8 => 1,
        }
    }

    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Elem::F32 => bytemuck::cast_slice(values).to_vec(),
            Elem::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            Elem::Bf16 => values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
            Elem::Fp8E4m3 => values
                .iter()
                .map(|v| fp8_bits(DType::Fp8E4m3, *v))
                .collect(),
            Elem::I8 => values.iter().map(|v| (*v as i8) as u8).collect(),
            Elem::I32 => values
                .iter()
                .flat_map(|v| (*v as i32).to_le_bytes())
                .collect(),
        }
    }

    fn decode(self, bytes: &[u8], n: usize) -> Vec<f32> {
        match self {
            Elem::F32 => bytes
                .chunks_exact(4)
                .take(n)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Elem::I32 => bytes
                .chunks_exact(4)
                .take(n)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            Elem::F16 => bytes
                .chunks_exact(2)
                .take(n)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Elem::Bf16 => bytes
                .chunks_exact(2)
                .take(n)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Elem::Fp8E4m3 | Elem::I8 => bytes.iter().take(n).map(|b| *b as i8 as f32).collect(),
        }
    }

    /// A value that reads back as NaN (or, for integers, as an implausible sentinel).
    fn poison(self, n: usize) -> Vec<u8> {
        match self {
            Elem::F32 => f32::NAN.to_le_bytes().repeat(n),
            Elem::F16 => half::f16::NAN.to_le_bytes().repeat(n),
            Elem::Bf16 => half::bf16::NAN.to_le_bytes().repeat(n),
            Elem::I32 => i32::MIN.to_le_bytes().repeat(n),
            Elem::Fp8E4m3 | Elem::I8 => vec![0x7f; n],
        }
    }
}

/// (input element, output element) of a matmul in `dtype` on this backend.
fn matmul_elems(dtype: DType) -> Option<(Elem, Elem)> {
    Some(match dtype {
        DType::Fp32 | DType::Tf32 => (Elem::F32, Elem::F32),
        DType::Fp16 => (Elem::F16, Elem::F16),
        DType::Bf16 => (Elem::Bf16, Elem::Bf16),
        DType::Fp8E4m3 => (Elem::Fp8E4m3, Elem::Bf16),
        DType::Int8 => (Elem::I8, Elem::I32),
        _ => return None,
    })
}

fn attention_elem(dtype: DType) -> Option<Elem> {
    match dtype {
        DType::Fp16 => Some(Elem::F16),
        DType::Bf16 => Some(Elem::Bf16),
        _ => None,
    }
}

/// Every matmul and attention variant this backend has (for lookups by name).
pub const MATMUL_VARIANTS: [Variant; 8] = [
    FP32_VARIANTS[0],
    FP32_VARIANTS[1],
    FP32_VARIANTS[2],
    FP32_VARIANTS[3],
    MMA,
    CUBLAS,
    CUBLAS_TF32,
    CUBLASLT,
];
pub const ATTENTION_VARIANTS: [Variant; 3] = [ATTN_NAIVE, ATTN_FLASH, ATTN_DECODE];

/// Keys per block of the split-KV decode kernel.
const DECODE_CHUNK: u64 = 256;

pub const MEMORY_VARIANT: Variant = Variant {
    name: "elementwise",
    idea: "one thread per element (per pair for rotary, one block per row for RMSNorm), f32 math",
    vendor: false,
    tile: None,
};

/// Element type and kernel-name suffix of the memory-bound kernels.
fn memory_elem(dtype: DType) -> Option<(Elem, &'static str)> {
    match dtype {
        DType::Fp32 => Some((Elem::F32, "f32")),
        DType::Fp16 => Some((Elem::F16, "f16")),
        DType::Bf16 => Some((Elem::Bf16, "bf16")),
        _ => None,
    }
}

/// The flash kernel's `AttnLayout` argument: element strides (batch, head, row) and offset of
/// Q, K, V and O, as attention_flash.cu declares it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct FlashLayout {
    strides: [[i64; 4]; 4],
}

// SAFETY: plain old data laid out as the kernel's struct of four structs of four long longs.
unsafe impl cudarc::driver::DeviceRepr for FlashLayout {}

impl From<&crate::measure::backend::AttentionLayout> for FlashLayout {
    fn from(l: &crate::measure::backend::AttentionLayout) -> Self {
        let s = |x: &crate::measure::backend::Strided| {
            [x.batch, x.head, x.row, x.offset].map(|v| v as i64)
        };
        FlashLayout {
            strides: [s(&l.q), s(&l.k), s(&l.v), s(&l.o)],
        }
    }
}

/// A kernel to launch: file, function, grid, block, dynamic shared memory.
type KernelLaunch = (&'static str, String, (u32, u32, u32), (u32, u32, u32), u32);

/// The loaded problem.
struct Problem {
    op: Op,
    inputs: Vec<Vec<CudaSlice<u8>>>,
    out: CudaSlice<u8>,
    out_elem: Elem,
    out_elems: usize,
    /// Naive attention's score matrix, or decode's partials.
    scratch: Option<CudaSlice<u8>>,
    decode_splits: u32,
}

pub struct CudaBackend {
    info: DeviceInfo,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    cc: (i32, i32),
    modules: HashMap<&'static str, Arc<CudaModule>>,
    blas: Option<cudarc::cublas::CudaBlas>,
    lt: Option<(blas::Lt, CudaSlice<u8>)>,
    flush: CudaSlice<u8>,
    problem: Option<Problem>,
    nvml: Option<telemetry::Nvml1>,
}

impl CudaBackend {
    /// Opens GPU `ordinal`.
    pub fn open(ordinal: usize) -> Result<Self> {
        // SAFETY: only probes for the shared library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(BackendError::Unavailable(
                "cuda: libcuda.so not found (no NVIDIA driver)".into(),
            ));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| BackendError::Unavailable(format!("cuda: device {ordinal}: {e:?}")))?;
        // One stream, one thread: cudarc's per-buffer event tracking would only add launches.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let cc = ctx.compute_capability().map_err(drv)?;
        let attr = |a| ctx.attribute(a).map_err(drv);
        use cudarc::driver::sys::CUdevice_attribute as A;
        let sms = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let l2 = attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?.max(1 << 20) as usize;
        let nvml = telemetry::Nvml1::open(ordinal as u32).ok();
        let driver = nvml
            .as_ref()
            .and_then(|n| n.driver_version())
            .unwrap_or_else(|| {
                let mut v = 0i32;
                // SAFETY: writes one int.
                unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
                format!("CUDA {}.{}", v / 1000, (v % 1000) / 10)
            });
        let info = DeviceInfo {
            backend: "cuda".into(),
            name: ctx.name().map_err(drv)?,
            vendor: "nvidia".into(),
            driver,
            device_type: format!("sm_{}{}", cc.0, cc.1),
            memory_bytes: ctx.total_mem().ok().map(|b| b as u64),
            compute_units: Some(sms),
            timer_resolution_ns: Some(500.0), // cudaEventElapsedTime resolution, about 0.5 µs
            clock: Clock::DeviceTimestamp,
            supports_f16: true,
        };
        // SAFETY: probes only.
        let blas = unsafe { cudarc::cublas::sys::is_culib_present() }
            .then(|| cudarc::cublas::CudaBlas::new(stream.clone()).ok())
            .flatten();
        let lt = if unsafe { cudarc::cublaslt::sys::is_culib_present() } {
            let bytes = 32 << 20;
            let ws = stream.alloc_zeros::<u8>(bytes).map_err(drv)?;
            let handle = cudarc::cublaslt::result::create_handle().ok();
            let ptr = {
                let (p, _g) = ws.device_ptr(&stream);
                p
            };
            handle.map(|handle| {
                (
                    blas::Lt {
                        handle,
                        workspace: ptr,
                        workspace_bytes: bytes,
                    },
                    ws,
                )
            })
        } else {
            None
        };
        // Written between samples so each starts with a cold L2.
        let flush = stream.alloc_zeros::<u8>(2 * l2).map_err(drv)?;
        Ok(CudaBackend {
            info,
            ctx,
            stream,
            arch: nvrtc::arch_for(cc.0, cc.1),
            cc,
            modules: HashMap::new(),
            blas,
            lt,
            flush,
            problem: None,
            nvml,
        })
    }

    fn function(&mut self, file: &'static str, name: &str) -> Result<CudaFunction> {
        if !self.modules.contains_key(file) {
            let source = nvrtc::KERNEL_FILES
                .iter()
                .find(|(f, _)| *f == file)
                .map(|(_, s)| *s)
                .ok_or_else(|| BackendError::Device(format!("no kernel file {file}")))?;
            let ptx = nvrtc::compile(file, source, &self.arch)?;
            let module = self.ctx.load_module(ptx).map_err(drv)?;
            self.modules.insert(file, module);
        }
        self.modules[file].load_function(name).map_err(drv)
    }

    fn ptr(&self, s: &CudaSlice<u8>) -> CUdeviceptr {
        let (p, _g) = s.device_ptr(&self.stream);
        p
    }

    fn problem(&self) -> Result<&Problem> {
        self.problem
            .as_ref()
            .ok_or_else(|| BackendError::Device("no problem loaded".into()))
    }

    /// Enqueues one run of `variant` on input set `set`.
    fn launch(&mut self, variant: &str, set: usize) -> Result<()> {
        let op = self.problem()?.op;
        match op {
            Op::Matmul(mm) => self.launch_matmul(&mm, variant, set),
            Op::Attention(a) => self.launch_attention(&a, variant, set),
            Op::Memory(m) => {
                let p = self.problem()?;
                let ins: Vec<CUdeviceptr> = p.inputs[set].iter().map(|b| self.ptr(b)).collect();
                let out = self.ptr(&p.out);
                let rotary = crate::measure::backend::cpu::RotaryLayout::standalone(&m);
                self.launch_memory(&m, &ins, out, &rotary)
            }
            other => Err(BackendError::Unsupported(format!("cuda: {other}"))),
        }
    }

    /// Enqueues a memory-bound op reading `ins` (in `harness::inputs` order) and writing `out`.
    fn launch_memory(
        &mut self,
        m: &crate::model::ops::MemoryOp,
        ins: &[CUdeviceptr],
        out: CUdeviceptr,
        rotary: &crate::measure::backend::cpu::RotaryLayout,
    ) -> Result<()> {
        use crate::model::ops::MemoryKind;
        let kind = crate::measure::backend::measured_memory_kind(m)?;
        let (_, suffix) = memory_elem(m.dtype)
            .ok_or_else(|| BackendError::Unsupported(format!("cuda: {}", Op::Memory(*m))))?;
        if ins.len() != crate::measure::backend::memory_input_count(kind) {
            return Err(BackendError::Device(format!(
                "{}: wrong input count",
                kind.name()
            )));
        }
        let (rows, cols) = (m.rows as i32, m.cols as i32);
        let cfg = |grid: u32, block: u32| LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // Grid-stride loops: enough blocks to fill the device, no more than the work needs.
        let blocks = |items: u64| items.div_ceil(256).clamp(1, 65535) as u32;
        let name = match kind {
            MemoryKind::RmsNorm => "rmsnorm",
            MemoryKind::GatedActivation(_) => "gated_silu",
            MemoryKind::ResidualAdd => "residual_add",
            _ => "rotary",
        };
        let f = self.function("memory.cu", &format!("{name}_{suffix}"))?;
        let mut l = self.stream.launch_builder(&f);
        // SAFETY (all launches): argument lists match memory.cu; buffers are sized for `m`.
        match kind {
            MemoryKind::RmsNorm => {
                let eps = crate::measure::backend::cpu::RMSNORM_EPS as f32;
                l.arg(&ins[0])
                    .arg(&ins[1])
                    .arg(&out)
                    .arg(&rows)
                    .arg(&cols)
                    .arg(&eps);
                unsafe { l.launch(cfg(m.rows as u32, 256)) }.map_err(drv)?;
            }
            MemoryKind::GatedActivation(_) => {
                l.arg(&ins[0]).arg(&out).arg(&rows).arg(&cols);
                unsafe { l.launch(cfg(blocks(m.rows * m.cols), 256)) }.map_err(drv)?;
            }
            MemoryKind::ResidualAdd => {
                let n = (m.rows * m.cols) as i64;
                l.arg(&ins[0]).arg(&ins[1]).arg(&out).arg(&n);
                unsafe { l.launch(cfg(blocks(m.rows * m.cols), 256)) }.map_err(drv)?;
            }
            _ => {
                let (rc, hd, seq) = (
                    rotary.cols as i32,
                    rotary.head_dim as i32,
                    rotary.seq_len as i32,
                );
                let (in_row, out_row) = (rotary.in_row as i32, rotary.out_row as i32);
                let theta = rotary.theta as f32;
                l.arg(&ins[0])
                    .arg(&out)
                    .arg(&rows)
                    .arg(&rc)
                    .arg(&hd)
                    .arg(&seq);
                l.arg(&in_row).arg(&out_row).arg(&theta);
                let pairs = m.rows * rotary.cols as u64 / 2;
                unsafe { l.launch(cfg(blocks(pairs), 256)) }.map_err(drv)?;
            }
        }
        Ok(())
    }

    fn launch_matmul(&mut self, mm: &Matmul, variant: &str, set: usize) -> Result<()> {
        let p = self.problem()?;
        let (a, b, c) = (
            self.ptr(&p.inputs[set][0]),
            self.ptr(&p.inputs[set][1]),
            self.ptr(&p.out),
        );
        let (m, n, k, batch) = (mm.m as i32, mm.n as i32, mm.k as i32, mm.batch as u32);
        let g = blas::Gemm {
            m,
            n,
            k,
            batch: batch as i32,
            a,
            b,
            c,
        };
        let cdiv = |x: i32, d: u32| (x as u32).div_ceil(d);
        let (file, name, grid, block, smem): KernelLaunch = match (mm.input, variant) {
            (_, "cublas") | (_, "cublas-tf32") => {
                let handle = *self
                    .blas
                    .as_ref()
                    .ok_or_else(|| BackendError::Unavailable("cuBLAS not loaded".into()))?
                    .handle();
                // SAFETY: buffers sized for this problem on this stream.
                return unsafe { blas::cublas_gemm(handle, mm.input, &g) };
            }
            (DType::Fp8E4m3, "cublaslt") => {
                let (lt, _) = self
                    .lt
                    .as_ref()
                    .ok_or_else(|| BackendError::Unavailable("cuBLASLt not loaded".into()))?;
                // SAFETY: as above.
                return unsafe { blas::cublaslt_fp8(lt, &g, self.stream.cu_stream()) };
            }
            (DType::Fp32, "naive") => (
                "matmul_fp32_naive.cu",
                "matmul_fp32_naive".into(),
                (cdiv(n, 16), cdiv(m, 16), batch),
                (16, 16, 1),
                0,
            ),
            (DType::Fp32, "tiled") => (
                "matmul_fp32_tiled.cu",
                "matmul_fp32_tiled".into(),
                (cdiv(n, 32), cdiv(m, 32), batch),
                (32, 32, 1),
                0,
            ),
            (DType::Fp32, "regblock") => (
                "matmul_fp32_regblock.cu",
                "matmul_fp32_regblock".into(),
                (cdiv(n, 128), cdiv(m, 128), batch),
                (256, 1, 1),
                0,
            ),
            (d, "mma") => {
                let (suffix, elem_bytes, b_transposed) = match d {
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
                (
                    "matmul_mma.cu",
                    format!("mma_{suffix}"),
                    (cdiv(n, 128), cdiv(m, 128), batch),
                    (256, 1, 1),
                    2 * (a_bytes + b_bytes),
                )
            }
            (d, v) => {
                return Err(BackendError::Unsupported(format!(
                    "no cuda matmul variant '{v}' for {d}"
                )));
            }
        };
        let f = self.function(file, &name)?;
        let cfg = LaunchConfig {
            grid_dim: grid,
            block_dim: block,
            shared_mem_bytes: smem,
        };
        let mut l = self.stream.launch_builder(&f);
        l.arg(&a).arg(&b).arg(&c).arg(&m).arg(&n).arg(&k);
        // SAFETY: argument types match the kernel signature; buffers are sized for the problem.
        unsafe { l.launch(cfg) }.map_err(drv)?;
        Ok(())
    }

    fn launch_attention(&mut self, at: &Attention, variant: &str, set: usize) -> Result<()> {
        let suffix = match at.dtype {
            DType::Fp16 => "f16",
            _ => "bf16",
        };
        let d = at.qk_head_dim as i32;
        let p = self.problem()?;
        let (q, k, v, o) = (
            self.ptr(&p.inputs[set][0]),
            self.ptr(&p.inputs[set][1]),
            self.ptr(&p.inputs[set][2]),
            self.ptr(&p.out),
        );
        let scratch = p.scratch.as_ref().map(|s| self.ptr(s));
        let splits = p.decode_splits;
        let (hq, hkv, sq, skv) = (
            at.q_heads as i32,
            at.kv_heads as i32,
            at.q_len as i32,
            at.kv_len as i32,
        );
        let bh = (at.batch * at.q_heads) as u32;
        let causal = i32::from(at.causal);
        let window = at.window.unwrap_or(0) as i32;
        let scale = 1.0f32 / (at.qk_head_dim as f32).sqrt();
        let cfg = |grid: (u32, u32, u32), block: (u32, u32, u32), smem: u32| LaunchConfig {
            grid_dim: grid,
            block_dim: block,
            shared_mem_bytes: smem,
        };
        match variant {
            "naive" => {
                let s = scratch.ok_or_else(|| BackendError::Device("no score buffer".into()))?;
                let f1 =
                    self.function("attention_naive.cu", &format!("attn_naive_scores_{suffix}"))?;
                let f2 = self.function("attention_naive.cu", "attn_naive_softmax")?;
                let f3 = self.function("attention_naive.cu", &format!("attn_naive_pv_{suffix}"))?;
                let rows = (at.batch * at.q_heads * at.q_len) as i32;
                let mut l = self.stream.launch_builder(&f1);
                l.arg(&q)
                    .arg(&k)
                    .arg(&s)
                    .arg(&hq)
                    .arg(&hkv)
                    .arg(&sq)
                    .arg(&skv)
                    .arg(&d);
                l.arg(&causal).arg(&window).arg(&scale);
                let g1 = ((skv as u32).div_ceil(16), (sq as u32).div_ceil(16), bh);
                // SAFETY: signatures match attention_naive.cu.
                unsafe { l.launch(cfg(g1, (16, 16, 1), 0)) }.map_err(drv)?;
                let mut l = self.stream.launch_builder(&f2);
                l.arg(&s).arg(&rows).arg(&skv);
                let g2 = ((rows as u32).min(65535), (rows as u32).div_ceil(65535), 1);
                unsafe { l.launch(cfg(g2, (256, 1, 1), 0)) }.map_err(drv)?;
                let mut l = self.stream.launch_builder(&f3);
                l.arg(&s)
                    .arg(&v)
                    .arg(&o)
                    .arg(&hq)
                    .arg(&hkv)
                    .arg(&sq)
                    .arg(&skv)
                    .arg(&d);
                let g3 = ((d as u32).div_ceil(16), (sq as u32).div_ceil(16), bh);
                unsafe { l.launch(cfg(g3, (16, 16, 1), 0)) }.map_err(drv)?;
            }
            "flash" => {
                let f =
                    self.function("attention_flash.cu", &format!("attn_flash_{suffix}_d{d}"))?;
                let smem = 2 * 64 * (d as u32 + 8) * 2;
                let mut l = self.stream.launch_builder(&f);
                l.arg(&q)
                    .arg(&k)
                    .arg(&v)
                    .arg(&o)
                    .arg(&hq)
                    .arg(&hkv)
                    .arg(&sq)
                    .arg(&skv);
                let layout =
                    FlashLayout::from(&crate::measure::backend::AttentionLayout::head_major(at));
                l.arg(&causal).arg(&window).arg(&scale).arg(&layout);
                let grid = ((sq as u32).div_ceil(64), bh, 1);
                // SAFETY: signature matches attention_flash.cu.
                unsafe { l.launch(cfg(grid, (128, 1, 1), smem)) }.map_err(drv)?;
            }
            "decode" => {
                let part = scratch.ok_or_else(|| BackendError::Device("no partials".into()))?;
                let f1 =
                    self.function("attention_decode.cu", &format!("attn_decode_{suffix}_d{d}"))?;
                let f2 = self.function(
                    "attention_decode.cu",
                    &format!("attn_decode_combine_{suffix}_d{d}"),
                )?;
                let chunk = DECODE_CHUNK as i32;
                let nsplits = splits as i32;
                let mut l = self.stream.launch_builder(&f1);
                l.arg(&q)
                    .arg(&k)
                    .arg(&v)
                    .arg(&part)
                    .arg(&hq)
                    .arg(&hkv)
                    .arg(&skv);
                l.arg(&chunk).arg(&window).arg(&scale);
                // SAFETY: signatures match attention_decode.cu.
                unsafe { l.launch(cfg((splits, bh, 1), (128, 1, 1), 0)) }.map_err(drv)?;
                let mut l = self.stream.launch_builder(&f2);
                l.arg(&part).arg(&o).arg(&nsplits);
                unsafe { l.launch(cfg((bh, 1, 1), (d as u32, 1, 1), 0)) }.map_err(drv)?;
            }
            other => {
                return Err(BackendError::Unsupported(format!(
                    "no cuda attention variant '{other}'"
                )));
            }
        }
        Ok(())
    }
}

impl Backend for CudaBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn variants(&self, op: &Op) -> Vec<Variant> {
        let ada = self.cc >= (8, 9);
        let have_blas = self.blas.is_some();
        let have_lt = self.lt.is_some();
        match op {
            Op::Matmul(mm) if matmul_elems(mm.input).is_some() => {
                let mut v: Vec<Variant> = match mm.input {
                    DType::Fp32 => FP32_VARIANTS.to_vec(),
                    DType::Tf32 => vec![MMA, CUBLAS_TF32],
                    DType::Fp16 | DType::Bf16 | DType::Int8 => vec![MMA, CUBLAS],
                    DType::Fp8E4m3 if ada => vec![MMA, CUBLASLT],
                    _ => Vec::new(),
                };
                v.retain(|x| match x.name {
                    "cublas" | "cublas-tf32" => have_blas,
                    // cuBLASLt fp8 wants batch 1 and dimensions that are multiples of 16.
                    "cublaslt" => {
                        have_lt
                            && mm.batch == 1
                            && [mm.m, mm.n, mm.k].iter().all(|d| d.is_multiple_of(16))
                    }
                    _ => true,
                });
                // int8 cuBLAS needs k and n multiples of 4.
                if mm.input == DType::Int8 && !(mm.k.is_multiple_of(4) && mm.n.is_multiple_of(4)) {
                    v.retain(|x| x.name != "cublas");
                }
                v
            }
            Op::Attention(a)
                if attention_elem(a.dtype).is_some()
                    && a.pass == Pass::Forward
                    && a.kv_dtype == a.dtype
                    && a.qk_head_dim == a.v_head_dim
                    && matches!(a.qk_head_dim, 64 | 128)
                    && a.q_len <= a.kv_len =>
            {
                let mut v = Vec::new();
                let scores = a.batch * a.q_heads * a.q_len * a.kv_len * 4;
                if scores <= 8 << 30 {
                    v.push(ATTN_NAIVE);
                }
                v.push(ATTN_FLASH);
                if a.q_len == 1 {
                    v.push(ATTN_DECODE);
                }
                v
            }
            Op::Memory(m)
                if memory_elem(m.dtype).is_some()
                    && crate::measure::backend::measured_memory_kind(m).is_ok() =>
            {
                vec![MEMORY_VARIANT]
            }
            _ => Vec::new(),
        }
    }

    fn load(&mut self, op: &Op, sets: &[Vec<Vec<f32>>]) -> Result<()> {
        self.problem = None;
        let (elems, out_elem, out_elems, scratch_bytes, splits) = match op {
            Op::Matmul(mm) => {
                let (i, o) = matmul_elems(mm.input)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                (vec![i, i], o, (mm.batch * mm.m * mm.n) as usize, 0, 0)
            }
            Op::Attention(a) => {
                let e = attention_elem(a.dtype)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                let bh = a.batch * a.q_heads;
                let out = (bh * a.q_len * a.v_head_dim) as usize;
                // Decode: one block per 256 keys of every sequence and head (split-KV).
                let splits = if a.q_len == 1 {
                    a.kv_len.div_ceil(DECODE_CHUNK).max(1) as u32
                } else {
                    0
                };
                let scores = (bh * a.q_len * a.kv_len * 4) as usize;
                let partials = (bh * u64::from(splits) * (a.qk_head_dim + 2) * 4) as usize;
                let scratch = if a.q_len == 1 {
                    partials.max(scores.min(8 << 30))
                } else if scores <= 8 << 30 {
                    scores
                } else {
                    0
                };
                (vec![e, e, e], e, out, scratch, splits)
            }
            Op::Memory(m) => {
                let kind = crate::measure::backend::measured_memory_kind(m)?;
                let (e, _) = memory_elem(m.dtype)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                let n = crate::measure::backend::memory_input_count(kind);
                (vec![e; n], e, (m.rows * m.cols) as usize, 0, 0)
            }
            other => return Err(BackendError::Unsupported(format!("cuda: {other}"))),
        };
        let mut inputs = Vec::new();
        for set in sets {
            let mut bufs = Vec::new();
            for (i, (t, e)) in set.iter().zip(&elems).enumerate() {
                // 8-bit matmuls take B as n×k (k contiguous), the layout fp8 tensor cores and
                // cuBLASLt use.
                let data = match op {
                    Op::Matmul(mm) if i == 1 && e.bytes() == 1 => transpose_b(mm, t),
                    _ => t.clone(),
                };
                bufs.push(self.stream.clone_htod(&e.encode(&data)).map_err(drv)?);
            }
            inputs.push(bufs);
        }
        let out = self
            .stream
            .alloc_zeros::<u8>(out_elems * out_elem.bytes())
            .map_err(drv)?;
        let scratch = if scratch_bytes > 0 {
            Some(self.stream.alloc_zeros::<u8>(scratch_bytes).map_err(drv)?)
        } else {
            None
        };
        self.problem = Some(Problem {
            op: *op,
            inputs,
            out,
            out_elem,
            out_elems,
            scratch,
            decode_splits: splits,
        });
        Ok(())
    }

    fn run(&mut self, variant: &str, set: usize) -> Result<Vec<f32>> {
        let (elem, n) = {
            let p = self.problem()?;
            (p.out_elem, p.out_elems)
        };
        let poison = elem.poison(n);
        let p = self
            .problem
            .as_mut()
            .ok_or_else(|| BackendError::Device("no problem loaded".into()))?;
        self.stream.memcpy_htod(&poison, &mut p.out).map_err(drv)?;
        self.launch(variant, set)?;
        self.stream.synchronize().map_err(drv)?;
        let p = self.problem()?;
        let bytes = self.stream.clone_dtoh(&p.out).map_err(drv)?;
        Ok(elem.decode(&bytes, n))
    }

    fn time(&mut self, variant: &str, runs: usize) -> Result<Vec<f64>> {
        use cudarc::driver::sys::CUevent_flags;
        let sets = self.problem()?.inputs.len();
        let start = self
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(drv)?;
        let end = self
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(drv)?;
        let mut out = Vec::with_capacity(runs);
        for i in 0..runs {
            // A write over twice the L2 evicts whatever the last run left there.
            self.stream.memset_zeros(&mut self.flush).map_err(drv)?;
            start.record(&self.stream).map_err(drv)?;
            self.launch(variant, i % sets)?;
            end.record(&self.stream).map_err(drv)?;
            end.synchronize().map_err(drv)?;
            out.push(f64::from(start.elapsed_ms(&end).map_err(drv)?) * 1e-3);
        }
        Ok(out)
    }

    fn telemetry(&self) -> Option<Telemetry> {
        self.nvml.as_ref().map(|n| n.read())
    }

    fn run_block(
        &mut self,
        block: &crate::measure::backend::block::BlockShape,
        inputs: &crate::measure::backend::block::BlockInputs,
        runs: usize,
    ) -> Result<crate::measure::backend::block::BlockRun> {
        self.block_forward(block, inputs, runs)
    }
}

/// B (k×n row-major) as n×k row-major.
fn transpose_b(mm: &Matmul, b: &[f32]) -> Vec<f32> {
    let (k, n) = (mm.k as usize, mm.n as usize);
    let mut out = vec![0.0; b.len()];
    for z in 0..mm.batch as usize {
        let (src, dst) = (
            &b[z * k * n..(z + 1) * k * n],
            &mut out[z * k * n..(z + 1) * k * n],
        );
        for i in 0..k {
            for j in 0..n {
                dst[j * k + i] = src[i * n + j];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_encodings_round_trip() {
        let v = [0.5f32, -1.0, 0.3125, 0.0];
        for e in [Elem::F32, Elem::F16, Elem::Bf16] {
            assert_eq!(e.decode(&e.encode(&v), 4), v);
        }
        assert_eq!(
            Elem::I32.decode(&Elem::I32.encode(&[3.0, -7.0]), 2),
            [3.0, -7.0]
        );
        assert_eq!(Elem::I8.encode(&[-1.0, 127.0]), [0xff, 0x7f]);
        assert!(
            Elem::F16
                .decode(&Elem::F16.poison(2), 2)
                .iter()
                .all(|x| x.is_nan())
        );
    }

    #[test]
    fn b_is_transposed_per_batch() {
        let mm = Matmul::new(2, 1, 3, 2, DType::Int8);
        let b = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
        ];
        assert_eq!(
            transpose_b(&mm, &b),
            [
                1.0, 4.0, 2.0, 5.0, 3.0, 6.0, 7.0, 10.0, 8.0, 11.0, 9.0, 12.0
            ]
        );
    }

    #[test]
    fn no_driver_is_a_reason_not_a_panic() {
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            return; // a machine with a driver: nothing to check here
        }
        match CudaBackend::open(0) {
            Err(BackendError::Unavailable(why)) => assert!(why.contains("libcuda")),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a CUDA device without a driver"),
        }
        let status = library_status();
        assert!(
            status
                .iter()
                .any(|(n, why)| *n == "driver" && why.is_some())
        );
    }
}
