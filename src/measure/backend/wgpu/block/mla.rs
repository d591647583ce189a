//! Multi-head latent attention's memory-bound ops on wgpu (see `block_mla` for the layer): the
//! key/value latent's RMSNorm, read in place from kv-down's output with the QK-norm kernel as one
//! head per token; rotary over the query heads in place and the shared key
//! (`mla_rotary.wgsl`); and the assembly of each head's key (`mla_key_assemble.wgsl`). The
//! matmuls, attention and the dense layer's ops run as in any block.

use super::{BlockKernel, QK_NORM, Slot, Stage, block_stage};
use crate::measure::backend::Result;
use crate::measure::backend::block::BlockShape;
use crate::measure::backend::cpu::RMSNORM_EPS;
use crate::model::ops::MemoryOp;

const ROTARY: BlockKernel = BlockKernel {
    file: "mla_rotary.wgsl",
    text: include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kernels/wgsl/mla_rotary.wgsl"
    )),
    // The query (turned in place), kv-down's output, the shared key's buffer.
    slots: &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
};

const KEY_ASSEMBLE: BlockKernel = BlockKernel {
    file: "mla_key_assemble.wgsl",
    text: include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kernels/wgsl/mla_key_assemble.wgsl"
    )),
    slots: &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
};

/// The ops of an MLA block this module runs.
pub(super) fn runs(name: &str) -> bool {
    matches!(name, "kv-latent-norm" | "rotary" | "k-assemble")
}

/// The stage, uniforms and implementation of op `name` (one of `runs`) of MLA block `b`.
pub(super) fn step(b: &BlockShape, name: &str, op: &MemoryOp) -> Result<(Stage, Vec<u32>, String)> {
    let m = b
        .mla
        .unwrap_or_else(|| unreachable!("the block runner calls this for MLA blocks only"));
    let (rows, dtype) = (op.rows, b.dtype);
    let (nope, rope) = (m.qk_nope_head_dim as u32, m.qk_rope_head_dim as u32);
    let heads = b.heads as u32;
    let (stage, params) = match name {
        // One "head" per token: the latent, the first kv_lora_rank columns of each kv-down row.
        "kv-latent-norm" => (
            block_stage(QK_NORM, dtype, [rows, 1])?,
            vec![
                rows as u32,
                m.kv_lora_rank as u32,
                1,
                1,
                m.cache_width() as u32,
                (RMSNORM_EPS as f32).to_bits(),
                0,
                0,
            ],
        ),
        "rotary" => (
            block_stage(
                ROTARY,
                dtype,
                [rows * (b.heads + 1) * m.qk_rope_head_dim / 2, 256],
            )?,
            vec![
                rows as u32,
                heads,
                rope,
                b.seq as u32,
                (b.heads * m.qk_head_dim()) as u32,
                m.qk_head_dim() as u32,
                nope,
                m.cache_width() as u32,
                m.kv_lora_rank as u32,
                (b.theta as f32).to_bits(),
                0,
                0,
            ],
        ),
        "k-assemble" => (
            block_stage(KEY_ASSEMBLE, dtype, [rows * b.heads * m.qk_head_dim(), 256])?,
            vec![
                rows as u32,
                heads,
                nope,
                rope,
                heads * (nope + m.v_head_dim as u32),
                nope + m.v_head_dim as u32,
                0,
                0,
            ],
        ),
        other => unreachable!("runs() names the MLA ops: {other}"),
    };
    Ok((stage, params, "wgpu:elementwise".to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::template;
    use super::*;
    use crate::model::dtype::DType;

    /// The MLA kernels template and validate with naga in both dtypes.
    #[test]
    fn the_mla_kernels_template_and_validate_with_naga() {
        for k in [ROTARY, KEY_ASSEMBLE] {
            for dtype in [DType::Fp32, DType::Fp16] {
                let src = template(k.text, dtype, &[]).unwrap();
                assert!(!src.contains("ELEM"), "{}", k.file);
                let module = naga::front::wgsl::parse_str(&src)
                    .unwrap_or_else(|e| panic!("{}: {}", k.file, e.emit_to_string(&src)));
                naga::valid::Validator::new(
                    naga::valid::ValidationFlags::all(),
                    naga::valid::Capabilities::all(),
                )
                .validate(&module)
                .unwrap_or_else(|e| panic!("{} {dtype}: {e:?}", k.file));
            }
        }
    }
}
