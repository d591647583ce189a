//! The vendor references, called on the same buffers as our kernels: cuBLAS (fp32, TF32, fp16,
//! bf16, int8 through cublasGemmStridedBatchedEx) and cuBLASLt (fp8). Row-major C = A·B is
//! computed as the column-major Cᵀ = Bᵀ·Aᵀ, so no data is transposed.

use super::super::BackendError;
use crate::model::dtype::DType;
use cudarc::cublas::sys as cb;
use cudarc::cublaslt::sys as lt;
use cudarc::driver::sys::CUdeviceptr;
use std::ffi::c_void;

fn err(what: &str, status: impl std::fmt::Debug) -> BackendError {
    BackendError::Device(format!("{what}: {status:?}"))
}

/// Problem shape for the references; pointers are device addresses.
pub struct Gemm {
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub batch: i32,
    pub a: CUdeviceptr,
    pub b: CUdeviceptr,
    pub c: CUdeviceptr,
}

/// cuBLAS for fp32 (plain or TF32 math), fp16, bf16 and int8.
///
/// # Safety
/// The pointers must address device buffers of the sizes `g` implies for `dtype` (B stored n×k
/// for int8), on the stream the handle is bound to.
pub unsafe fn cublas_gemm(
    handle: cb::cublasHandle_t,
    dtype: DType,
    g: &Gemm,
) -> Result<(), BackendError> {
    use cb::cublasComputeType_t as C;
    use cb::cudaDataType_t as T;
    let (ab, out, compute) = match dtype {
        DType::Fp32 => (T::CUDA_R_32F, T::CUDA_R_32F, C::CUBLAS_COMPUTE_32F),
        DType::Tf32 => (
            T::CUDA_R_32F,
            T::CUDA_R_32F,
            C::CUBLAS_COMPUTE_32F_FAST_TF32,
        ),
        DType::Fp16 => (T::CUDA_R_16F, T::CUDA_R_16F, C::CUBLAS_COMPUTE_32F),
        DType::Bf16 => (T::CUDA_R_16BF, T::CUDA_R_16BF, C::CUBLAS_COMPUTE_32F),
        DType::Int8 => (T::CUDA_R_8I, T::CUDA_R_32I, C::CUBLAS_COMPUTE_32I),
        d => {
            return Err(BackendError::Unsupported(format!(
                "cuBLAS reference for {d}"
            )));
        }
    };
    let (one_f, zero_f) = (1.0f32, 0.0f32);
    let (one_i, zero_i) = (1i32, 0i32);
    let (alpha, beta): (*const c_void, *const c_void) = if dtype == DType::Int8 {
        (
            (&one_i as *const i32).cast(),
            (&zero_i as *const i32).cast(),
        )
    } else {
        (
            (&one_f as *const f32).cast(),
            (&zero_f as *const f32).cast(),
        )
    };
    let (m, n, k) = (i64::from(g.m), i64::from(g.n), i64::from(g.k));
    // Cᵀ (n×m) = op(X)·Aᵀ. X is B: row-major k×n is column-major n×k = Bᵀ (no transpose);
    // for int8, B is stored n×k (row-major), column-major k×n, transposed ("TN").
    let (trans_x, ld_x) = if dtype == DType::Int8 {
        (cb::cublasOperation_t::CUBLAS_OP_T, g.k)
    } else {
        (cb::cublasOperation_t::CUBLAS_OP_N, g.n)
    };
    let status = unsafe {
        cb::cublasGemmStridedBatchedEx(
            handle,
            trans_x,
            cb::cublasOperation_t::CUBLAS_OP_N,
            g.n,
            g.m,
            g.k,
            alpha,
            g.b as *const c_void,
            ab,
            ld_x,
            k * n,
            g.a as *const c_void,
            ab,
            g.k,
            m * k,
            beta,
            g.c as *mut c_void,
            out,
            g.n,
            m * n,
            g.batch,
            compute,
            cb::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    };
    if status != cb::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Err(err("cublasGemmStridedBatchedEx", status));
    }
    Ok(())
}

/// A cuBLASLt handle and its workspace.
pub struct Lt {
    pub handle: lt::cublasLtHandle_t,
    pub workspace: CUdeviceptr,
    pub workspace_bytes: usize,
}

/// cuBLASLt fp8 e4m3 × e4m3 → bf16 with fp32 accumulate, "TN" (B stored n×k), batch 1.
///
/// # Safety
/// As `cublas_gemm`; `stream` must be the stream the buffers belong to.
pub unsafe fn cublaslt_fp8(
    ltc: &Lt,
    g: &Gemm,
    stream: cudarc::driver::sys::CUstream,
) -> Result<(), BackendError> {
    use cudarc::cublaslt::result as r;
    use lt::cudaDataType_t as T;
    if g.batch != 1 {
        return Err(BackendError::Unsupported(
            "cuBLASLt fp8 reference runs batch 1 only".into(),
        ));
    }
    let e = |what: &'static str| move |s: cudarc::cublaslt::result::CublasError| err(what, s);
    let desc = r::create_matmul_desc(lt::cublasComputeType_t::CUBLAS_COMPUTE_32F, T::CUDA_R_32F)
        .map_err(e("matmul desc"))?;
    let trans = cb::cublasOperation_t::CUBLAS_OP_T;
    unsafe {
        r::set_matmul_desc_attribute(
            desc,
            lt::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
            (&trans as *const cb::cublasOperation_t).cast(),
            std::mem::size_of::<cb::cublasOperation_t>(),
        )
        .map_err(e("TRANSA"))?;
    }
    let (m, n, k) = (g.m as u64, g.n as u64, g.k as u64);
    // X = B stored n×k row-major = column-major k×n, transposed to n×k; Y = A as column-major
    // k×m; D = Cᵀ column-major n×m.
    let x = r::create_matrix_layout(T::CUDA_R_8F_E4M3, k, n, g.k as i64).map_err(e("layout B"))?;
    let y = r::create_matrix_layout(T::CUDA_R_8F_E4M3, k, m, g.k as i64).map_err(e("layout A"))?;
    let d = r::create_matrix_layout(T::CUDA_R_16BF, n, m, g.n as i64).map_err(e("layout C"))?;
    let pref = r::create_matmul_pref().map_err(e("preference"))?;
    let result = (|| unsafe {
        r::set_matmul_pref_attribute(
            pref,
            lt::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            (&ltc.workspace_bytes as *const usize).cast(),
            std::mem::size_of::<usize>(),
        )
        .map_err(e("workspace preference"))?;
        let heuristic = r::get_matmul_algo_heuristic(ltc.handle, desc, x, y, d, d, pref)
            .map_err(e("no cuBLASLt fp8 algorithm"))?;
        let (one, zero) = (1.0f32, 0.0f32);
        r::matmul(
            ltc.handle,
            desc,
            (&one as *const f32).cast(),
            (&zero as *const f32).cast(),
            g.b as *const c_void,
            x,
            g.a as *const c_void,
            y,
            g.c as *const c_void,
            d,
            g.c as *mut c_void,
            d,
            &heuristic.algo,
            ltc.workspace as *mut c_void,
            ltc.workspace_bytes,
            stream as lt::cudaStream_t,
        )
        .map_err(e("cublasLtMatmul"))
    })();
    unsafe {
        let _ = r::destroy_matmul_pref(pref);
        let _ = r::destroy_matrix_layout(x);
        let _ = r::destroy_matrix_layout(y);
        let _ = r::destroy_matrix_layout(d);
        let _ = r::destroy_matmul_desc(desc);
    }
    result
}
