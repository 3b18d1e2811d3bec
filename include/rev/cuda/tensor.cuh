// Device tensors: filling, copying, and moving tensors between the host and the device.
#pragma once

#include <cuda_runtime.h>

#include "rev/core/tensor.hpp"
#include "rev/cuda/allocator.hpp"
#include "rev/cuda/launch.cuh"

namespace rev {
namespace gpu {

/// Tensor::fill, Tensor::clone and rev::copy_into / rev::to on rev::cuda.
struct memory_ops {
  template <Scalar T>
  static void fill(T* p, index_t n, T value) {
    if (value == T(0)) {
      if (n > 0) REV_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<std::size_t>(n) * sizeof(T), current_stream()));
      return;
    }
    for_each(
        n, [=] __device__(index_t i) { p[i] = value; }, "rev::Tensor<T, cuda>::fill");
  }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes > 0) REV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, current_stream()));
  }
  // From pageable host memory cudaMemcpyAsync returns once the source is staged: it may be freed.
  static void upload(void* dst, const void* src, std::size_t bytes) {
    if (bytes > 0) REV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, current_stream()));
  }
  static void download(void* dst, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
    REV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, current_stream()));
    synchronize();
  }
};

}  // namespace gpu

/// A device copy of a host tensor (ordered on the current stream; x may be freed on return).
template <Scalar T>
Tensor<T, cuda> to_device(const Tensor<T, cpu>& x) {
  return to<cuda>(x);
}

/// A host copy of a device tensor; waits for the current stream.
template <Scalar T>
Tensor<T, cpu> to_host(const Tensor<T, cuda>& x) {
  return to<cpu>(x);
}

}  // namespace rev
