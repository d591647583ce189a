//! How a CUDA kernel is described and run: a spec's launches are plain data (entry point, grid,
//! block, shared memory, arguments naming buffers by role), resolved here against device buffers
//! once and enqueued as often as needed.

use super::{CudaBackend, FlashLayout, blas, drv};
use crate::measure::backend::cpu::RotaryLayout;
use crate::measure::backend::spec::{KernelSpec, Source};
use crate::measure::backend::{AttentionLayout, BackendError, Result};
use crate::model::dtype::DType;
use crate::model::ops::Op;
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaFunction, LaunchConfig, PushKernelArg};

/// How the CUDA backend runs a kernel.
#[derive(Clone, Copy)]
pub enum Cuda {
    /// Ours: a file compiled by NVRTC (with the prelude), every entry point it defines, and the
    /// launches one run of an op makes.
    Nvrtc {
        source: Source,
        entries: &'static [&'static str],
        launches: fn(&Op, &Layouts) -> Result<Vec<Launch>>,
        /// The devices the file is built for and runs on.
        target: Target,
    },
    /// A vendor library call on the same buffers.
    Library(Library),
}

/// Which devices a kernel file is compiled for and runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any device from Ampere on, compiled for its own architecture (the tests compile it for
    /// sm_80, sm_89 and sm_90a).
    Any,
    /// Hopper's architecture-specific instructions (wgmma, TMA, setmaxnreg): compiled for
    /// compute_90a only, and run on compute capability 9.0 only (an sm_90a kernel does not run
    /// on Blackwell or later).
    Sm90a,
}

impl Target {
    /// The NVRTC architectures the file must compile for.
    pub fn archs(self) -> &'static [&'static str] {
        match self {
            Target::Any => &["compute_80", "compute_89", "compute_90a"],
            Target::Sm90a => &["compute_90a"],
        }
    }

    /// Why a device of compute capability `cc` cannot run the file, if it cannot.
    pub fn refusal(self, cc: (i32, i32)) -> Option<String> {
        match self {
            Target::Sm90a if cc != (9, 0) => Some(format!(
                "an sm_90a kernel (wgmma, TMA) needs a compute capability 9.0 GPU (H100, H200); \
                 this one is sm_{}{}",
                cc.0, cc.1
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// `cublasGemmStridedBatchedEx`; the matmul dtype picks the math (TF32 for tf32).
    Cublas,
    /// cuBLASLt fp8 e4m3.
    CublasLt,
}

impl Library {
    pub fn name(self) -> &'static str {
        match self {
            Library::Cublas => "cuBLAS",
            Library::CublasLt => "cuBLASLt",
        }
    }
}

pub type CudaSpec = KernelSpec<Cuda>;

/// One kernel launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub entry: String,
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub smem: u32,
    pub args: Vec<Arg>,
}

/// A kernel argument, in the kernel's parameter order.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Buf(Buf),
    I32(i32),
    I64(i64),
    F32(f32),
    /// The flash kernel's `AttnLayout`, passed by value.
    Layout(AttentionLayout),
    /// A TMA tensor map over a buffer (a `CUtensorMap`, 128 bytes by value), encoded on the
    /// host when the launch is prepared.
    TensorMap(TensorMap),
}

/// A 3-D tiled TMA view of a buffer: 128-byte swizzle, zeros outside the extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorMap {
    pub buf: Buf,
    pub elem: TmaElem,
    /// Extents in elements, innermost first.
    pub dims: [u64; 3],
    /// Byte strides of dims 1 and 2 (dim 0 is contiguous); multiples of 16, as TMA requires.
    pub strides: [u64; 2],
    /// The box one load brings into shared memory, innermost first; the innermost side is at
    /// most 128 bytes (the swizzle span).
    pub boxed: [u32; 3],
}

/// Element types of a tensor map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmaElem {
    /// Bytes (fp8).
    U8,
    F16,
    Bf16,
}

impl TmaElem {
    pub fn bytes(self) -> u64 {
        match self {
            TmaElem::U8 => 1,
            TmaElem::F16 | TmaElem::Bf16 => 2,
        }
    }
}

impl TensorMap {
    /// Why TMA would refuse this view at `ptr`, if it would (cuTensorMapEncodeTiled's rules for
    /// a tiled, interleave-free, 128-byte-swizzled map).
    pub fn invalid(&self, ptr: u64) -> Option<String> {
        let e = self.elem.bytes();
        let why = if !ptr.is_multiple_of(16) {
            "the buffer is not 16-byte aligned".to_string()
        } else if self.dims.iter().any(|&d| d == 0 || d > 1 << 32) {
            format!("extents {:?} must be 1 to 2^32", self.dims)
        } else if self
            .strides
            .iter()
            .any(|&s| !s.is_multiple_of(16) || s >= 1 << 40)
        {
            format!(
                "byte strides {:?} must be multiples of 16 below 2^40",
                self.strides
            )
        } else if self.boxed.iter().any(|&b| b == 0 || b > 256) {
            format!("box {:?} must be 1 to 256 per side", self.boxed)
        } else if u64::from(self.boxed[0]) * e > 128 {
            format!(
                "a box row of {} bytes exceeds the 128-byte swizzle",
                u64::from(self.boxed[0]) * e
            )
        } else {
            return None;
        };
        Some(format!("tensor map {self:?}: {why}"))
    }
}

/// An encoded `CUtensorMap`, as the kernel's `const __grid_constant__` parameter takes it.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(super) struct TmaParam(pub [u64; 16]);

// SAFETY: 128 bytes of plain data, the layout of `CUtensorMap`.
unsafe impl cudarc::driver::DeviceRepr for TmaParam {}

/// Encodes `t` over the device buffer at `ptr` with `cuTensorMapEncodeTiled`.
fn encode_tensor_map(t: &TensorMap, ptr: CUdeviceptr) -> Result<TmaParam> {
    use cudarc::driver::sys as s;
    if let Some(why) = t.invalid(ptr) {
        return Err(BackendError::Unsupported(why));
    }
    let dtype = match t.elem {
        TmaElem::U8 => s::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        TmaElem::F16 => s::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        TmaElem::Bf16 => s::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
    };
    let mut map = s::CUtensorMap { opaque: [0; 16] };
    let element_strides = [1u32; 3];
    // SAFETY: every array holds the rank's (3) entries, strides the rank − 1; `map` is written.
    let r = unsafe {
        s::cuTensorMapEncodeTiled(
            &mut map,
            dtype,
            3,
            ptr as *mut std::ffi::c_void,
            t.dims.as_ptr(),
            t.strides.as_ptr(),
            t.boxed.as_ptr(),
            element_strides.as_ptr(),
            s::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            s::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            s::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            s::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    if r != s::CUresult::CUDA_SUCCESS {
        return Err(BackendError::Device(format!(
            "cuTensorMapEncodeTiled {t:?}: {r:?}"
        )));
    }
    Ok(TmaParam(map.opaque))
}

/// A device buffer by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// The op's i-th input, in `harness::inputs` order.
    Input(usize),
    Output,
    /// Naive attention's score matrix, or decode's partials.
    Scratch,
}

/// Where the kernels find strided operands; `None` where the op stands alone (contiguous
/// attention operands, a rotary op over whole rows).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layouts {
    pub attention: Option<AttentionLayout>,
    pub rotary: Option<RotaryLayout>,
    /// A block's QK-norm: which heads of the QKV projection's rows it normalizes.
    pub qk_norm: Option<QkNormLayout>,
    /// The device's multiprocessors, which a persistent kernel's grid matches (`None`: an
    /// H100 SXM's or H200's 132).
    pub sms: Option<u32>,
}

/// QK-norm's view of the QKV projection: `heads` query and key heads per token (the first
/// `q_heads` of them queries), rows `in_row` elements apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkNormLayout {
    pub heads: u32,
    pub q_heads: u32,
    pub in_row: u32,
}

/// A launch or library call resolved against device buffers.
pub(super) enum Step {
    Kernel {
        f: CudaFunction,
        cfg: LaunchConfig,
        args: Vec<Value>,
    },
    Cublas(DType, blas::Gemm),
    CublasLt(blas::Gemm),
}

pub(super) enum Value {
    Ptr(CUdeviceptr),
    I32(i32),
    I64(i64),
    F32(f32),
    Layout(FlashLayout),
    TensorMap(TmaParam),
}

/// The buffers one run reads and writes.
pub(super) struct Buffers<'a> {
    pub ins: &'a [CUdeviceptr],
    pub out: CUdeviceptr,
    pub scratch: Option<CUdeviceptr>,
}

impl Buffers<'_> {
    fn get(&self, b: Buf) -> Result<CUdeviceptr> {
        match b {
            Buf::Input(i) => self
                .ins
                .get(i)
                .copied()
                .ok_or_else(|| BackendError::Device(format!("kernel needs input {i}"))),
            Buf::Output => Ok(self.out),
            Buf::Scratch => self
                .scratch
                .ok_or_else(|| BackendError::Device("kernel needs a scratch buffer".into())),
        }
    }
}

impl CudaBackend {
    /// The steps of one run of `spec` on `op` over `bufs`: kernels compiled and looked up,
    /// arguments resolved, so enqueueing them again costs no more than the launches.
    pub(super) fn prepare(
        &mut self,
        spec: &CudaSpec,
        op: &Op,
        layouts: &Layouts,
        bufs: &Buffers,
    ) -> Result<Vec<Step>> {
        match spec.kernel {
            Cuda::Library(lib) => {
                let Op::Matmul(mm) = op else {
                    return Err(BackendError::Unsupported(format!(
                        "cuda: {op} on {}",
                        lib.name()
                    )));
                };
                let g = blas::Gemm {
                    m: mm.m as i32,
                    n: mm.n as i32,
                    k: mm.k as i32,
                    batch: mm.batch as i32,
                    a: bufs.get(Buf::Input(0))?,
                    b: bufs.get(Buf::Input(1))?,
                    c: bufs.out,
                };
                Ok(vec![match lib {
                    Library::Cublas if self.blas.is_some() => Step::Cublas(mm.input, g),
                    Library::CublasLt if self.lt.is_some() => Step::CublasLt(g),
                    _ => {
                        return Err(BackendError::Unavailable(format!(
                            "{} not loaded",
                            lib.name()
                        )));
                    }
                }])
            }
            Cuda::Nvrtc {
                source,
                entries,
                launches,
                target,
            } => {
                if let Some(why) = target.refusal(self.cc) {
                    return Err(BackendError::Unsupported(format!(
                        "cuda:{}: {why}",
                        spec.variant.name
                    )));
                }
                let mut steps = Vec::new();
                for l in launches(op, layouts)? {
                    if !entries.contains(&l.entry.as_str()) {
                        return Err(BackendError::Device(format!(
                            "{}: {} is not among the entry points its spec declares",
                            source.file, l.entry
                        )));
                    }
                    let f = self.function(&source, &l.entry)?;
                    let args = l
                        .args
                        .iter()
                        .map(|a| {
                            Ok(match a {
                                Arg::Buf(b) => Value::Ptr(bufs.get(*b)?),
                                Arg::I32(x) => Value::I32(*x),
                                Arg::I64(x) => Value::I64(*x),
                                Arg::F32(x) => Value::F32(*x),
                                Arg::Layout(x) => Value::Layout(FlashLayout::from(x)),
                                Arg::TensorMap(t) => {
                                    Value::TensorMap(encode_tensor_map(t, bufs.get(t.buf)?)?)
                                }
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    // Beyond 48 KiB, dynamic shared memory must be opted into per function.
                    if l.smem > 48 << 10 {
                        use cudarc::driver::sys::CUfunction_attribute as F;
                        f.set_attribute(
                            F::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            l.smem as i32,
                        )
                        .map_err(drv)?;
                    }
                    let cfg = LaunchConfig {
                        grid_dim: l.grid,
                        block_dim: l.block,
                        shared_mem_bytes: l.smem,
                    };
                    steps.push(Step::Kernel { f, cfg, args });
                }
                Ok(steps)
            }
        }
    }

    /// Enqueues prepared steps on the stream.
    pub(super) fn enqueue(&self, steps: &[Step]) -> Result<()> {
        for step in steps {
            match step {
                Step::Kernel { f, cfg, args } => {
                    let mut l = self.stream.launch_builder(f);
                    for a in args {
                        match a {
                            Value::Ptr(x) => l.arg(x),
                            Value::I32(x) => l.arg(x),
                            Value::I64(x) => l.arg(x),
                            Value::F32(x) => l.arg(x),
                            Value::Layout(x) => l.arg(x),
                            Value::TensorMap(x) => l.arg(x),
                        };
                    }
                    // SAFETY: the spec's argument list follows the kernel's signature (the
                    // NVRTC test checks it against the PTX) and the buffers are sized for the op.
                    unsafe { l.launch(*cfg) }.map_err(drv)?;
                }
                Step::Cublas(dtype, g) => {
                    let handle = *self
                        .blas
                        .as_ref()
                        .ok_or_else(|| BackendError::Unavailable("cuBLAS not loaded".into()))?
                        .handle();
                    // SAFETY: buffers sized for this problem on the handle's stream.
                    unsafe { blas::cublas_gemm(handle, *dtype, g) }?;
                }
                Step::CublasLt(g) => {
                    let (lt, _) = self
                        .lt
                        .as_ref()
                        .ok_or_else(|| BackendError::Unavailable("cuBLASLt not loaded".into()))?;
                    // SAFETY: as above.
                    unsafe { blas::cublaslt_fp8(lt, g, self.stream.cu_stream()) }?;
                }
            }
        }
        Ok(())
    }
}
