//! The wgpu backend: WGSL kernels from `kernels/wgsl/` on any adapter wgpu finds (Vulkan here;
//! Mesa's lavapipe on a machine without a GPU). Timed with timestamp queries where the adapter has
//! them, else with the host clock, labelled.

use super::{AttentionLayout, Backend, BackendError, Clock, DeviceInfo, Result, Variant};
use crate::model::dtype::DType;
use crate::model::ops::{Attention, MemoryKind, MemoryOp, Op};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wgpu::util::DeviceExt;

mod block;

const MATMUL_NAIVE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/matmul_naive.wgsl"
));
const MATMUL_TILED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/matmul_tiled.wgsl"
));
const MATMUL_REGBLOCK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/matmul_regblock.wgsl"
));
const ATTN_SCORES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/attention_naive_scores.wgsl"
));
const ATTN_SOFTMAX: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/attention_naive_softmax.wgsl"
));
const ATTN_PV: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/attention_naive_pv.wgsl"
));
const ATTN_FUSED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/attention_fused.wgsl"
));
const RMSNORM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/rmsnorm.wgsl"
));
const GATED_SILU: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/gated_silu.wgsl"
));
const RESIDUAL_ADD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/residual_add.wgsl"
));
const ROTARY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kernels/wgsl/rotary.wgsl"
));

/// Tile edge of the shared-memory kernel.
const TILE: u32 = 16;
/// Register-blocked kernel: block BM×BN, K step BK, micro-tile TM×TN per invocation (TM, TN
/// multiples of 4). Chosen on lavapipe from a small search (64×64 to 128×128 blocks, BK 8–64,
/// micro-tiles 4×4 to 8×8 all within 30% of each other); 12 KiB of workgroup memory, 256
/// invocations.
const RB: [u32; 5] = [64, 128, 16, 4, 8];
/// Fused attention: query rows per workgroup.
const ATTN_BR: u32 = 64;
/// Largest head dimension the attention kernels take.
const MAX_HEAD_DIM: u64 = 256;

pub const MATMUL_VARIANTS: [Variant; 3] = [
    Variant {
        name: "naive",
        idea: "one invocation per output, operands from global memory",
        vendor: false,
        tile: Some((16, 16)),
    },
    Variant {
        name: "tiled",
        idea: "16x16 tiles of A and B staged in workgroup memory",
        vendor: false,
        tile: Some((16, 16)),
    },
    Variant {
        name: "regblock",
        idea: "64x128 block per workgroup, 4x8 register micro-tile of vec4 accumulators per invocation",
        vendor: false,
        tile: Some((64, 128)),
    },
];

pub const ATTENTION_VARIANTS: [Variant; 2] = [
    Variant {
        name: "naive",
        idea: "three passes: scores, softmax and PV through a materialized score matrix",
        vendor: false,
        tile: None,
    },
    Variant {
        name: "fused",
        idea: "online softmax over K/V blocks in workgroup memory; scores stay on chip",
        vendor: false,
        tile: Some((64, 1)),
    },
];

pub const MEMORY_VARIANTS: [Variant; 1] = [Variant {
    name: "elementwise",
    idea: "one invocation per element (per pair for rotary, one workgroup per row for RMSNorm)",
    vendor: false,
    tile: None,
}];

fn device_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Device(e.to_string())
}

fn elem(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::Fp32 => Ok("f32"),
        DType::Fp16 => Ok("f16"),
        d => Err(BackendError::Unsupported(format!(
            "wgpu kernels run fp32 and fp16, not {d}"
        ))),
    }
}

/// Applies the template step: substitutes `(token, value)` pairs and the element type.
fn template(source: &str, dtype: DType, subs: &[(&str, String)]) -> Result<String> {
    let mut s = source.to_string();
    for (token, value) in subs {
        s = s.replace(token, value);
    }
    let s = s.replace("ELEM", elem(dtype)?);
    Ok(if dtype == DType::Fp16 {
        format!("enable f16;\n{s}")
    } else {
        s
    })
}

/// WGSL source of a matmul variant for an element type, after the template step.
pub fn matmul_source(variant: &str, dtype: DType) -> Result<String> {
    let [bm, bn, bk, tm, tn] = RB;
    match variant {
        "naive" => template(MATMUL_NAIVE, dtype, &[]),
        "tiled" => template(
            MATMUL_TILED,
            dtype,
            &[
                ("TILE_SQ", (TILE * TILE).to_string()),
                ("TILEu", format!("{TILE}u")),
                ("TILE", TILE.to_string()),
            ],
        ),
        "regblock" => template(
            MATMUL_REGBLOCK,
            dtype,
            &[
                ("BM_u", format!("{bm}u")),
                ("BN_u", format!("{bn}u")),
                ("BK_u", format!("{bk}u")),
                ("TM_u", format!("{tm}u")),
                ("TN_u", format!("{tn}u")),
                ("THREADS_LIT", ((bm / tm) * (bn / tn)).to_string()),
                ("A_VEC4S", (bk * bm / 4).to_string()),
                ("B_VEC4S", (bk * bn / 4).to_string()),
            ],
        ),
        other => Err(BackendError::Unsupported(format!(
            "no wgpu matmul variant '{other}' (have: naive, tiled, regblock)"
        ))),
    }
}

/// The attention kernels' uniform block: shape, masking and scale (all kernels), then the fused
/// kernel's operand layout.
pub fn attention_params(a: &Attention, layout: &AttentionLayout) -> Vec<u32> {
    let scale = 1.0f32 / (a.qk_head_dim as f32).sqrt();
    let mut p = vec![
        a.batch as u32,
        a.q_heads as u32,
        a.kv_heads as u32,
        a.q_len as u32,
        a.kv_len as u32,
        u32::from(a.causal),
        a.window.unwrap_or(0) as u32,
        scale.to_bits(),
    ];
    for s in [layout.q, layout.k, layout.v, layout.o] {
        p.extend([s.batch, s.head, s.row, s.offset].map(|x| x as u32));
    }
    p
}

/// Keys per block of the fused attention kernel: K and V tiles stay within 8 KiB of workgroup
/// memory together.
fn attention_bc(d: u64, dv: u64) -> u32 {
    (1024 / d.max(dv)).max(1) as u32
}

/// WGSL sources of an attention variant's stages, after the template step.
pub fn attention_sources(variant: &str, a: &Attention) -> Result<Vec<String>> {
    let (d, dv) = (a.qk_head_dim, a.v_head_dim);
    let dims = [("DV_u", format!("{dv}u")), ("D_u", format!("{d}u"))];
    match variant {
        "naive" => Ok(vec![
            template(ATTN_SCORES, a.dtype, &dims)?,
            template(ATTN_SOFTMAX, DType::Fp32, &[])?,
            template(ATTN_PV, a.dtype, &dims)?,
        ]),
        "fused" => {
            let bc = attention_bc(d, dv);
            let mut subs = dims.to_vec();
            subs.extend([
                ("BR_LIT", ATTN_BR.to_string()),
                ("BR_u", format!("{ATTN_BR}u")),
                ("BC_u", format!("{bc}u")),
                ("K_TILE4", (u64::from(bc) * d / 4).to_string()),
                ("V_TILE4", (u64::from(bc) * dv / 4).to_string()),
            ]);
            Ok(vec![template(ATTN_FUSED, a.dtype, &subs)?])
        }
        other => Err(BackendError::Unsupported(format!(
            "no wgpu attention variant '{other}' (have: naive, fused)"
        ))),
    }
}

/// Where a stage's binding points.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Input(usize),
    Output,
    Scratch,
    Params,
}

/// One dispatch of a variant.
struct Stage {
    key: String,
    source: String,
    slots: Vec<Slot>,
    groups: [u32; 3],
}

/// A variant ready to dispatch: its stages, their pipelines, and bind groups per input set.
struct Prepared {
    stages: Vec<Stage>,
    pipelines: Vec<wgpu::ComputePipeline>,
    groups: Vec<Vec<wgpu::BindGroup>>,
}

/// Splits a 1-D count of workgroups over x and y (each at most 65535).
fn split_groups(n: u64) -> [u32; 2] {
    let x = n.min(65535);
    [x as u32, n.div_ceil(65535).max(1) as u32]
}

fn stages(op: &Op, variant: &str) -> Result<Vec<Stage>> {
    match op {
        Op::Matmul(mm) => {
            let (m, n, b) = (mm.m as u32, mm.n as u32, mm.batch as u32);
            let groups = match variant {
                "regblock" => [n.div_ceil(RB[1]), m.div_ceil(RB[0]), b],
                _ => [n.div_ceil(16), m.div_ceil(16), b],
            };
            Ok(vec![Stage {
                key: format!("matmul-{variant}-{}", mm.input),
                source: matmul_source(variant, mm.input)?,
                slots: vec![Slot::Input(0), Slot::Input(1), Slot::Output, Slot::Params],
                groups,
            }])
        }
        Op::Attention(a) => {
            let sources = attention_sources(variant, a)?;
            let key = |stage: &str| {
                format!(
                    "attention-{variant}-{stage}-{}-d{}-dv{}",
                    a.dtype, a.qk_head_dim, a.v_head_dim
                )
            };
            let bh = (a.batch * a.q_heads) as u32;
            let (q, kv) = (a.q_len as u32, a.kv_len as u32);
            let mut sources = sources.into_iter();
            let mut next = || sources.next().unwrap_or_default();
            Ok(match variant {
                "naive" => {
                    let rows = a.batch * a.q_heads * a.q_len;
                    let [rx, ry] = split_groups(rows);
                    vec![
                        Stage {
                            key: key("scores"),
                            source: next(),
                            slots: vec![
                                Slot::Input(0),
                                Slot::Input(1),
                                Slot::Scratch,
                                Slot::Params,
                            ],
                            groups: [kv.div_ceil(16), q.div_ceil(16), bh],
                        },
                        Stage {
                            key: key("softmax"),
                            source: next(),
                            slots: vec![Slot::Scratch, Slot::Params],
                            groups: [rx, ry, 1],
                        },
                        Stage {
                            key: key("pv"),
                            source: next(),
                            slots: vec![Slot::Scratch, Slot::Input(2), Slot::Output, Slot::Params],
                            groups: [(a.v_head_dim as u32).div_ceil(16), q.div_ceil(16), bh],
                        },
                    ]
                }
                _ => vec![Stage {
                    key: key("fused"),
                    source: next(),
                    slots: vec![
                        Slot::Input(0),
                        Slot::Input(1),
                        Slot::Input(2),
                        Slot::Output,
                        Slot::Params,
                    ],
                    groups: [q.div_ceil(ATTN_BR), bh, 1],
                }],
            })
        }
        Op::Memory(m) => Ok(vec![memory_stage(m)?]),
        other => Err(BackendError::Unsupported(format!(
            "wgpu backend has no kernels for {other}"
        ))),
    }
}

/// Workgroups of 256 invocations covering `n` items.
fn elementwise_groups(n: u64) -> [u32; 3] {
    let [x, y] = split_groups(n.div_ceil(256));
    [x, y, 1]
}

/// The one dispatch of a memory-bound op, reading the op's inputs in order.
fn memory_stage(m: &MemoryOp) -> Result<Stage> {
    let kind = super::measured_memory_kind(m)?;
    let (rows, cols) = (m.rows, m.cols);
    let key = format!("{}-{}", kind.name(), m.dtype);
    let io = |inputs: usize| {
        let mut slots: Vec<Slot> = (0..inputs).map(Slot::Input).collect();
        slots.extend([Slot::Output, Slot::Params]);
        slots
    };
    Ok(match kind {
        MemoryKind::RmsNorm => {
            let [x, y] = split_groups(rows);
            Stage {
                key,
                source: template(RMSNORM, m.dtype, &[])?,
                slots: io(2),
                groups: [x, y, 1],
            }
        }
        MemoryKind::GatedActivation(_) => Stage {
            key,
            source: template(GATED_SILU, m.dtype, &[])?,
            slots: io(1),
            groups: elementwise_groups(rows * cols),
        },
        MemoryKind::ResidualAdd => Stage {
            key,
            source: template(RESIDUAL_ADD, m.dtype, &[])?,
            slots: io(2),
            groups: elementwise_groups(rows * cols),
        },
        _ => Stage {
            key,
            source: template(ROTARY, m.dtype, &[])?,
            slots: io(1),
            groups: elementwise_groups(rows * cols / 2),
        },
    })
}

/// The uniform block of a memory-bound op's kernel.
pub fn memory_params(m: &MemoryOp, rotary: &super::cpu::RotaryLayout) -> Vec<u32> {
    let (rows, cols) = (m.rows as u32, m.cols as u32);
    match m.kind {
        MemoryKind::RmsNorm => vec![rows, cols, (super::cpu::RMSNORM_EPS as f32).to_bits(), 0],
        MemoryKind::ResidualAdd => vec![rows * cols, 0, 0, 0],
        MemoryKind::Rotary => vec![
            rows,
            rotary.cols as u32,
            rotary.head_dim as u32,
            rotary.seq_len as u32,
            rotary.in_row as u32,
            rotary.out_row as u32,
            (rotary.theta as f32).to_bits(),
            0,
        ],
        _ => vec![rows, cols, 0, 0],
    }
}

/// Every adapter wgpu can see, as device descriptions.
pub fn adapters() -> Vec<DeviceInfo> {
    let instance = new_instance();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| describe(a, None))
        .collect()
}

fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::all();
    wgpu::Instance::new(desc)
}

fn describe(adapter: &wgpu::Adapter, timer_ns: Option<f64>) -> DeviceInfo {
    let info = adapter.get_info();
    let features = adapter.features();
    DeviceInfo {
        backend: format!("wgpu/{:?}", info.backend).to_lowercase(),
        name: info.name.clone(),
        vendor: format!("0x{:04x}", info.vendor),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        device_type: format!("{:?}", info.device_type),
        memory_bytes: None,
        compute_units: None,
        timer_resolution_ns: timer_ns,
        clock: if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            Clock::DeviceTimestamp
        } else {
            Clock::WallClock
        },
        supports_f16: features.contains(wgpu::Features::SHADER_F16),
    }
}

/// The loaded problem: input buffers for every set, the output, scratch space and parameters.
struct Problem {
    op: Op,
    dtype: DType,
    inputs: Vec<Vec<wgpu::Buffer>>,
    out: wgpu::Buffer,
    out_elems: usize,
    out_bytes: u64,
    scratch: Option<wgpu::Buffer>,
    params: wgpu::Buffer,
    staging: wgpu::Buffer,
}

pub struct WgpuBackend {
    info: DeviceInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    timestamps: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    pipelines: HashMap<String, wgpu::ComputePipeline>,
    problem: Option<Problem>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl WgpuBackend {
    /// Opens adapter `index` of `adapters()`.
    pub fn open(index: usize) -> Result<Self> {
        let instance = new_instance();
        let mut all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        if all.is_empty() {
            return Err(BackendError::Unavailable(
                "wgpu: no adapter found (no Vulkan driver? on a machine without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)".into(),
            ));
        }
        if index >= all.len() {
            return Err(BackendError::Unavailable(format!(
                "wgpu: adapter {index} does not exist ({} found)",
                all.len()
            )));
        }
        let adapter = all.swap_remove(index);
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gpucost"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(device_err)?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string().replace('\n', " "));
            }
        }));
        let timestamps = features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp-resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp-read"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (set, resolve, read)
        });
        let period = f64::from(queue.get_timestamp_period());
        let info = describe(&adapter, timestamps.as_ref().map(|_| period));
        Ok(WgpuBackend {
            info,
            device,
            queue,
            limits,
            timestamps,
            pipelines: HashMap::new(),
            problem: None,
            errors,
        })
    }

    fn take_error(&self) -> Result<()> {
        let mut errs = self.errors.lock().map_err(device_err)?;
        if errs.is_empty() {
            Ok(())
        } else {
            let msg = errs.join("; ");
            errs.clear();
            Err(BackendError::Device(msg))
        }
    }

    /// The compiled pipeline of a stage, compiled once and cached.
    fn pipeline(&mut self, stage: &Stage) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.get(&stage.key) {
            return Ok(p.clone());
        }
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&stage.key),
                source: wgpu::ShaderSource::Wgsl(stage.source.as_str().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&stage.key),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        self.wait()?;
        self.take_error()?;
        self.pipelines.insert(stage.key.clone(), pipeline.clone());
        Ok(pipeline)
    }

    fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(device_err)
    }

    fn read_buffer(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let slice = buffer.slice(0..bytes);
        let done: Arc<Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>> =
            Arc::default();
        let flag = done.clone();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            if let Ok(mut f) = flag.lock() {
                *f = Some(r);
            }
        });
        self.wait()?;
        let status = done.lock().map_err(device_err)?.take();
        match status {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(device_err(e)),
            None => return Err(BackendError::Device("buffer map did not complete".into())),
        }
        let data = slice.get_mapped_range().map_err(device_err)?.to_vec();
        buffer.unmap();
        Ok(data)
    }

    fn problem(&self) -> Result<&Problem> {
        self.problem
            .as_ref()
            .ok_or_else(|| BackendError::Device("no problem loaded".into()))
    }

    /// Pipelines and, per input set, bind groups for every stage of `variant`.
    fn prepare(&mut self, variant: &str) -> Result<Prepared> {
        let op = self.problem()?.op;
        let stages = stages(&op, variant)?;
        let pipelines = stages
            .iter()
            .map(|s| self.pipeline(s))
            .collect::<Result<Vec<_>>>()?;
        let p = self.problem()?;
        let mut groups = Vec::new();
        for set in &p.inputs {
            let mut per_stage = Vec::new();
            for (stage, pipeline) in stages.iter().zip(&pipelines) {
                let mut buffers = Vec::new();
                for slot in &stage.slots {
                    buffers.push(match slot {
                        Slot::Input(i) => set.get(*i).ok_or_else(|| {
                            BackendError::Device(format!("stage {} needs input {i}", stage.key))
                        })?,
                        Slot::Output => &p.out,
                        Slot::Params => &p.params,
                        Slot::Scratch => p.scratch.as_ref().ok_or_else(|| {
                            BackendError::Device(format!("stage {} needs scratch", stage.key))
                        })?,
                    });
                }
                per_stage.push(self.bind_group(pipeline, &buffers));
            }
            groups.push(per_stage);
        }
        self.take_error()?;
        Ok(Prepared {
            stages,
            pipelines,
            groups,
        })
    }

    /// Records every stage of a variant in one compute pass, optionally between timestamps.
    fn encode(
        &self,
        stages: &[Stage],
        pipelines: &[wgpu::ComputePipeline],
        groups: &[wgpu::BindGroup],
        timed: bool,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let writes = match (&self.timestamps, timed) {
                (Some((set, _, _)), true) => Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
                _ => None,
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: writes,
            });
            for ((stage, pipeline), group) in stages.iter().zip(pipelines).zip(groups) {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                let [x, y, z] = stage.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        if let (Some((set, resolve, read)), true) = (&self.timestamps, timed) {
            encoder.resolve_query_set(set, 0..2, resolve, 0);
            encoder.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
        }
        encoder
    }

    /// Binds `buffers` to bindings 0, 1, … of the pipeline's group 0.
    fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    fn upload(&self, values: &[f32], dtype: DType) -> wgpu::Buffer {
        let mut bytes = to_bytes(values, dtype);
        bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &bytes,
                usage: wgpu::BufferUsages::STORAGE,
            })
    }

    fn storage_buffer(&self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.div_ceil(4).max(1) * 4,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Bytes of the largest buffer a problem needs, to refuse shapes the device cannot bind.
    fn fits(&self, bytes: u64) -> bool {
        bytes <= self.limits.max_storage_buffer_binding_size && bytes <= self.limits.max_buffer_size
    }
}

fn to_bytes(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::Fp16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => bytemuck::cast_slice(values).to_vec(),
    }
}

fn from_bytes(bytes: &[u8], dtype: DType, n: usize) -> Vec<f32> {
    match dtype {
        DType::Fp16 => bytes
            .chunks_exact(2)
            .take(n)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .take(n)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Element count of the output and (for unfused attention) the f32 score matrix.
fn output_and_scratch(op: &Op) -> (u64, u64) {
    match op {
        Op::Matmul(mm) => (mm.batch * mm.m * mm.n, 0),
        Op::Attention(a) => (
            a.batch * a.q_heads * a.q_len * a.v_head_dim,
            a.batch * a.q_heads * a.q_len * a.kv_len,
        ),
        Op::Memory(m) => (m.rows * m.cols, 0),
        _ => (0, 0),
    }
}

impl Backend for WgpuBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn variants(&self, op: &Op) -> Vec<Variant> {
        let dtype_ok = |d: DType| d == DType::Fp32 || (d == DType::Fp16 && self.info.supports_f16);
        match op {
            Op::Matmul(mm) if dtype_ok(mm.input) && mm.input == mm.output => {
                MATMUL_VARIANTS.to_vec()
            }
            Op::Attention(a)
                if dtype_ok(a.dtype)
                    && a.kv_dtype == a.dtype
                    && a.pass == crate::model::ops::Pass::Forward
                    && a.qk_head_dim <= MAX_HEAD_DIM
                    && a.v_head_dim <= MAX_HEAD_DIM
                    && a.qk_head_dim.is_multiple_of(4)
                    && a.v_head_dim.is_multiple_of(4) =>
            {
                let (_, scores) = output_and_scratch(op);
                ATTENTION_VARIANTS
                    .into_iter()
                    // The naive kernel needs the whole score matrix in one buffer.
                    .filter(|v| v.name != "naive" || self.fits(scores * 4))
                    .collect()
            }
            Op::Memory(m) if dtype_ok(m.dtype) && super::measured_memory_kind(m).is_ok() => {
                MEMORY_VARIANTS.to_vec()
            }
            _ => Vec::new(),
        }
    }

    fn load(&mut self, op: &Op, sets: &[Vec<Vec<f32>>]) -> Result<()> {
        let (dtype, n_inputs, params): (DType, usize, Vec<u32>) = match op {
            Op::Matmul(mm) => (
                mm.input,
                2,
                vec![mm.m as u32, mm.n as u32, mm.k as u32, mm.batch as u32],
            ),
            Op::Attention(a) => {
                if a.q_len > a.kv_len || a.q_heads % a.kv_heads.max(1) != 0 {
                    return Err(BackendError::Unsupported(format!(
                        "{op}: needs q_len <= kv_len and kv heads dividing query heads"
                    )));
                }
                (
                    a.dtype,
                    3,
                    attention_params(a, &AttentionLayout::head_major(a)),
                )
            }
            Op::Memory(m) => {
                let kind = super::measured_memory_kind(m)?;
                (
                    m.dtype,
                    super::memory_input_count(kind),
                    memory_params(m, &super::cpu::RotaryLayout::standalone(m)),
                )
            }
            other => {
                return Err(BackendError::Unsupported(format!(
                    "wgpu backend has no kernels for {other}"
                )));
            }
        };
        let mut inputs = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            if set.len() != n_inputs {
                return Err(BackendError::Device(format!(
                    "input set {i} needs {n_inputs} tensors, has {}",
                    set.len()
                )));
            }
            inputs.push(set.iter().map(|t| self.upload(t, dtype)).collect());
        }
        let (out_elems, scratch_elems) = output_and_scratch(op);
        let out_bytes = dtype.bytes_for(out_elems).div_ceil(4) * 4;
        let out = self.storage_buffer(
            "out",
            out_bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        );
        let staging = self.storage_buffer(
            "out-read",
            out_bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let scratch = (scratch_elems > 0 && self.fits(scratch_elems * 4))
            .then(|| self.storage_buffer("scores", scratch_elems * 4, wgpu::BufferUsages::STORAGE));
        let params = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        self.problem = Some(Problem {
            op: *op,
            dtype,
            inputs,
            out,
            out_elems: out_elems as usize,
            out_bytes,
            scratch,
            params,
            staging,
        });
        self.take_error()
    }

    fn run(&mut self, variant: &str, set: usize) -> Result<Vec<f32>> {
        let prep = self.prepare(variant)?;
        let p = self.problem()?;
        let group = prep
            .groups
            .get(set)
            .ok_or_else(|| BackendError::Device(format!("no input set {set}")))?;
        // Poison the output so a kernel that skips elements cannot pass.
        let mut poison = to_bytes(&vec![f32::NAN; p.out_elems], p.dtype);
        poison.resize(p.out_bytes as usize, 0);
        self.queue.write_buffer(&p.out, 0, &poison);
        let mut encoder = self.encode(&prep.stages, &prep.pipelines, group, false);
        encoder.copy_buffer_to_buffer(&p.out, 0, &p.staging, 0, p.out_bytes);
        self.queue.submit([encoder.finish()]);
        let bytes = self.read_buffer(&p.staging, p.out_bytes)?;
        self.take_error()?;
        Ok(from_bytes(&bytes, p.dtype, p.out_elems))
    }

    fn time(&mut self, variant: &str, runs: usize) -> Result<Vec<f64>> {
        let prep = self.prepare(variant)?;
        let mut out = Vec::with_capacity(runs);
        for i in 0..runs {
            let group = &prep.groups[i % prep.groups.len()];
            let encoder = self.encode(&prep.stages, &prep.pipelines, group, true);
            let start = Instant::now();
            self.queue.submit([encoder.finish()]);
            match &self.timestamps {
                Some((_, _, read)) => {
                    let bytes = self.read_buffer(read, 16)?;
                    let t0 = u64::from_le_bytes(bytes[0..8].try_into().map_err(device_err)?);
                    let t1 = u64::from_le_bytes(bytes[8..16].try_into().map_err(device_err)?);
                    let ns = self.info.timer_resolution_ns.unwrap_or(1.0);
                    out.push(t1.saturating_sub(t0) as f64 * ns * 1e-9);
                }
                None => {
                    self.wait()?;
                    out.push(start.elapsed().as_secs_f64());
                }
            }
        }
        self.take_error()?;
        Ok(out)
    }

    fn run_block(
        &mut self,
        block: &super::block::BlockShape,
        inputs: &super::block::BlockInputs,
        runs: usize,
    ) -> Result<super::block::BlockRun> {
        self.block_forward(block, inputs, runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_step_leaves_no_placeholders() {
        for v in MATMUL_VARIANTS {
            for d in [DType::Fp32, DType::Fp16] {
                let s = matmul_source(v.name, d).unwrap();
                for token in ["ELEM", "TILE", "BM_u", "THREADS_LIT", "VEC4S"] {
                    assert!(!s.contains(token), "{} {d}: {token} left", v.name);
                }
                assert_eq!(s.starts_with("enable f16;"), d == DType::Fp16);
            }
        }
        assert!(matmul_source("magic", DType::Fp32).is_err());
        for a in attention_cases() {
            for v in ATTENTION_VARIANTS {
                for src in attention_sources(v.name, &a).unwrap() {
                    for token in ["ELEM", "D_u", "DV_u", "BR_", "BC_u", "_TILE"] {
                        assert!(!src.contains(token), "{}: {token} left", v.name);
                    }
                }
            }
        }
        assert!(matmul_source("naive", DType::Bf16).is_err());
    }

    fn attention_cases() -> Vec<Attention> {
        let mut out = Vec::new();
        for dtype in [DType::Fp32, DType::Fp16] {
            for d in [64, 128] {
                out.push(Attention {
                    batch: 1,
                    q_heads: 4,
                    kv_heads: 2,
                    q_len: 8,
                    kv_len: 8,
                    qk_head_dim: d,
                    v_head_dim: d,
                    causal: true,
                    window: None,
                    dtype,
                    kv_dtype: dtype,
                    fused: true,
                    pass: crate::model::ops::Pass::Forward,
                });
            }
        }
        out
    }

    fn validate(name: &str, src: &str) {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }

    #[test]
    fn every_variant_parses_and_validates_with_naga() {
        for v in MATMUL_VARIANTS {
            for d in [DType::Fp32, DType::Fp16] {
                validate(
                    &format!("matmul {} {d}", v.name),
                    &matmul_source(v.name, d).unwrap(),
                );
            }
        }
        for a in attention_cases() {
            for v in ATTENTION_VARIANTS {
                for src in attention_sources(v.name, &a).unwrap() {
                    validate(
                        &format!("attention {} {} d{}", v.name, a.dtype, a.qk_head_dim),
                        &src,
                    );
                }
            }
        }
    }
}
