//! The CUDA backend: hand-written kernels compiled by NVRTC and the vendor libraries (cuBLAS,
//! cuBLASLt) beside them, timed with CUDA events with the L2 flushed before every sample, and
//! NVML telemetry. Every CUDA library is loaded at run time and probed before its first use, so a
//! machine without CUDA gets a reason, not a panic.

pub mod blas;
mod block;
pub mod launch;
pub mod nvrtc;
#[path = "../../../../kernels/cuda/specs.rs"]
pub mod specs;
pub mod telemetry;

pub use launch::{
    Arg, Buf, Cuda, CudaSpec, Launch, Layouts, Library, QkNormLayout, Target, TensorMap, TmaElem,
};
pub use specs::{BLOCK_SPECS, SPECS};

use super::spec::{self, Source};
use super::{Backend, BackendError, Clock, DeviceInfo, Result, Telemetry, Variant, host};
use crate::model::dtype::DType;
use crate::model::ops::{Op, Pass};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr};
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
            Elem::F16 => host::encode(values, |v| half::f16::from_f32(v).to_le_bytes()),
            Elem::Bf16 => host::encode(values, |v| half::bf16::from_f32(v).to_le_bytes()),
            Elem::Fp8E4m3 => host::encode(values, |v| [host::fp8_e4m3_bits(v)]),
            Elem::I8 => host::encode(values, |v| [(v as i8) as u8]),
            Elem::I32 => host::encode(values, |v| (v as i32).to_le_bytes()),
        }
    }

    fn decode(self, bytes: &[u8], n: usize) -> Vec<f32> {
        match self {
            Elem::F32 => host::decode(bytes, n, f32::from_le_bytes),
            Elem::I32 => host::decode(bytes, n, |b| i32::from_le_bytes(b) as f32),
            Elem::F16 => host::decode(bytes, n, |b| half::f16::from_le_bytes(b).to_f32()),
            Elem::Bf16 => host::decode(bytes, n, |b| half::bf16::from_le_bytes(b).to_f32()),
            Elem::Fp8E4m3 | Elem::I8 => host::decode(bytes, n, |[b]| b as i8 as f32),
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

/// The loaded problem.
struct Problem {
    op: Op,
    inputs: Vec<Vec<CudaSlice<u8>>>,
    out: CudaSlice<u8>,
    out_elem: Elem,
    out_elems: usize,
    /// Naive attention's score matrix, or decode's partials.
    scratch: Option<CudaSlice<u8>>,
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

    /// Entry point `name` of a kernel file, compiled for this device on first use.
    fn function(&mut self, source: &Source, name: &str) -> Result<CudaFunction> {
        if !self.modules.contains_key(source.file) {
            let ptx = nvrtc::compile(source.file, source.text, &self.arch)?;
            let module = self.ctx.load_module(ptx).map_err(drv)?;
            self.modules.insert(source.file, module);
        }
        self.modules[source.file].load_function(name).map_err(drv)
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

    /// The steps of one run of `variant` on input set `set` of the loaded problem.
    fn steps(&mut self, variant: &str, set: usize) -> Result<Vec<launch::Step>> {
        let p = self.problem()?;
        let op = p.op;
        let spec = spec_for(variant, &op)?;
        let ins: Vec<CUdeviceptr> = p
            .inputs
            .get(set)
            .ok_or_else(|| BackendError::Device(format!("no input set {set}")))?
            .iter()
            .map(|b| self.ptr(b))
            .collect();
        let out = self.ptr(&p.out);
        let scratch = p.scratch.as_ref().map(|s| self.ptr(s));
        let bufs = launch::Buffers {
            ins: &ins,
            out,
            scratch,
        };
        let layouts = Layouts {
            sms: self.info.compute_units,
            ..Layouts::default()
        };
        self.prepare(spec, &op, &layouts, &bufs)
    }
}

/// The kernel `variant` names for `op`.
pub fn spec_for(variant: &str, op: &Op) -> Result<&'static CudaSpec> {
    spec::find(SPECS, variant, op).ok_or_else(|| {
        BackendError::Unsupported(format!(
            "no cuda variant '{variant}' for {op} (have: {})",
            spec::names_for(SPECS, op)
        ))
    })
}

impl Backend for CudaBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn variants(&self, op: &Op) -> Vec<Variant> {
        let runs = match op {
            // fp8 tensor cores arrive with Ada (sm_89).
            Op::Matmul(mm) => {
                matmul_elems(mm.input).is_some()
                    && (mm.input != DType::Fp8E4m3 || self.cc >= (8, 9))
            }
            Op::Attention(a) => {
                attention_elem(a.dtype).is_some()
                    && a.pass == Pass::Forward
                    && a.kv_dtype == a.dtype
                    && a.q_len <= a.kv_len
            }
            Op::Memory(m) => {
                memory_elem(m.dtype).is_some()
                    && crate::measure::backend::measured_memory_kind(m).is_ok()
            }
            // Indices inside the kernel are 32-bit per head and 64-bit across heads.
            Op::Scan(s) => {
                memory_elem(s.dtype).is_some()
                    && s.pass == Pass::Forward
                    && s.seq * s.key_dim.max(s.value_dim) <= i32::MAX as u64
            }
            _ => false,
        };
        if !runs {
            return Vec::new();
        }
        SPECS
            .iter()
            .filter(|s| s.takes(op))
            .filter(|s| match s.kernel {
                Cuda::Library(Library::Cublas) => self.blas.is_some(),
                Cuda::Library(Library::CublasLt) => self.lt.is_some(),
                // An sm_90a kernel elsewhere: not offered (asking for it by name says why).
                Cuda::Nvrtc { target, .. } => target.refusal(self.cc).is_none(),
            })
            .map(|s| s.variant)
            .collect()
    }

    fn load(&mut self, op: &Op, sets: &[Vec<Vec<f32>>]) -> Result<()> {
        self.problem = None;
        let (elems, out_elem, out_elems, scratch_bytes) = match op {
            Op::Matmul(mm) => {
                let (i, o) = matmul_elems(mm.input)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                (vec![i, i], o, (mm.batch * mm.m * mm.n) as usize, 0)
            }
            Op::Attention(a) => {
                let e = attention_elem(a.dtype)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                let bh = a.batch * a.q_heads;
                let out = (bh * a.q_len * a.v_head_dim) as usize;
                // Decode: one block per chunk of keys of every sequence and head (split-KV).
                let splits = if a.q_len == 1 {
                    specs::decode_split(a).0.max(specs::mla_decode_split(a).0)
                } else {
                    0
                };
                let max_scores = specs::MAX_SCORE_BYTES as usize;
                let scores = (bh * a.q_len * a.kv_len * 4) as usize;
                let partials = (bh * u64::from(splits) * (a.qk_head_dim + 2) * 4) as usize;
                let scratch = if a.q_len == 1 {
                    partials.max(scores.min(max_scores))
                } else if scores <= max_scores {
                    scores
                } else {
                    0
                };
                (vec![e, e, e], e, out, scratch)
            }
            Op::Memory(m) => {
                let kind = crate::measure::backend::measured_memory_kind(m)?;
                let (e, _) = memory_elem(m.dtype)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                let n = crate::measure::backend::memory_input_count(kind);
                (vec![e; n], e, (m.rows * m.cols) as usize, 0)
            }
            Op::Scan(s) => {
                let (e, _) = memory_elem(s.dtype)
                    .ok_or_else(|| BackendError::Unsupported(format!("cuda: {op}")))?;
                (
                    vec![e; 5],
                    e,
                    crate::measure::backend::cpu::scan_output_len(s),
                    0,
                )
            }
            other => return Err(BackendError::Unsupported(format!("cuda: {other}"))),
        };
        let mut inputs = Vec::new();
        for set in sets {
            let mut bufs = Vec::new();
            for (i, (t, e)) in set.iter().zip(&elems).enumerate() {
                let mut data = e.encode(t);
                // 8-bit matmuls take B as n×k (k contiguous), the layout fp8 tensor cores and
                // cuBLASLt use.
                if let Op::Matmul(mm) = op
                    && i == 1
                    && e.bytes() == 1
                {
                    data = host::transpose(&data, mm.k as usize, mm.n as usize);
                }
                bufs.push(self.stream.clone_htod(&data).map_err(drv)?);
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
        });
        Ok(())
    }

    fn run(&mut self, variant: &str, set: usize) -> Result<Vec<f32>> {
        let (elem, n) = {
            let p = self.problem()?;
            (p.out_elem, p.out_elems)
        };
        let steps = self.steps(variant, set)?;
        let poison = elem.poison(n);
        let p = self
            .problem
            .as_mut()
            .ok_or_else(|| BackendError::Device("no problem loaded".into()))?;
        self.stream.memcpy_htod(&poison, &mut p.out).map_err(drv)?;
        self.enqueue(&steps)?;
        self.stream.synchronize().map_err(drv)?;
        let p = self.problem()?;
        let bytes = self.stream.clone_dtoh(&p.out).map_err(drv)?;
        Ok(elem.decode(&bytes, n))
    }

    fn time(&mut self, variant: &str, runs: usize) -> Result<Vec<f64>> {
        use cudarc::driver::sys::CUevent_flags;
        let sets = self.problem()?.inputs.len();
        let steps = (0..sets)
            .map(|set| self.steps(variant, set))
            .collect::<Result<Vec<_>>>()?;
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
            self.enqueue(&steps[i % sets])?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::Matmul;

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
        let b: Vec<u8> = (1..=12).collect();
        // Two 3×2 matrices, each as 2×3.
        assert_eq!(
            host::transpose(&b, 3, 2),
            [1, 3, 5, 2, 4, 6, 7, 9, 11, 8, 10, 12]
        );
    }

    #[test]
    fn fp8_inputs_encode_as_the_reference_bits() {
        let v = crate::measure::harness::random_tensor(5000, DType::Fp8E4m3, 9);
        let want: Vec<u8> = v
            .iter()
            .map(|x| crate::model::dtype::fp8_bits(DType::Fp8E4m3, *x))
            .collect();
        assert_eq!(Elem::Fp8E4m3.encode(&v), want);
    }

    fn offered(op: &Op) -> Vec<&'static str> {
        SPECS
            .iter()
            .filter(|s| s.takes(op))
            .map(|s| s.variant.name)
            .collect()
    }

    /// The MLA decode split covers the context in whole tiles, fills about two waves of an
    /// H100/H200 when the batch is small, and never splits below two tiles per block.
    #[test]
    fn mla_decode_splits_cover_the_context() {
        for (batch, heads, ctx) in [
            (1, 128, 1),
            (1, 128, 1000),
            (1, 128, 32768),
            (64, 128, 32768),
            (4, 16, 77),
        ] {
            let a = crate::model::ops::Attention {
                batch,
                q_heads: heads,
                kv_heads: 1,
                qk_head_dim: specs::MLA_QK_HEAD_DIM,
                v_head_dim: specs::MLA_V_HEAD_DIM,
                shared_kv: true,
                ..attention(1, ctx, 128)
            };
            let (splits, chunk) = specs::mla_decode_split(&a);
            assert!(chunk % 32 == 0 && u64::from(splits) * chunk >= ctx, "{a:?}");
            assert!(u64::from(splits - 1) * chunk < ctx, "an empty split: {a:?}");
            let blocks = u64::from(splits) * batch * heads.div_ceil(16);
            assert!(
                blocks <= 264 + batch * heads.div_ceil(16),
                "{blocks} blocks for {a:?}"
            );
            if ctx >= 32768 && batch == 1 {
                assert!(blocks >= 200, "{blocks} blocks for {a:?}");
            }
        }
    }

    /// The split-KV decode split covers exactly the keys the query sees in whole 16-key steps,
    /// leaves no split empty, fills about two waves of an H100/H200 when the batch and heads are
    /// few, and keeps long slices (few partials) when they are many.
    #[test]
    fn decode_splits_fill_the_gpu_and_cover_the_keys() {
        for (batch, heads, ctx, window) in [
            (1, 1, 1, None),
            (1, 8, 1000, None),
            (1, 32, 4096, None),
            (8, 32, 8192, None),
            (64, 64, 32768, None),
            (2, 8, 300, Some(100)),
            (1, 4, 500, Some(130)),
            (1, 32, 32768, Some(4096)),
            (1, 32, 50, Some(4096)),
        ] {
            let a = crate::model::ops::Attention {
                batch,
                q_heads: heads,
                window,
                ..attention(1, ctx, 128)
            };
            let keys = specs::decode_keys(&a);
            assert_eq!(keys, window.map_or(ctx, |w| w.min(ctx)));
            let (splits, chunk) = specs::decode_split(&a);
            let splits = u64::from(splits);
            assert!(chunk % 16 == 0 && splits * chunk >= keys, "{a:?}");
            assert!((splits - 1) * chunk < keys, "an empty split: {a:?}");
            assert!(chunk >= specs::DECODE_MIN_CHUNK.min(keys), "{a:?}");
            let blocks = splits * batch * heads;
            assert!(
                blocks <= specs::DECODE_TARGET_BLOCKS + batch * heads,
                "{blocks} blocks for {a:?}"
            );
            if keys >= 32768 || (batch * heads >= 32 && keys >= 4096) {
                assert!(blocks >= 2000, "{blocks} blocks for {a:?}");
            }
        }
        // A large batch keeps whole long slices: 2048 sequence-heads need one split per 8k keys.
        let big = crate::model::ops::Attention {
            batch: 64,
            q_heads: 32,
            ..attention(1, 8192, 128)
        };
        assert_eq!(specs::decode_split(&big), (2, 4096));
    }

    fn attention(q_len: u64, kv_len: u64, d: u64) -> crate::model::ops::Attention {
        crate::model::ops::Attention {
            batch: 2,
            q_heads: 8,
            kv_heads: 2,
            q_len,
            kv_len,
            qk_head_dim: d,
            v_head_dim: d,
            causal: true,
            window: None,
            dtype: DType::Fp16,
            kv_dtype: DType::Fp16,
            fused: true,
            pass: Pass::Forward,
            shared_kv: false,
        }
    }

    /// Which implementations run which dtypes and shapes, in the order they are measured.
    #[test]
    fn the_table_offers_each_dtype_its_implementations() {
        let mm = |d, batch, m, n, k| Op::Matmul(Matmul::new(batch, m, n, k, d));
        let square = |d| mm(d, 1, 64, 64, 64);
        assert_eq!(
            offered(&square(DType::Fp32)),
            ["naive", "tiled", "regblock", "simt", "simt-64", "cublas"]
        );
        assert_eq!(offered(&square(DType::Tf32)), ["mma", "cublas-tf32"]);
        for d in [DType::Fp16, DType::Bf16] {
            assert_eq!(
                offered(&square(d)),
                ["mma", "wgmma", "wgmma-m64", "cublas"],
                "{d}"
            );
            // TMA's 16-byte row strides: k and n multiples of 8.
            assert_eq!(offered(&mm(d, 1, 64, 64, 60)), ["mma", "cublas"], "{d}");
            assert_eq!(offered(&mm(d, 1, 64, 60, 64)), ["mma", "cublas"], "{d}");
            assert_eq!(offered(&mm(d, 3, 1, 8, 8)).len(), 4, "{d}");
        }
        assert_eq!(offered(&square(DType::Int8)), ["mma", "cublas"]);
        assert_eq!(offered(&mm(DType::Int8, 1, 64, 6, 64)), ["mma"]);
        let hopper = ["mma", "wgmma", "wgmma-m64"];
        assert_eq!(
            offered(&square(DType::Fp8E4m3)),
            ["mma", "wgmma", "wgmma-m64", "cublaslt"]
        );
        assert_eq!(offered(&mm(DType::Fp8E4m3, 2, 64, 64, 64)), hopper);
        assert_eq!(offered(&mm(DType::Fp8E4m3, 1, 8, 64, 64)), hopper);
        // fp8 rows of k bytes: k a multiple of 16.
        assert_eq!(offered(&mm(DType::Fp8E4m3, 1, 64, 64, 40)), ["mma"]);
        assert!(
            offered(&square(DType::Tf32))
                .iter()
                .all(|v| !v.starts_with("wgmma"))
        );
        assert!(offered(&square(DType::Fp8E5m2)).is_empty());
        let a = |q, kv| Op::Attention(attention(q, kv, 128));
        assert_eq!(
            offered(&a(1, 4096)),
            ["naive", "flash", "flash-wgmma", "decode"]
        );
        assert_eq!(offered(&a(512, 512)), ["naive", "flash", "flash-wgmma"]);
        assert_eq!(offered(&a(1 << 17, 1 << 17)), ["flash", "flash-wgmma"]);
        // flash-wgmma's grid y is sequences × query heads.
        let Op::Attention(wide) = a(512, 512) else {
            unreachable!()
        };
        let wide = Op::Attention(crate::model::ops::Attention {
            batch: 65536,
            ..wide
        });
        assert!(!offered(&wide).contains(&"flash-wgmma"));
        // Absorbed MLA: only the MLA kernel takes a shared latent K/V head of 576 / 512.
        let mla = |q_len, shared_kv| {
            Op::Attention(crate::model::ops::Attention {
                q_heads: 128,
                kv_heads: 1,
                qk_head_dim: specs::MLA_QK_HEAD_DIM,
                v_head_dim: specs::MLA_V_HEAD_DIM,
                shared_kv,
                ..attention(q_len, 4096, 128)
            })
        };
        assert_eq!(offered(&mla(1, true)), ["mla-decode"]);
        assert!(offered(&mla(2, true)).is_empty());
        assert!(offered(&mla(1, false)).is_empty());
        let rms = crate::model::ops::MemoryOp::new(
            crate::model::ops::MemoryKind::RmsNorm,
            Pass::Forward,
            4,
            256,
            DType::Bf16,
        );
        assert_eq!(offered(&Op::Memory(rms)), ["elementwise"]);
        let scan = |dtype, key_dim| {
            Op::Scan(crate::model::ops::Scan {
                batch: 2,
                heads: 4,
                seq: 100,
                key_dim,
                value_dim: 40,
                chunk: 64,
                dtype,
                pass: Pass::Forward,
            })
        };
        assert_eq!(offered(&scan(DType::Bf16, 128)), ["chunked"]);
        // The state slice in shared memory takes key dims up to 128.
        assert!(offered(&scan(DType::Bf16, 256)).is_empty());
        assert!(offered(&scan(DType::Fp8E4m3, 128)).is_empty());
        // One block per 16 value columns of each sequence and head.
        let l = launch_of("chunked", &scan(DType::Fp16, 128));
        assert_eq!((l[0].grid, l[0].block), ((3, 8, 1), (128, 1, 1)));
    }

    /// flash-wgmma reads Q, K and V through one TMA map each: a view one map cannot express
    /// (here K starting past the buffer's start) is refused with the reason, not launched.
    #[test]
    fn flash_wgmma_refuses_layouts_one_tensor_map_cannot_view() {
        let op = Op::Attention(attention(100, 300, 128));
        let Op::Attention(a) = &op else {
            unreachable!()
        };
        let mut layout = crate::measure::backend::AttentionLayout::head_major(a);
        let Cuda::Nvrtc { launches, .. } = spec_for("flash-wgmma", &op).unwrap().kernel else {
            panic!("flash-wgmma is ours")
        };
        let with = |layout| Layouts {
            attention: Some(layout),
            ..Layouts::default()
        };
        assert!(launches(&op, &with(layout)).is_ok());
        layout.k.offset = 8;
        let err = launches(&op, &with(layout)).unwrap_err().to_string();
        assert!(err.contains("the K layout"), "{err}");
    }

    fn launch_of(variant: &str, op: &Op) -> Vec<Launch> {
        match spec_for(variant, op).unwrap().kernel {
            Cuda::Nvrtc { launches, .. } => launches(op, &Layouts::default()).unwrap(),
            Cuda::Library(_) => panic!("{variant} is a library"),
        }
    }

    /// Grids, blocks and shared memory as the kernels are written for.
    #[test]
    fn launches_keep_their_grids_and_shared_memory() {
        let geometry = |l: &Launch| (l.entry.clone(), l.grid, l.block, l.smem);
        let mm = |d| Op::Matmul(Matmul::new(3, 300, 500, 64, d));
        let one = |v: &str, op: &Op| geometry(&launch_of(v, op)[0]);
        assert_eq!(
            one("naive", &mm(DType::Fp32)),
            ("matmul_fp32_naive".into(), (32, 19, 3), (16, 16, 1), 0)
        );
        assert_eq!(
            one("tiled", &mm(DType::Fp32)),
            ("matmul_fp32_tiled".into(), (16, 10, 3), (32, 32, 1), 0)
        );
        assert_eq!(
            one("regblock", &mm(DType::Fp32)),
            ("matmul_fp32_regblock".into(), (4, 3, 3), (256, 1, 1), 0)
        );
        assert_eq!(
            one("simt", &mm(DType::Fp32)),
            ("matmul_fp32_simt".into(), (4, 3, 3), (256, 1, 1), 0)
        );
        assert_eq!(
            one("simt-64", &mm(DType::Fp32)),
            ("matmul_fp32_simt_64".into(), (8, 5, 3), (64, 1, 1), 0)
        );
        for (d, entry, smem) in [
            (DType::Tf32, "mma_tf32", 37376),
            (DType::Fp16, "mma_f16", 37888),
            (DType::Bf16, "mma_bf16", 37888),
            (DType::Int8, "mma_i8", 40960),
            (DType::Fp8E4m3, "mma_e4m3", 40960),
        ] {
            assert_eq!(
                one("mma", &mm(d)),
                (entry.into(), (4, 3, 3), (256, 1, 1), smem)
            );
        }
        let flash = Op::Attention(attention(100, 300, 128));
        assert_eq!(
            one("flash", &flash),
            ("attn_flash_f16_d128".into(), (2, 16, 1), (128, 1, 1), 34816)
        );
        // 128 queries per CTA, three warpgroups; Q and three stages of K and V at d = 128.
        assert_eq!(
            one("flash-wgmma", &flash),
            (
                "attn_wgmma_f16_d128".into(),
                (1, 16, 1),
                (384, 1, 1),
                230456
            )
        );
        let naive: Vec<_> = launch_of("naive", &flash).iter().map(geometry).collect();
        assert_eq!(
            naive,
            [
                ("attn_naive_scores_f16".into(), (19, 7, 16), (16, 16, 1), 0),
                ("attn_naive_softmax".into(), (1600, 1, 1), (256, 1, 1), 0),
                ("attn_naive_pv_f16".into(), (8, 7, 16), (16, 16, 1), 0),
            ]
        );
        let decode = Op::Attention(attention(1, 300, 64));
        let launches = launch_of("decode", &decode);
        assert_eq!(
            launches.iter().map(geometry).collect::<Vec<_>>(),
            [
                ("attn_decode_f16_d64".into(), (4, 16, 1), (128, 1, 1), 0),
                (
                    "attn_decode_combine_f16_d64".into(),
                    (16, 1, 1),
                    (64, 1, 1),
                    0
                ),
            ]
        );
        // Four splits of 80 keys (the chunk is the partial kernel's eighth argument).
        assert_eq!(launches[0].args[7], Arg::I32(80));
        assert_eq!(launches[1].args.last(), Some(&Arg::I32(4)));
        use crate::model::ops::{Activation, MemoryKind, MemoryOp};
        for (kind, grid) in [
            (MemoryKind::RmsNorm, 5),
            (MemoryKind::GatedActivation(Activation::Silu), 5),
            (MemoryKind::ResidualAdd, 5),
            (MemoryKind::Rotary, 3),
        ] {
            let m = Op::Memory(MemoryOp::new(kind, Pass::Forward, 5, 256, DType::Fp16));
            let (entry, g, block, _) = one("elementwise", &m);
            assert!(entry.ends_with("_f16"), "{entry}");
            assert_eq!((g, block), ((grid, 1, 1), (256, 1, 1)), "{entry}");
        }
    }

    /// The Hopper GEMM's launches: one persistent CTA per multiprocessor (fewer with fewer
    /// tiles), a producer and one or two consumer warpgroups, the shared memory its stages,
    /// epilogue slabs and barriers take, and TMA maps whose boxes are the stages' halves.
    #[test]
    fn wgmma_launches_persistent_ctas_with_tma_maps() {
        let layouts = |sms| Layouts {
            sms: Some(sms),
            ..Layouts::default()
        };
        let launch = |v: &str, op: &Op, sms| match spec_for(v, op).unwrap().kernel {
            Cuda::Nvrtc { launches, .. } => launches(op, &layouts(sms)).unwrap().remove(0),
            Cuda::Library(_) => unreachable!(),
        };
        let big = Op::Matmul(Matmul::new(1, 4096, 4096, 4096, DType::Bf16));
        let l = launch("wgmma", &big, 132);
        assert_eq!(
            (l.entry.as_str(), l.grid, l.block, l.smem),
            ("wgmma_bf16_m128n256", (132, 1, 1), (384, 1, 1), 216_128)
        );
        // A: (k, m, batch), boxes of 64 k × 128 rows; B (k×n): (n, k, batch), boxes of 64 n × 64 k.
        let a = TensorMap {
            buf: Buf::Input(0),
            elem: TmaElem::Bf16,
            dims: [4096, 4096, 1],
            strides: [8192, 4096 * 8192],
            boxed: [64, 128, 1],
        };
        let b = TensorMap {
            buf: Buf::Input(1),
            dims: [4096, 4096, 1],
            boxed: [64, 64, 1],
            ..a
        };
        assert_eq!(
            l.args[..3],
            [Arg::TensorMap(a), Arg::TensorMap(b), Arg::Buf(Buf::Output)]
        );
        assert_eq!(l.args[3..], [4096, 4096, 4096, 1].map(Arg::I32));
        // Few tiles: one CTA each; the narrow tile's one consumer, 8 stages.
        let small = Op::Matmul(Matmul::new(3, 100, 264, 40, DType::Fp16));
        assert_eq!(launch("wgmma", &small, 132).grid, (3 * 2, 1, 1));
        let l = launch("wgmma-m64", &small, 4);
        assert_eq!(
            (l.entry.as_str(), l.grid, l.block, l.smem),
            ("wgmma_f16_m64n128", (4, 1, 1), (256, 1, 1), 206_976)
        );
        // fp8: B stored n×k, one box of 128 k × 256 n rows; A boxes of 128 k.
        let fp8 = Op::Matmul(Matmul::new(2, 300, 520, 1008, DType::Fp8E4m3));
        let l = launch("wgmma", &fp8, 132);
        assert_eq!(l.entry, "wgmma_e4m3_m128n256");
        let Arg::TensorMap(b) = l.args[1] else {
            panic!("{:?}", l.args[1])
        };
        assert_eq!(
            (b.elem, b.dims, b.strides, b.boxed),
            (
                TmaElem::U8,
                [1008, 520, 2],
                [1008, 520 * 1008],
                [128, 256, 1]
            )
        );
        // Every stage is one expect_tx: A's box plus B's boxes, 128 bytes of K per row.
        for (tile, stage) in [
            (&specs::WGMMA_LARGE, 48 << 10),
            (&specs::WGMMA_NARROW, 24 << 10),
        ] {
            assert_eq!((tile.bm() + tile.bn) * 128, stage);
            assert!(tile.smem() <= 227 << 10);
        }
        // Every map the launches make is one TMA takes.
        for op in [big, small, fp8] {
            for v in ["wgmma", "wgmma-m64"] {
                for a in launch(v, &op, 132).args {
                    if let Arg::TensorMap(t) = a {
                        assert_eq!(t.invalid(256), None, "{v} {op}");
                    }
                }
            }
        }
        let mut bad = a;
        bad.strides[0] = 8190;
        assert!(bad.invalid(256).unwrap().contains("multiples of 16"));
        assert!(a.invalid(8).unwrap().contains("aligned"));
    }

    /// The device check's Hopper shape files are shapes both wgmma variants take in every
    /// dtype, and the smoke preset holds some, so their correctness runs before any timing.
    #[test]
    fn hopper_shape_files_are_wgmma_shapes() {
        use crate::measure::harness::shapes::matmul_shapes;
        let dir = env!("CARGO_MANIFEST_DIR");
        for dtype in [DType::Bf16, DType::Fp16, DType::Fp8E4m3] {
            for file in ["hopper_smoke.toml", "hopper_targets.toml"] {
                let path = format!("{dir}/scripts/{file}");
                let shapes = matmul_shapes(&path, dtype, f64::INFINITY).unwrap();
                assert!(!shapes.is_empty(), "{file}");
                for mm in shapes {
                    let op = Op::Matmul(mm);
                    let offered = offered(&op);
                    assert!(
                        offered.contains(&"wgmma") && offered.contains(&"wgmma-m64"),
                        "{file}: {op}"
                    );
                }
            }
            let smoke = matmul_shapes("smoke", dtype, f64::INFINITY).unwrap();
            let taken = smoke
                .into_iter()
                .filter(|mm| offered(&Op::Matmul(*mm)).contains(&"wgmma"))
                .count();
            assert!(taken >= 3, "{dtype}: {taken} smoke shapes");
        }
    }

    /// The device check's SIMT GEMM shape files are fp32 shapes both simt variants take beside
    /// regblock and cuBLAS, and the targets hold the 4096³ GEMM the H100 record compares.
    #[test]
    fn sgemm_shape_files_are_simt_shapes() {
        use crate::measure::harness::shapes::matmul_shapes;
        let dir = env!("CARGO_MANIFEST_DIR");
        for file in ["sgemm_smoke.toml", "sgemm_targets.toml"] {
            let path = format!("{dir}/scripts/{file}");
            let shapes = matmul_shapes(&path, DType::Fp32, f64::INFINITY).unwrap();
            assert!(shapes.len() >= 3, "{file}");
            for mm in &shapes {
                let offered = offered(&Op::Matmul(*mm));
                for v in ["regblock", "simt", "simt-64", "cublas"] {
                    assert!(offered.contains(&v), "{file}: {mm:?} lacks {v}");
                }
            }
            if file == "sgemm_targets.toml" {
                assert!(shapes.contains(&Matmul::new(1, 4096, 4096, 4096, DType::Fp32)));
            }
        }
    }

    /// The device check's Hopper attention shape files are shapes flash-wgmma takes in both
    /// dtypes (and flash beside it), with GQA, ragged and causal ones among them.
    #[test]
    fn hopper_attention_shape_files_are_flash_wgmma_shapes() {
        use crate::measure::harness::shapes::attention_shapes;
        let dir = env!("CARGO_MANIFEST_DIR");
        for dtype in [DType::Bf16, DType::Fp16] {
            for file in [
                "hopper_attention_smoke.toml",
                "hopper_attention_targets.toml",
            ] {
                let path = format!("{dir}/scripts/{file}");
                let shapes = attention_shapes(&path, dtype, f64::INFINITY).unwrap();
                assert!(!shapes.is_empty(), "{file}");
                for a in shapes {
                    let op = Op::Attention(a);
                    let offered = offered(&op);
                    assert!(
                        offered.contains(&"flash-wgmma") && offered.contains(&"flash"),
                        "{file}: {op}"
                    );
                }
            }
            let smoke = attention_shapes("smoke", dtype, f64::INFINITY).unwrap();
            let taken = smoke
                .into_iter()
                .filter(|a| offered(&Op::Attention(*a)).contains(&"flash-wgmma"))
                .count();
            assert!(taken >= 3, "{dtype}: {taken} smoke shapes");
        }
    }

    /// sm_90a kernels run on compute capability 9.0 only: elsewhere they are refused with the
    /// reason, not compiled and crashed.
    #[test]
    fn hopper_kernels_are_refused_off_hopper() {
        assert_eq!(Target::Sm90a.refusal((9, 0)), None);
        for cc in [(8, 0), (8, 9), (10, 0), (12, 0)] {
            let why = Target::Sm90a.refusal(cc).unwrap();
            assert!(why.contains("9.0") && why.contains(&format!("sm_{}{}", cc.0, cc.1)));
            assert_eq!(Target::Any.refusal(cc), None);
        }
        assert_eq!(specs::target_of("matmul_wgmma.cu"), Target::Sm90a);
        assert_eq!(specs::target_of("matmul_mma.cu"), Target::Any);
    }

    /// The tiles the cost model pads to come from the table.
    #[test]
    fn output_tiles_come_from_the_table() {
        use crate::model::ops::OpClass;
        let tile = crate::measure::backend::output_tile;
        assert_eq!(tile("cuda:mma", OpClass::Matmul), Some((128, 128)));
        assert_eq!(tile("cuda:wgmma", OpClass::Matmul), Some((128, 256)));
        assert_eq!(tile("cuda:wgmma-m64", OpClass::Matmul), Some((64, 128)));
        assert_eq!(tile("cuda:naive", OpClass::Matmul), Some((16, 16)));
        assert_eq!(tile("cuda:tiled", OpClass::Matmul), Some((32, 32)));
        assert_eq!(tile("cuda:cublas", OpClass::Matmul), None);
        assert_eq!(tile("cuda:naive", OpClass::Attention), None);
        assert_eq!(tile("cuda:flash", OpClass::Attention), Some((64, 1)));
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
