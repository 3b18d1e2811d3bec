// Checked CUDA, cuBLAS and cuDNN calls. Every call into them goes through REV_CUDA_CHECK, which
// throws rev::cuda_error naming the call, its status and where it was made:
//   REV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "rev/core/errors.hpp"

namespace rev {

/// A CUDA, cuBLAS or cuDNN call failed; the message names the call and its status string.
struct cuda_error : error {
  using error::error;
};

/// Out of device memory, after the caching allocator released its free blocks.
struct cuda_out_of_memory : cuda_error {
  using cuda_error::cuda_error;
};

namespace gpu::detail {

inline const char* status_string(cudaError_t s) { return cudaGetErrorString(s); }
inline const char* status_string(cudnnStatus_t s) { return cudnnGetErrorString(s); }
inline const char* status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

inline bool ok(cudaError_t s) { return s == cudaSuccess; }
inline bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }
inline bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }

template <class Status>
void check(Status s, const char* call, const char* file, int line) {
  if (ok(s)) return;
  if constexpr (std::is_same_v<Status, cudaError_t>) cudaGetLastError();  // clear a sticky-free error
  throw cuda_error(
      rev::detail::concat(call, " failed: ", status_string(s), " (", static_cast<int>(s), ") at ", file, ":", line));
}

}  // namespace gpu::detail
}  // namespace rev

#define REV_CUDA_CHECK(call) ::rev::gpu::detail::check((call), #call, __FILE__, __LINE__)
