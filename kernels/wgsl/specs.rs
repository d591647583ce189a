//! The WGSL kernels, one entry per kernel: the variant it implements, the ops and dtypes it serves,
//! its tile, and its dispatches (source, template values, bindings, workgroup counts). The wgpu
//! backend, the output tiles the cost model pads to, and the kernel tests all read this table: a
//! new kernel is its `.wgsl` file and one entry here.

use super::{Slot, Wgsl, WgslStage, elementwise_groups, split_groups};
use crate::measure::backend::Variant;
use crate::measure::backend::spec::{KernelSpec, Serves, Source, any_shape};
use crate::model::dtype::DType;
use crate::model::ops::{Activation, Attention, Matmul, MemoryKind, MemoryOp, Op, Scan};

macro_rules! wgsl {
    ($file:literal) => {
        Source {
            file: $file,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/wgsl/", $file)),
        }
    };
}

const F32_F16: &[DType] = &[DType::Fp32, DType::Fp16];

/// Tile edge of the shared-memory matmul.
const TILE: u32 = 16;
/// Register-blocked matmul: block BM×BN, K step BK, micro-tile TM×TN per invocation (TM, TN
/// multiples of 4). Chosen on lavapipe from a small search (64×64 to 128×128 blocks, BK 8–64,
/// micro-tiles 4×4 to 8×8 all within 30% of each other); 12 KiB of workgroup memory, 256
/// invocations.
const RB: [u32; 5] = [64, 128, 16, 4, 8];
/// Fused attention: query rows per workgroup.
const ATTN_BR: u32 = 64;

const MATMUL_SLOTS: &[Slot] = &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params];

pub static SPECS: &[KernelSpec<Wgsl>] = &[
    KernelSpec {
        variant: Variant {
            name: "naive",
            idea: "one invocation per output, operands from global memory",
            vendor: false,
            tile: Some((16, 16)),
            baseline: true,
        },
        serves: Serves::Matmul,
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "matmul",
                source: wgsl!("matmul_naive.wgsl"),
                f32_only: false,
                subs: |_| Vec::new(),
                slots: MATMUL_SLOTS,
                groups: |op| matmul_groups(op, 16, 16),
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "tiled",
            idea: "16x16 tiles of A and B staged in workgroup memory",
            vendor: false,
            tile: Some((TILE, TILE)),
            baseline: true,
        },
        serves: Serves::Matmul,
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "matmul",
                source: wgsl!("matmul_tiled.wgsl"),
                f32_only: false,
                subs: |_| {
                    vec![
                        ("TILE_SQ", (TILE * TILE).to_string()),
                        ("TILEu", format!("{TILE}u")),
                        ("TILE", TILE.to_string()),
                    ]
                },
                slots: MATMUL_SLOTS,
                groups: |op| matmul_groups(op, TILE, TILE),
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "regblock",
            idea: "64x128 block per workgroup, 4x8 register micro-tile of vec4 accumulators per invocation",
            vendor: false,
            tile: Some((RB[0], RB[1])),
            baseline: false,
        },
        serves: Serves::Matmul,
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "matmul",
                source: wgsl!("matmul_regblock.wgsl"),
                f32_only: false,
                subs: |_| {
                    let [bm, bn, bk, tm, tn] = RB;
                    vec![
                        ("BM_u", format!("{bm}u")),
                        ("BN_u", format!("{bn}u")),
                        ("BK_u", format!("{bk}u")),
                        ("TM_u", format!("{tm}u")),
                        ("TN_u", format!("{tn}u")),
                        ("THREADS_LIT", ((bm / tm) * (bn / tn)).to_string()),
                        ("A_VEC4S", (bk * bm / 4).to_string()),
                        ("B_VEC4S", (bk * bn / 4).to_string()),
                    ]
                },
                slots: MATMUL_SLOTS,
                groups: |op| matmul_groups(op, RB[0], RB[1]),
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "naive",
            idea: "three passes: scores, softmax and PV through a materialized score matrix",
            vendor: false,
            tile: None,
            baseline: true,
        },
        serves: Serves::Attention,
        dtypes: F32_F16,
        accepts: |op| attention(op).is_some_and(within_head_dims),
        kernel: Wgsl {
            stages: &[
                WgslStage {
                    name: "scores",
                    source: wgsl!("attention_naive_scores.wgsl"),
                    f32_only: false,
                    subs: head_dims,
                    slots: &[Slot::Input(0), Slot::Input(1), Slot::Scratch, Slot::Params],
                    groups: |op| {
                        attention(op).map_or([0; 3], |a| {
                            let (q, kv) = (a.q_len as u32, a.kv_len as u32);
                            [kv.div_ceil(16), q.div_ceil(16), heads(a)]
                        })
                    },
                },
                WgslStage {
                    name: "softmax",
                    source: wgsl!("attention_naive_softmax.wgsl"),
                    // The score matrix is f32 whatever the operands.
                    f32_only: true,
                    subs: |_| Vec::new(),
                    slots: &[Slot::Scratch, Slot::Params],
                    groups: |op| {
                        attention(op).map_or([0; 3], |a| {
                            let [x, y] = split_groups(a.batch * a.q_heads * a.q_len);
                            [x, y, 1]
                        })
                    },
                },
                WgslStage {
                    name: "pv",
                    source: wgsl!("attention_naive_pv.wgsl"),
                    f32_only: false,
                    subs: head_dims,
                    slots: &[Slot::Scratch, Slot::Input(2), Slot::Output, Slot::Params],
                    groups: |op| {
                        attention(op).map_or([0; 3], |a| {
                            let q = a.q_len as u32;
                            [(a.v_head_dim as u32).div_ceil(16), q.div_ceil(16), heads(a)]
                        })
                    },
                },
            ],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "fused",
            idea: "online softmax over K/V blocks in workgroup memory; scores stay on chip",
            vendor: false,
            tile: Some((ATTN_BR, 1)),
            baseline: false,
        },
        serves: Serves::Attention,
        dtypes: F32_F16,
        accepts: |op| attention(op).is_some_and(within_head_dims),
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "fused",
                source: wgsl!("attention_fused.wgsl"),
                f32_only: false,
                subs: |op| {
                    let mut subs = head_dims(op);
                    if let Some(a) = attention(op) {
                        let (d, dv) = (a.qk_head_dim, a.v_head_dim);
                        let bc = attention_bc(d, dv);
                        subs.extend([
                            ("BR_LIT", ATTN_BR.to_string()),
                            ("BR_u", format!("{ATTN_BR}u")),
                            ("BC_u", format!("{bc}u")),
                            ("K_TILE4", (u64::from(bc) * d / 4).to_string()),
                            ("V_TILE4", (u64::from(bc) * dv / 4).to_string()),
                        ]);
                    }
                    subs
                },
                slots: &[
                    Slot::Input(0),
                    Slot::Input(1),
                    Slot::Input(2),
                    Slot::Output,
                    Slot::Params,
                ],
                groups: |op| {
                    attention(op).map_or([0; 3], |a| {
                        [(a.q_len as u32).div_ceil(ATTN_BR), heads(a), 1]
                    })
                },
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "mla-decode",
            idea: "absorbed MLA decode: 4 query heads per workgroup over one shared latent K/V, one pass",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Attention,
        dtypes: F32_F16,
        accepts: |op| attention(op).is_some_and(mla_decode_shape),
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "mla-decode",
                source: wgsl!("attention_mla_decode.wgsl"),
                f32_only: false,
                subs: head_dims,
                slots: &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
                groups: |op| {
                    attention(op).map_or([0; 3], |a| {
                        let groups = (a.q_heads / a.kv_heads).div_ceil(MLA_HEADS_PER_GROUP);
                        let [x, y] = split_groups(a.batch * a.kv_heads * groups);
                        [x, y, 1]
                    })
                },
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "one workgroup per row: sum of squares reduced in workgroup memory",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[MemoryKind::RmsNorm]),
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "rmsnorm",
                source: wgsl!("rmsnorm.wgsl"),
                f32_only: false,
                subs: |_| Vec::new(),
                slots: &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
                groups: |op| {
                    memory(op).map_or([0; 3], |m| {
                        let [x, y] = split_groups(m.rows);
                        [x, y, 1]
                    })
                },
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "one invocation per output element: silu(gate) * up",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[MemoryKind::GatedActivation(Activation::Silu)]),
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "gated-silu",
                source: wgsl!("gated_silu.wgsl"),
                f32_only: false,
                subs: |_| Vec::new(),
                slots: &[Slot::Input(0), Slot::Output, Slot::Params],
                groups: |op| memory(op).map_or([0; 3], |m| elementwise_groups(m.rows * m.cols)),
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "one invocation per element",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[MemoryKind::ResidualAdd]),
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "residual-add",
                source: wgsl!("residual_add.wgsl"),
                f32_only: false,
                subs: |_| Vec::new(),
                slots: &[Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
                groups: |op| memory(op).map_or([0; 3], |m| elementwise_groups(m.rows * m.cols)),
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "elementwise",
            idea: "one invocation per rotated pair, sin and cos computed in the kernel",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Memory(&[MemoryKind::Rotary]),
        dtypes: F32_F16,
        accepts: any_shape,
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "rotary",
                source: wgsl!("rotary.wgsl"),
                f32_only: false,
                subs: |_| Vec::new(),
                slots: &[Slot::Input(0), Slot::Output, Slot::Params],
                groups: |op| memory(op).map_or([0; 3], |m| elementwise_groups(m.rows * m.cols / 2)),
            }],
        },
    },
    KernelSpec {
        variant: Variant {
            name: "recurrent",
            idea: "gated delta rule token by token, one invocation per state column in fp32 registers",
            vendor: false,
            tile: None,
            baseline: false,
        },
        serves: Serves::Scan,
        dtypes: F32_F16,
        accepts: |op| scan(op).is_some_and(|s| s.key_dim.is_multiple_of(4)),
        kernel: Wgsl {
            stages: &[WgslStage {
                name: "scan",
                source: wgsl!("scan_gated_delta.wgsl"),
                f32_only: false,
                subs: scan_unrolled,
                slots: &[
                    Slot::Input(0),
                    Slot::Input(1),
                    Slot::Input(2),
                    Slot::Input(3),
                    Slot::Input(4),
                    Slot::Output,
                    Slot::Params,
                ],
                groups: |op| {
                    scan(op).map_or([0; 3], |s| {
                        [
                            (s.value_dim as u32).div_ceil(SCAN_WG),
                            (s.batch * s.heads) as u32,
                            1,
                        ]
                    })
                },
            }],
        },
    },
];

/// State columns per workgroup of the recurrent scan (its `WG`), and tokens whose keys and
/// queries it stages at a time (its `TB`).
const SCAN_WG: u32 = 32;
const SCAN_TB: u64 = 8;

/// Workgroup memory of the recurrent scan: the staged keys and queries in f32, gates and β.
pub fn scan_workgroup_bytes(s: &Scan) -> u64 {
    SCAN_TB * (2 * s.key_dim * 4 + 8)
}

/// The recurrent scan's per-token work over its dk/4 vec4s, written out: kᵀS as one sum, then
/// the update and read-out of each vec4.
fn scan_unrolled(op: &Op) -> Vec<(&'static str, String)> {
    let Some(s) = scan(op) else {
        return Vec::new();
    };
    let n = s.key_dim / 4;
    let sum: Vec<String> = (0..n).map(|i| format!("ks[row + {i}u] * s[{i}]")).collect();
    let update: String = (0..n)
        .map(|i| {
            format!(
                "                s[{i}] = a * s[{i}] + ks[row + {i}u] * u;\n                o += qs[row + {i}u] * s[{i}];\n"
            )
        })
        .collect();
    vec![
        ("KS_SUM", sum.join(" + ")),
        ("UPDATE_AND_READ", update),
        ("DK_u", format!("{}u", s.key_dim)),
    ]
}

// The dispatch rules below see only ops their kernel serves; another op gets no workgroups.

fn scan(op: &Op) -> Option<&Scan> {
    match op {
        Op::Scan(s) => Some(s),
        _ => None,
    }
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

/// Largest head dim the naive and fused attention kernels take (their accumulators and tiles).
pub const MAX_HEAD_DIM: u64 = 256;

fn within_head_dims(a: &Attention) -> bool {
    a.qk_head_dim <= MAX_HEAD_DIM && a.v_head_dim <= MAX_HEAD_DIM
}

/// Query heads per workgroup of the MLA decode kernel.
const MLA_HEADS_PER_GROUP: u64 = 4;

/// What the MLA decode kernel takes: one query over shared keys and values, keys up to 576 wide
/// (its workgroup memory) and values up to 512 (its accumulators).
pub fn mla_decode_shape(a: &Attention) -> bool {
    a.shared_kv && a.q_len == 1 && a.qk_head_dim <= 576 && a.v_head_dim <= 512
}

fn memory(op: &Op) -> Option<&MemoryOp> {
    match op {
        Op::Memory(m) => Some(m),
        _ => None,
    }
}

/// One workgroup per `bm`×`bn` block of each batch's output.
fn matmul_groups(op: &Op, bm: u32, bn: u32) -> [u32; 3] {
    matmul(op).map_or([0; 3], |mm| {
        [
            (mm.n as u32).div_ceil(bn),
            (mm.m as u32).div_ceil(bm),
            mm.batch as u32,
        ]
    })
}

/// Sequences × query heads.
fn heads(a: &Attention) -> u32 {
    (a.batch * a.q_heads) as u32
}

/// The head dimensions the attention kernels are specialized for.
fn head_dims(op: &Op) -> Vec<(&'static str, String)> {
    attention(op).map_or_else(Vec::new, |a| {
        vec![
            ("DV_u", format!("{}u", a.v_head_dim)),
            ("D_u", format!("{}u", a.qk_head_dim)),
        ]
    })
}

/// Keys per block of the fused attention kernel: K and V tiles stay within 8 KiB of workgroup
/// memory together.
fn attention_bc(d: u64, dv: u64) -> u32 {
    (1024 / d.max(dv)).max(1) as u32
}
