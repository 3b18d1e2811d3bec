// Launching element-wise work: gpu::for_each(n, f) runs f(i) for i in [0, n) on the current
// stream with a grid-stride loop; f is a __device__ lambda (nvcc --extended-lambda, which
// rev::cuda's CMake target sets).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "rev/core/shape.hpp"
#include "rev/cuda/error.hpp"
#include "rev/cuda/stream.hpp"

namespace rev::gpu {

inline constexpr int threads_per_block = 256;

/// Blocks for n independent items: enough to fill the device, capped for the grid-stride loop.
inline unsigned blocks_for(index_t n) {
  const index_t b = (n + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(std::clamp<index_t>(b, 1, 65535 * 8));
}

namespace detail {
template <class F>
__global__ void for_each_kernel(index_t n, F f) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    f(i);
}
}  // namespace detail

/// Throws rev::cuda_error if the last launch failed (bad configuration, no device).
inline void check_launch(const char* kernel) {
  const cudaError_t s = cudaGetLastError();
  if (s != cudaSuccess) throw cuda_error(rev::detail::concat("launch of ", kernel, " failed: ", cudaGetErrorString(s)));
}

template <class F>
void for_each(index_t n, F f, const char* who = "rev::gpu::for_each") {
  if (n <= 0) return;
  detail::for_each_kernel<<<blocks_for(n), threads_per_block, 0, current_stream()>>>(n, f);
  check_launch(who);
}

}  // namespace rev::gpu
