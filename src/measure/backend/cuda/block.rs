//! The transformer block on CUDA: every op of `BlockShape` launched in order on one stream —
//! cuBLAS for the matmuls (what a training or serving run calls), the flash kernel on strided
//! views of the projections, the memory-bound kernels (QK-norm and GeGLU from the block's own
//! table, `BLOCK_SPECS`) — with an event between consecutive ops,
//! so each run gives the whole block's time and each op's. L2 is flushed before each run, not
//! between the ops: inside the block, an op finds what the previous one left in L2, as it would
//! in a model.

use super::launch::{Buffers, Layouts, QkNormLayout};
use super::specs::BLOCK_SPECS;
use super::{CudaBackend, drv, memory_elem, spec_for};
use crate::measure::backend::block::{BlockInputs, BlockRun, BlockShape, Operand};
use crate::measure::backend::{BackendError, Result};
use crate::model::ops::Op;
use cudarc::driver::CudaSlice;
use cudarc::driver::sys::CUdeviceptr;

impl CudaBackend {
    /// Runs `block` once with every output poisoned (the last read back), then `runs` timed
    /// times.
    pub fn block_forward(
        &mut self,
        block: &BlockShape,
        inputs: &BlockInputs,
        runs: usize,
    ) -> Result<BlockRun> {
        if block.mla.is_some() {
            return Err(BackendError::Unsupported(
                "cuda block: no kernels for multi-head latent attention's prefill (its in-place query rotary and key assembly): run it with --backend wgpu".into(),
            ));
        }
        let (elem, _) = memory_elem(block.dtype)
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
        let wiring = block.operands();
        let operand = |o: &Operand| match *o {
            Operand::Input(i) => ptrs[i],
            Operand::Op(j) => ptrs[inputs_len + j],
        };
        // Strided views of the projections, as the model's block reads them.
        let layouts = Layouts {
            attention: Some(block.attention_layout()),
            rotary: Some(block.rotary_layout()),
            qk_norm: Some(QkNormLayout {
                heads: (block.heads + block.kv_heads) as u32,
                q_heads: block.heads as u32,
                in_row: block.qkv_width() as u32,
            }),
            sms: self.info.compute_units,
        };
        let mut steps = Vec::new();
        let mut implementations = Vec::new();
        for (i, (name, op)) in block.ops.iter().enumerate() {
            // cuBLAS for the matmuls, as a training or serving run calls.
            let variant = match op {
                Op::Matmul(_) => "cublas",
                Op::Attention(_) => "flash",
                _ => "elementwise",
            };
            // QK-norm and GeGLU run the block's own kernels.
            let spec = match name.as_str() {
                "qk-norm" | "gated-gelu" => {
                    BLOCK_SPECS.iter().find(|s| s.takes(op)).ok_or_else(|| {
                        BackendError::Unsupported(format!("cuda block: no kernel for {op}"))
                    })?
                }
                _ => spec_for(variant, op)
                    .map_err(|e| BackendError::Unsupported(format!("cuda block: {e}")))?,
            };
            let ins: Vec<CUdeviceptr> = wiring[i].iter().map(operand).collect();
            let bufs = Buffers {
                ins: &ins,
                out: ptrs[inputs_len + i],
                scratch: None,
            };
            steps.push(self.prepare(spec, op, &layouts, &bufs)?);
            implementations.push(format!("cuda:{variant}"));
        }
        let launch_all =
            |me: &CudaBackend, events: Option<&[cudarc::driver::CudaEvent]>| -> Result<()> {
                for (i, op_steps) in steps.iter().enumerate() {
                    me.enqueue(op_steps)?;
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
        Ok(BlockRun {
            output,
            block_s,
            op_s,
            implementations,
        })
    }
}
