//! The wgpu backend: WGSL kernels from `kernels/wgsl/` on any adapter wgpu finds (Vulkan here;
//! Mesa's lavapipe on a machine without a GPU). Timed with timestamp queries where the adapter has
//! them, else with the host clock, labelled.

use super::{Backend, BackendError, Clock, DeviceInfo, Result, Variant};
use crate::dtype::DType;
use crate::ops::{Matmul, Op};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wgpu::util::DeviceExt;

const MATMUL_NAIVE: &str = include_str!("../../kernels/wgsl/matmul_naive.wgsl");
const MATMUL_TILED: &str = include_str!("../../kernels/wgsl/matmul_tiled.wgsl");
const MATMUL_REGBLOCK: &str = include_str!("../../kernels/wgsl/matmul_regblock.wgsl");

/// Tile edge of the shared-memory kernel.
const TILE: u32 = 16;
/// Register-blocked kernel: block BM×BN, K step BK, micro-tile TM×TN per invocation.
const RB: [u32; 5] = [64, 64, 8, 4, 4];

pub const MATMUL_VARIANTS: [Variant; 3] = [
    Variant {
        name: "naive",
        idea: "one invocation per output, operands from global memory",
    },
    Variant {
        name: "tiled",
        idea: "16x16 tiles of A and B staged in workgroup memory",
    },
    Variant {
        name: "regblock",
        idea: "64x64 block per workgroup, 4x4 register micro-tile per invocation, vec4 reads",
    },
];

fn device_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Device(e.to_string())
}

/// WGSL source of a matmul variant for an element type, after the template step.
pub fn matmul_source(variant: &str, dtype: DType) -> Result<String> {
    let elem = match dtype {
        DType::Fp32 => "f32",
        DType::Fp16 => "f16",
        d => {
            return Err(BackendError::Unsupported(format!(
                "wgpu matmul runs fp32 and fp16, not {d}"
            )));
        }
    };
    let [bm, bn, bk, tm, tn] = RB;
    let threads = (bm / tm) * (bn / tn);
    let body = match variant {
        "naive" => MATMUL_NAIVE.to_string(),
        "tiled" => MATMUL_TILED
            .replace("TILE_SQ", &(TILE * TILE).to_string())
            .replace("TILEu", &format!("{TILE}u"))
            .replace("TILE", &TILE.to_string()),
        "regblock" => MATMUL_REGBLOCK
            .replace("BM_u", &format!("{bm}u"))
            .replace("BN_u", &format!("{bn}u"))
            .replace("BK_u", &format!("{bk}u"))
            .replace("TM_u", &format!("{tm}u"))
            .replace("TN_u", &format!("{tn}u"))
            .replace("THREADS_LIT", &threads.to_string())
            .replace("A_VEC4S", &(bk * bm / 4).to_string())
            .replace("B_VEC4S", &(bk * bn / 4).to_string()),
        other => {
            return Err(BackendError::Unsupported(format!(
                "no wgpu matmul variant '{other}' (have: naive, tiled, regblock)"
            )));
        }
    };
    let body = body.replace("ELEM", elem);
    Ok(if dtype == DType::Fp16 {
        format!("enable f16;\n{body}")
    } else {
        body
    })
}

fn workgroups(variant: &str, mm: &Matmul) -> [u32; 3] {
    let (m, n, b) = (mm.m as u32, mm.n as u32, mm.batch as u32);
    match variant {
        "regblock" => [n.div_ceil(RB[1]), m.div_ceil(RB[0]), b],
        _ => [n.div_ceil(16), m.div_ceil(16), b],
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

/// The loaded problem: buffers for every input set, the output and the read-back staging.
struct Problem {
    mm: Matmul,
    buffers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    out: wgpu::Buffer,
    dims: wgpu::Buffer,
    staging: wgpu::Buffer,
    out_bytes: u64,
}

pub struct WgpuBackend {
    info: DeviceInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    timestamps: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    pipelines: HashMap<(String, DType), wgpu::ComputePipeline>,
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
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gpucost"),
            required_features: features,
            required_limits: adapter.limits(),
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

    fn pipeline(&mut self, variant: &str, dtype: DType) -> Result<wgpu::ComputePipeline> {
        let key = (variant.to_string(), dtype);
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        let source = matmul_source(variant, dtype)?;
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(variant),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(variant),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        self.wait()?;
        self.take_error()?;
        self.pipelines.insert(key, pipeline.clone());
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

    fn bind_group(&self, pipeline: &wgpu::ComputePipeline, set: usize) -> Result<wgpu::BindGroup> {
        let p = self.problem()?;
        let (a, b) = p
            .buffers
            .get(set)
            .ok_or_else(|| BackendError::Device(format!("no input set {set}")))?;
        Ok(self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: a.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: b.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: p.out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: p.dims.as_entire_binding(),
                },
            ],
        }))
    }

    fn problem(&self) -> Result<&Problem> {
        self.problem
            .as_ref()
            .ok_or_else(|| BackendError::Device("no problem loaded".into()))
    }

    /// Records one dispatch of `variant` on `set`, optionally between timestamps.
    fn encode(
        &self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        variant: &str,
        timed: bool,
    ) -> Result<wgpu::CommandEncoder> {
        let p = self.problem()?;
        let [x, y, z] = workgroups(variant, &p.mm);
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
                label: Some(variant),
                timestamp_writes: writes,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
        if let (Some((set, resolve, read)), true) = (&self.timestamps, timed) {
            encoder.resolve_query_set(set, 0..2, resolve, 0);
            encoder.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
        }
        Ok(encoder)
    }

    fn upload(&self, values: &[f32], dtype: DType, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let mut bytes = to_bytes(values, dtype);
        bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &bytes,
                usage,
            })
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

impl Backend for WgpuBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn variants(&self, op: &Op) -> Vec<Variant> {
        match op {
            Op::Matmul(mm)
                if mm.input == DType::Fp32
                    || (mm.input == DType::Fp16 && self.info.supports_f16) =>
            {
                MATMUL_VARIANTS.to_vec()
            }
            _ => Vec::new(),
        }
    }

    fn load(&mut self, op: &Op, sets: &[Vec<Vec<f32>>]) -> Result<()> {
        let Op::Matmul(mm) = op else {
            return Err(BackendError::Unsupported(format!(
                "wgpu backend has no kernels for {op}"
            )));
        };
        let dtype = mm.input;
        let storage = wgpu::BufferUsages::STORAGE;
        let mut buffers = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            let [a, b] = set.as_slice() else {
                return Err(BackendError::Device(format!(
                    "input set {i} needs 2 tensors, has {}",
                    set.len()
                )));
            };
            buffers.push((
                self.upload(a, dtype, storage),
                self.upload(b, dtype, storage),
            ));
        }
        let out_elems = (mm.batch * mm.m * mm.n) as usize;
        let out_bytes = (dtype.bytes_for(out_elems as u64)).div_ceil(4) * 4;
        let out = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("c"),
            size: out_bytes,
            usage: storage | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("c-read"),
            size: out_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dims_words = [mm.m as u32, mm.n as u32, mm.k as u32, mm.batch as u32];
        let dims = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dims"),
                contents: bytemuck::cast_slice(&dims_words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        self.problem = Some(Problem {
            mm: mm.clone(),
            buffers,
            out,
            dims,
            staging,
            out_bytes,
        });
        self.take_error()
    }

    fn run(&mut self, variant: &str, set: usize) -> Result<Vec<f32>> {
        let dtype = self.problem()?.mm.input;
        let pipeline = self.pipeline(variant, dtype)?;
        let group = self.bind_group(&pipeline, set)?;
        let p = self.problem()?;
        // Poison the output so a kernel that skips elements cannot pass.
        let n = (p.mm.batch * p.mm.m * p.mm.n) as usize;
        let mut poison = to_bytes(&vec![f32::NAN; n], dtype);
        poison.resize(p.out_bytes as usize, 0);
        self.queue.write_buffer(&p.out, 0, &poison);
        let mut encoder = self.encode(&pipeline, &group, variant, false)?;
        encoder.copy_buffer_to_buffer(&p.out, 0, &p.staging, 0, p.out_bytes);
        self.queue.submit([encoder.finish()]);
        let bytes = self.read_buffer(&p.staging, p.out_bytes)?;
        self.take_error()?;
        Ok(from_bytes(&bytes, dtype, n))
    }

    fn time(&mut self, variant: &str, runs: usize) -> Result<Vec<f64>> {
        let dtype = self.problem()?.mm.input;
        let pipeline = self.pipeline(variant, dtype)?;
        let sets = self.problem()?.buffers.len();
        let groups = (0..sets)
            .map(|s| self.bind_group(&pipeline, s))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(runs);
        for i in 0..runs {
            let encoder = self.encode(&pipeline, &groups[i % sets], variant, true)?;
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
        assert!(matmul_source("naive", DType::Bf16).is_err());
    }

    #[test]
    fn every_variant_parses_and_validates_with_naga() {
        for v in MATMUL_VARIANTS {
            for d in [DType::Fp32, DType::Fp16] {
                let src = matmul_source(v.name, d).unwrap();
                let module = naga::front::wgsl::parse_str(&src)
                    .unwrap_or_else(|e| panic!("{} {d}: {}", v.name, e.emit_to_string(&src)));
                naga::valid::Validator::new(
                    naga::valid::ValidationFlags::all(),
                    naga::valid::Capabilities::all(),
                )
                .validate(&module)
                .unwrap_or_else(|e| panic!("{} {d}: {e:?}", v.name));
            }
        }
    }
}
