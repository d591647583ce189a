//! The wgpu backend: WGSL kernels from `kernels/wgsl/` on any adapter wgpu finds (Vulkan here;
//! Mesa's lavapipe on a machine without a GPU). Timed with timestamp queries where the adapter has
//! them, else with the host clock, labelled.

use super::spec::{self, KernelSpec, Source};
use super::{AttentionLayout, Backend, BackendError, Clock, DeviceInfo, Result, Variant};
use crate::model::dtype::DType;
use crate::model::ops::{Attention, MemoryKind, MemoryOp, Op};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wgpu::util::DeviceExt;

mod block;
mod block_recurrent;
mod passes;
#[path = "../../../kernels/wgsl/specs.rs"]
mod specs;

pub use specs::SPECS;

/// How the wgpu backend runs a kernel: its dispatches, in order.
#[derive(Clone, Copy)]
pub struct Wgsl {
    pub stages: &'static [WgslStage],
}

/// One dispatch of a kernel.
#[derive(Clone, Copy)]
pub struct WgslStage {
    pub name: &'static str,
    pub source: Source,
    /// Computes in f32 whatever the op's dtype (the naive attention's softmax).
    pub f32_only: bool,
    /// The template step's `(placeholder, value)` pairs for an op, applied in order.
    pub subs: fn(&Op) -> Vec<(&'static str, String)>,
    /// What bindings 0, 1, … of group 0 point at.
    pub slots: &'static [Slot],
    /// Workgroups dispatched for an op.
    pub groups: fn(&Op) -> [u32; 3],
}

impl WgslStage {
    /// The element type the stage computes in for `op`.
    pub fn dtype(&self, op: &Op) -> DType {
        if self.f32_only {
            DType::Fp32
        } else {
            op.dtype()
        }
    }
}

impl Wgsl {
    /// Whether a stage goes through the scratch buffer (the whole score matrix).
    fn uses_scratch(&self) -> bool {
        self.stages
            .iter()
            .any(|s| s.slots.iter().any(|x| matches!(x, Slot::Scratch)))
    }
}

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

/// WGSL source of one stage of a kernel for `op`, after the template step.
pub fn stage_source(stage: &WgslStage, op: &Op) -> Result<String> {
    template(stage.source.text, stage.dtype(op), &(stage.subs)(op))
}

/// The kernel `variant` names for `op`.
pub fn spec_for(variant: &str, op: &Op) -> Result<&'static KernelSpec<Wgsl>> {
    spec::find(SPECS, variant, op).ok_or_else(|| {
        BackendError::Unsupported(format!(
            "no wgpu variant '{variant}' for {op} (have: {})",
            spec::names_for(SPECS, op)
        ))
    })
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

/// Where a stage's binding points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Input(usize),
    Output,
    Scratch,
    Params,
}

/// One dispatch of a variant, ready to compile.
struct Stage {
    /// Pipeline cache key: the file, the element type and the template values.
    key: String,
    source: String,
    slots: &'static [Slot],
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

/// The dispatches of `variant` on `op`.
fn stages(op: &Op, variant: &str) -> Result<Vec<Stage>> {
    spec_for(variant, op)?
        .kernel
        .stages
        .iter()
        .map(|stage| {
            let dtype = stage.dtype(op);
            let values: Vec<String> = (stage.subs)(op).into_iter().map(|(_, v)| v).collect();
            Ok(Stage {
                key: format!("{}-{dtype}-{}", stage.source.file, values.join("-")),
                source: stage_source(stage, op)?,
                slots: stage.slots,
                groups: (stage.groups)(op),
            })
        })
        .collect()
}

/// Workgroups of 256 invocations covering `n` items.
fn elementwise_groups(n: u64) -> [u32; 3] {
    let [x, y] = split_groups(n.div_ceil(256));
    [x, y, 1]
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
                for slot in stage.slots {
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
        DType::Fp16 => super::host::encode(values, |v| half::f16::from_f32(v).to_le_bytes()),
        _ => bytemuck::cast_slice(values).to_vec(),
    }
}

fn from_bytes(bytes: &[u8], dtype: DType, n: usize) -> Vec<f32> {
    match dtype {
        DType::Fp16 => super::host::decode(bytes, n, |b| half::f16::from_le_bytes(b).to_f32()),
        _ => super::host::decode(bytes, n, f32::from_le_bytes),
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
        Op::Scan(s) => (super::cpu::scan_output_len(s) as u64, 0),
        _ => (0, 0),
    }
}

impl Backend for WgpuBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn variants(&self, op: &Op) -> Vec<Variant> {
        let dtype_ok = |d: DType| d == DType::Fp32 || (d == DType::Fp16 && self.info.supports_f16);
        let runs = match op {
            Op::Matmul(mm) => dtype_ok(mm.input) && mm.input == mm.output,
            Op::Attention(a) => {
                dtype_ok(a.dtype)
                    && a.kv_dtype == a.dtype
                    && a.pass == crate::model::ops::Pass::Forward
                    && a.qk_head_dim.is_multiple_of(4)
                    && a.v_head_dim.is_multiple_of(4)
            }
            Op::Memory(m) => dtype_ok(m.dtype) && super::measured_memory_kind(m).is_ok(),
            // The state column lives in registers: dk up to the attention head-dim limit; the
            // staged keys and queries must fit the workgroup memory, indices a u32.
            Op::Scan(s) => {
                let elems = s.batch * s.heads * s.seq * s.key_dim.max(s.value_dim);
                dtype_ok(s.dtype)
                    && s.pass == crate::model::ops::Pass::Forward
                    && s.key_dim <= specs::MAX_HEAD_DIM
                    && s.batch * s.heads <= 65535
                    && specs::scan_workgroup_bytes(s)
                        <= u64::from(self.limits.max_compute_workgroup_storage_size)
                    && u32::try_from(super::cpu::scan_output_len(s).max(elems as usize)).is_ok()
            }
            _ => false,
        };
        if !runs {
            return Vec::new();
        }
        let (_, scratch) = output_and_scratch(op);
        SPECS
            .iter()
            .filter(|s| s.takes(op))
            // A kernel through the score matrix needs all of it in one buffer.
            .filter(|s| !s.kernel.uses_scratch() || self.fits(scratch * 4))
            .map(|s| s.variant)
            .collect()
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
            Op::Scan(s) => (
                s.dtype,
                5,
                vec![
                    (s.batch * s.heads) as u32,
                    s.seq as u32,
                    s.value_dim as u32,
                    0,
                ],
            ),
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

    fn run_recurrent_block(
        &mut self,
        layer: &super::block_recurrent::RecurrentShape,
        inputs: &super::block_recurrent::RecurrentInputs,
        runs: usize,
    ) -> Result<super::block::BlockRun> {
        self.recurrent_forward(layer, inputs, runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{Activation, Matmul, Pass};

    /// Ops of every class in both dtypes, enough for every kernel of the table to take one.
    fn sample_ops() -> Vec<Op> {
        let mut out = Vec::new();
        for dtype in [DType::Fp32, DType::Fp16] {
            out.push(Op::Matmul(Matmul::new(2, 48, 80, 32, dtype)));
            for d in [64, 128] {
                out.push(Op::Attention(Attention {
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
                    pass: Pass::Forward,
                    shared_kv: false,
                }));
            }
            // Absorbed MLA decode: one query over a shared latent K/V head.
            out.push(Op::Attention(Attention {
                batch: 1,
                q_heads: 8,
                kv_heads: 1,
                q_len: 1,
                kv_len: 8,
                qk_head_dim: 576,
                v_head_dim: 512,
                causal: true,
                window: None,
                dtype,
                kv_dtype: dtype,
                fused: true,
                pass: Pass::Forward,
                shared_kv: true,
            }));
            for kind in [
                MemoryKind::RmsNorm,
                MemoryKind::GatedActivation(Activation::Silu),
                MemoryKind::ResidualAdd,
                MemoryKind::Rotary,
            ] {
                out.push(Op::Memory(MemoryOp {
                    kind,
                    pass: Pass::Forward,
                    rows: 4,
                    cols: 256,
                    dtype,
                }));
            }
            out.push(Op::Scan(crate::model::ops::Scan {
                batch: 1,
                heads: 2,
                seq: 20,
                key_dim: 64,
                value_dim: 48,
                chunk: 64,
                dtype,
                pass: Pass::Forward,
            }));
        }
        out
    }

    /// The kernels only a transformer block runs (QK-norm, GeGLU) template and validate too.
    #[test]
    fn block_kernels_template_and_validate_with_naga() {
        for (file, text) in [
            (
                "qk_norm.wgsl",
                include_str!("../../../kernels/wgsl/qk_norm.wgsl"),
            ),
            (
                "gated_gelu.wgsl",
                include_str!("../../../kernels/wgsl/gated_gelu.wgsl"),
            ),
        ] {
            for dtype in [DType::Fp32, DType::Fp16] {
                let src = template(text, dtype, &[]).unwrap();
                assert!(!src.contains("ELEM"), "{file}");
                validate(&format!("{file} {dtype}"), &src);
            }
        }
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

    /// Every stage of every kernel in the table, for every sample op it takes: the template step
    /// leaves no placeholder, and naga parses and validates the result.
    #[test]
    fn every_kernel_in_the_table_templates_and_validates_with_naga() {
        let ops = sample_ops();
        for (i, spec) in SPECS.iter().enumerate() {
            let taken: Vec<&Op> = ops.iter().filter(|op| spec.takes(op)).collect();
            let files: Vec<&str> = spec.kernel.stages.iter().map(|s| s.source.file).collect();
            assert!(!taken.is_empty(), "no sample op for kernel {i} ({files:?})");
            for op in taken {
                let stages = stages(op, spec.variant.name).unwrap();
                assert_eq!(stages.len(), spec.kernel.stages.len());
                for (stage, built) in spec.kernel.stages.iter().zip(&stages) {
                    let name = format!("{} on {op}", stage.source.file);
                    let dtype = stage.dtype(op);
                    for (token, _) in (stage.subs)(op)
                        .into_iter()
                        .chain([("ELEM", String::new())])
                    {
                        assert!(!built.source.contains(token), "{name}: {token} left");
                    }
                    assert_eq!(
                        built.source.starts_with("enable f16;"),
                        dtype == DType::Fp16
                    );
                    assert!(
                        built.groups.iter().all(|g| *g > 0),
                        "{name}: {:?}",
                        built.groups
                    );
                    validate(&name, &built.source);
                }
            }
        }
    }

    #[test]
    fn unknown_variants_and_dtypes_are_refused() {
        let mm = Op::Matmul(Matmul::new(1, 16, 16, 16, DType::Fp32));
        let e = stages(&mm, "magic").err().unwrap().to_string();
        assert!(e.contains("naive, tiled, regblock"), "{e}");
        let bf16 = Op::Matmul(Matmul::new(1, 16, 16, 16, DType::Bf16));
        assert!(stages(&bf16, "naive").is_err());
    }

    /// The tiles the cost model pads to come from the table.
    #[test]
    fn output_tiles_come_from_the_table() {
        use crate::model::ops::OpClass;
        let tile = super::super::output_tile;
        assert_eq!(tile("wgpu:regblock", OpClass::Matmul), Some((64, 128)));
        assert_eq!(tile("wgpu:naive", OpClass::Matmul), Some((16, 16)));
        assert_eq!(tile("wgpu:naive", OpClass::Attention), None);
        assert_eq!(tile("wgpu:fused", OpClass::Attention), Some((64, 1)));
        assert_eq!(tile("wgpu:elementwise", OpClass::Memory), None);
        assert_eq!(tile("wgpu:magic", OpClass::Matmul), None);
    }
}
