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
    },
    /// A vendor library call on the same buffers.
    Library(Library),
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
            } => {
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
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
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
