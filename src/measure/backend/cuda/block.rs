//! The transformer block on CUDA: every op of `BlockShape` launched in order on one stream —
//! cuBLAS for the matmuls (what a training or serving run calls), the flash kernel on strided
//! views of the projections, the memory-bound kernels — with an event between consecutive ops,
//! so each run gives the whole block's time and each op's. L2 is flushed before each run, not
//! between the ops: inside the block, an op finds what the previous one left in L2, as it would
//! in a model.

use super::{CudaBackend, FlashLayout, blas, drv, memory_elem};
use crate::measure::backend::block::{BlockInputs, BlockRun, BlockShape, Operand, operands};
use crate::measure::backend::{BackendError, Result};
use crate::model::ops::Op;
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

impl CudaBackend {
    /// Runs `block` once with every output poisoned (the last read back), then `runs` timed
    /// times.
    pub fn block_forward(
        &mut self,
        block: &BlockShape,
        inputs: &BlockInputs,
        runs: usize,
    ) -> Result<BlockRun> {
        let (elem, suffix) = memory_elem(block.dtype)
            .filter(|_| {
                matches!(
                    block.dtype,
                    crate::model::dtype::DType::Fp16 | crate::model::dtype::DType::Bf16
                )
            })
            .ok_or_else(|| {
                BackendError::Unsupported(format!(
                    "cuda block: fp16 or bf16 (the flash kernel's types), not {}",
                    block.dtype
                ))
            })?;
        if !matches!(block.head_dim, 64 | 128) {
            return Err(BackendError::Unsupported(format!(
                "cuda block: head dim 64 or 128 (the flash kernel's), not {}",
                block.head_dim
            )));
        }
        let handle = *self
            .blas
            .as_ref()
            .ok_or_else(|| BackendError::Unavailable("cuBLAS not loaded".into()))?
            .handle();
        let mut buffers: Vec<CudaSlice<u8>> = Vec::new();
        for t in inputs.tensors() {
            buffers.push(self.stream.clone_htod(&elem.encode(t)).map_err(drv)?);
        }
        let inputs_len = buffers.len();
        let mut out_elems = Vec::new();
        for i in 0..block.ops.len() {
            let n = block.output_elems(i) as usize;
            out_elems.push(n);
            buffers.push(
                self.stream
                    .alloc_zeros::<u8>(n * elem.bytes())
                    .map_err(drv)?,
            );
        }
        let ptrs: Vec<CUdeviceptr> = buffers.iter().map(|b| self.ptr(b)).collect();
        let wiring = operands();
        let operand = |o: &Operand| match *o {
            Operand::Input(i) => ptrs[i],
            Operand::Op(j) => ptrs[inputs_len + j],
        };
        let flash = self.function(
            "attention_flash.cu",
            &format!("attn_flash_{suffix}_d{}", block.head_dim),
        )?;
        let layout = FlashLayout::from(&block.attention_layout());
        let rotary = block.rotary_layout();
        let launch_all = |me: &mut CudaBackend,
                          events: Option<&[cudarc::driver::CudaEvent]>|
         -> Result<()> {
            for (i, (_, op)) in block.ops.iter().enumerate() {
                let ins: Vec<CUdeviceptr> = wiring[i].iter().map(operand).collect();
                let out = ptrs[inputs_len + i];
                match op {
                    Op::Matmul(mm) => {
                        let g = blas::Gemm {
                            m: mm.m as i32,
                            n: mm.n as i32,
                            k: mm.k as i32,
                            batch: mm.batch as i32,
                            a: ins[0],
                            b: ins[1],
                            c: out,
                        };
                        // SAFETY: buffers sized for this matmul, on the handle's stream.
                        unsafe { blas::cublas_gemm(handle, mm.input, &g) }?;
                    }
                    Op::Attention(a) => {
                        let (hq, hkv, sq, skv) = (
                            a.q_heads as i32,
                            a.kv_heads as i32,
                            a.q_len as i32,
                            a.kv_len as i32,
                        );
                        let (causal, window) = (i32::from(a.causal), a.window.unwrap_or(0) as i32);
                        let scale = 1.0f32 / (a.qk_head_dim as f32).sqrt();
                        let mut l = me.stream.launch_builder(&flash);
                        l.arg(&ins[0]).arg(&ins[1]).arg(&ins[2]).arg(&out);
                        l.arg(&hq).arg(&hkv).arg(&sq).arg(&skv);
                        l.arg(&causal).arg(&window).arg(&scale).arg(&layout);
                        let cfg = LaunchConfig {
                            grid_dim: ((sq as u32).div_ceil(64), (a.batch * a.q_heads) as u32, 1),
                            block_dim: (128, 1, 1),
                            shared_mem_bytes: 2 * 64 * (a.qk_head_dim as u32 + 8) * 2,
                        };
                        // SAFETY: signature of attention_flash.cu; views inside the buffers.
                        unsafe { l.launch(cfg) }.map_err(drv)?;
                    }
                    Op::Memory(m) => me.launch_memory(m, &ins, out, &rotary)?,
                    other => {
                        return Err(BackendError::Unsupported(format!(
                            "cuda block: no kernel for {other}"
                        )));
                    }
                }
                if let Some(ev) = events {
                    ev[i + 1].record(&me.stream).map_err(drv)?;
                }
            }
            Ok(())
        };

        // Checked run: every op's output poisoned first.
        for (i, n) in out_elems.iter().enumerate() {
            let poison = elem.poison(*n);
            self.stream
                .memcpy_htod(&poison, &mut buffers[inputs_len + i])
                .map_err(drv)?;
        }
        launch_all(self, None)?;
        self.stream.synchronize().map_err(drv)?;
        let last = buffers.len() - 1;
        let bytes = self.stream.clone_dtoh(&buffers[last]).map_err(drv)?;
        let output = elem.decode(&bytes, out_elems[out_elems.len() - 1]);

        use cudarc::driver::sys::CUevent_flags;
        let events = (0..=block.ops.len())
            .map(|_| self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(drv)?;
        let mut block_s = Vec::new();
        let mut op_s = Vec::new();
        for _ in 0..runs {
            self.stream.memset_zeros(&mut self.flush).map_err(drv)?;
            events[0].record(&self.stream).map_err(drv)?;
            launch_all(self, Some(&events))?;
            events[block.ops.len()].synchronize().map_err(drv)?;
            let span = |a: usize, b: usize| -> Result<f64> {
                Ok(f64::from(events[a].elapsed_ms(&events[b]).map_err(drv)?) * 1e-3)
            };
            block_s.push(span(0, block.ops.len())?);
            op_s.push(
                (0..block.ops.len())
                    .map(|i| span(i, i + 1))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        let implementations = block
            .ops
            .iter()
            .map(|(_, op)| match op {
                Op::Matmul(_) => "cuda:cublas",
                Op::Attention(_) => "cuda:flash",
                _ => "cuda:elementwise",
            })
            .map(String::from)
            .collect();
        Ok(BlockRun {
            output,
            block_s,
            op_s,
            implementations,
        })
    }
}
