// Residual add: y = a + b elementwise, one invocation per element; two reads and a write.
// ELEM is substituted by the template step.

struct Params { n: u32, }

@group(0) @binding(0) var<storage, read> a: array<ELEM>;
@group(0) @binding(1) var<storage, read> b: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> y: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    if (e >= p.n) {
        return;
    }
    y[e] = ELEM(f32(a[e]) + f32(b[e]));
}
