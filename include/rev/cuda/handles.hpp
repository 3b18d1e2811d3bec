// The cuBLAS and cuDNN handles of the calling thread, bound to its current stream on each use.
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

#include "rev/cuda/error.hpp"
#include "rev/cuda/stream.hpp"

namespace rev::gpu {

namespace detail {
struct handles {
  cublasHandle_t blas{};
  cudnnHandle_t dnn{};
  handles() {
    REV_CUDA_CHECK(cublasCreate(&blas));
    REV_CUDA_CHECK(cudnnCreate(&dnn));
  }
  handles(const handles&) = delete;
  handles& operator=(const handles&) = delete;
  ~handles() {
    cudnnDestroy(dnn);
    cublasDestroy(blas);
  }
  static handles& of_this_thread() {
    thread_local handles h;
    return h;
  }
};
}  // namespace detail

/// This thread's cuBLAS handle, on the current stream.
inline cublasHandle_t cublas() {
  cublasHandle_t h = detail::handles::of_this_thread().blas;
  REV_CUDA_CHECK(cublasSetStream(h, current_stream()));
  return h;
}

/// This thread's cuDNN handle, on the current stream.
inline cudnnHandle_t cudnn() {
  cudnnHandle_t h = detail::handles::of_this_thread().dnn;
  REV_CUDA_CHECK(cudnnSetStream(h, current_stream()));
  return h;
}

}  // namespace rev::gpu
