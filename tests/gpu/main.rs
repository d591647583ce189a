//! The tests that need a GPU-side component — a wgpu adapter (Mesa's lavapipe in CI) or NVRTC
//! with the CUDA headers — in one binary with its own harness (libtest-mimic), so that a test
//! whose component is missing is reported as *ignored*, with the reason, in the summary rather
//! than passing without running. Under CI=true a missing component fails those tests instead.

#[path = "../common/mod.rs"]
mod common;

mod attention_wgmma_on_cpu;
mod bench_cli;
mod calibration;
mod compose;
mod compose_mla;
mod compose_recurrent;
mod cuda_compile;
mod cuda_on_cpu;
mod decode_on_cpu;
mod mla_on_cpu;
mod sgemm_on_cpu;
mod wgmma_on_cpu;
mod wgpu_kernels;

use libtest_mimic::{Arguments, Failed, Trial};
use std::process::ExitCode;

/// What a test needs beyond the CPU.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Nothing,
    Wgpu,
    Nvrtc,
    /// A C++ compiler, to run a CUDA kernel's logic on the CPU.
    Cxx,
}

impl Needs {
    fn label(self) -> &'static str {
        match self {
            Needs::Nothing => "",
            Needs::Wgpu => "needs wgpu",
            Needs::Nvrtc => "needs nvrtc",
            Needs::Cxx => "needs c++",
        }
    }

    /// Why the component is missing here, if it is.
    fn missing(self) -> Option<String> {
        use gpucost::measure::backend::cuda::nvrtc;
        match self {
            Needs::Nothing => None,
            Needs::Wgpu => gpucost::measure::backend::wgpu::WgpuBackend::open(0)
                .err()
                .map(|e| format!("no wgpu adapter ({e}); install mesa-vulkan-drivers libvulkan1")),
            Needs::Nvrtc if !nvrtc::available() => {
                Some("libnvrtc not found on LD_LIBRARY_PATH; pip install nvidia-cuda-nvrtc".into())
            }
            Needs::Nvrtc => nvrtc::include_dir().err().map(|e| e.to_string()),
            Needs::Cxx => cuda_on_cpu::compiler()
                .is_none()
                .then(|| "no C++ compiler (c++, g++ or clang++); apt-get install g++".into()),
        }
    }
}

type Case = (&'static str, Needs, fn());

/// A case named by its path, as the built-in harness names tests.
macro_rules! case {
    ($needs:ident, $module:ident :: $test:ident) => {
        (
            concat!(stringify!($module), "::", stringify!($test)),
            Needs::$needs,
            $module::$test,
        )
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    case!(Wgpu, wgpu_kernels::every_matmul_kernel_matches_the_reference_on_smoke_shapes),
    case!(Wgpu, wgpu_kernels::every_attention_kernel_matches_the_reference_on_smoke_shapes),
    case!(Wgpu, wgpu_kernels::every_memory_kernel_matches_the_reference_on_smoke_shapes),
    case!(Wgpu, wgpu_kernels::every_scan_kernel_matches_the_reference_on_smoke_shapes),
    case!(Wgpu, wgpu_kernels::a_long_scan_stays_within_its_tolerance),
    case!(Wgpu, wgpu_kernels::a_wrong_answer_fails_the_check),
    case!(Wgpu, wgpu_kernels::shared_kv_attention_matches_the_reference),
    case!(Nvrtc, cuda_compile::every_kernel_file_compiles_for_ampere_ada_and_hopper_with_its_entry_points),
    case!(Nothing, cuda_compile::every_declared_entry_point_is_launched_and_every_launch_is_declared),
    case!(Nvrtc, cuda_compile::every_launch_matches_its_kernel_signature),
    case!(Nvrtc, cuda_compile::mma_kernels_emit_mma_instructions),
    case!(Nvrtc, cuda_compile::wgmma_kernels_emit_hopper_instructions),
    case!(Nvrtc, cuda_compile::attention_wgmma_kernel_emits_hopper_instructions),
    case!(Nvrtc, cuda_compile::hopper_kernels_fit_the_sm),
    case!(Nvrtc, cuda_compile::simt_gemm_fits_the_sm),
    case!(Nvrtc, cuda_compile::block_kernels_launch_what_they_declare_with_matching_signatures),
    case!(Cxx, cuda_on_cpu::the_chunked_cuda_scan_matches_the_recurrence_on_the_cpu),
    case!(Cxx, mla_on_cpu::the_mla_decode_kernel_matches_attention_over_the_latent_on_the_cpu),
    case!(Cxx, wgmma_on_cpu::the_wgmma_kernels_match_the_reference_on_the_cpu),
    case!(Cxx, attention_wgmma_on_cpu::the_wgmma_attention_kernel_matches_attention_on_the_cpu),
    case!(Cxx, decode_on_cpu::the_decode_kernel_matches_attention_on_the_cpu),
    case!(Cxx, sgemm_on_cpu::the_simt_gemm_matches_the_reference_on_the_cpu),
    case!(Nothing, bench_cli::devices_lists_every_backend_and_why_one_is_missing),
    case!(Wgpu, bench_cli::bench_writes_one_record_per_variant_and_shape),
    case!(Wgpu, bench_cli::bench_skips_shapes_a_named_variant_cannot_run),
    case!(Nothing, bench_cli::bench_rejects_bad_flags_with_one_line),
    case!(Wgpu, bench_cli::wgpu_commands_print_no_wayland_noise),
    case!(Wgpu, bench_cli::a_shape_too_large_for_the_device_is_refused),
    case!(Wgpu, bench_cli::a_dtype_the_backend_cannot_run_is_refused),
    case!(Nothing, compose::the_block_is_the_workloads_layer_and_refuses_what_it_cannot_run),
    case!(Nothing, compose::a_prefix_block_gives_the_first_rows_of_every_sequence),
    case!(Wgpu, compose::the_block_matches_its_reference_and_a_wrong_answer_fails),
    case!(Wgpu, compose::f16_block_matches_its_reference),
    case!(Wgpu, compose::compose_reports_measured_against_predicted_per_op),
    case!(Nothing, compose::compose_refuses_a_model_it_cannot_run_by_name),
    case!(Wgpu, compose::compose_refuses_a_profile_of_another_gpu),
    case!(Nothing, compose::each_familys_block_is_its_workloads_layer),
    case!(Wgpu, compose::each_familys_block_matches_its_reference_and_its_features_are_wired),
    case!(Wgpu, compose::compose_runs_one_layer_of_each_family),
    case!(Nothing, compose_recurrent::recurrent_layers_are_the_workloads_layers),
    case!(Nothing, compose_recurrent::a_recurrent_prefix_gives_the_first_rows_of_every_sequence),
    case!(Wgpu, compose_recurrent::each_recurrent_step_matches_its_reference),
    case!(Wgpu, compose_recurrent::recurrent_layers_match_their_reference_and_their_features_are_wired),
    case!(Wgpu, compose_recurrent::f16_recurrent_layers_match_their_reference),
    case!(Wgpu, compose_recurrent::compose_runs_a_linear_attention_and_a_mamba_layer),
    case!(Nothing, compose_mla::the_mla_block_is_the_workloads_prefill_layer),
    case!(Wgpu, compose_mla::fused_attention_takes_keys_wider_than_values),
    case!(Wgpu, compose_mla::the_mla_block_matches_its_reference_and_each_part_is_wired),
    case!(Wgpu, calibration::a_fresh_lavapipe_sweep_calibrates_better_than_the_roofline),
];

fn main() -> ExitCode {
    // As the binary does: no noise from Mesa's device-select layer without a desktop session.
    // SAFETY: first thing in main, before any thread exists.
    unsafe { gpucost::measure::backend::quiet_vulkan_device_select() };
    let args = Arguments::from_args();
    let in_ci = std::env::var("CI").as_deref() == Ok("true");
    let missing: Vec<(Needs, Option<String>)> = [Needs::Wgpu, Needs::Nvrtc, Needs::Cxx]
        .into_iter()
        .map(|n| (n, n.missing()))
        .collect();
    let why_missing = |n: Needs| {
        missing
            .iter()
            .find(|(m, _)| *m == n)
            .and_then(|(_, why)| why.clone())
    };
    for (n, why) in &missing {
        if let Some(why) = why {
            let count = CASES.iter().filter(|c| c.1 == *n).count();
            let outcome = if in_ci { "fail (CI=true)" } else { "ignored" };
            eprintln!("{count} tests {outcome}, {}: {why}", n.label());
        }
    }
    let trials = CASES
        .iter()
        .map(|&(name, needs, run)| {
            let why = why_missing(needs);
            let skip = why.is_some() && !in_ci;
            Trial::test(name, move || match why {
                Some(why) => Err(Failed::from(format!("{}: {why}", needs.label()))),
                None => {
                    run();
                    Ok(())
                }
            })
            .with_kind(needs.label())
            .with_ignored_flag(skip)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
