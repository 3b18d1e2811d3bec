// Softmax over the last extent on rev::cuda (CPU: rev/cpu/softmax.hpp), one warp per row:
//   y_i = exp(x_i - max x) / sum_j exp(x_j - max x),   dx_i = y_i (dy_i - sum_j y_j dy_j).
// Also the warp-per-row machinery that the layer norm, attention and loss kernels share.
#pragma once

#include <algorithm>

#include "rev/cuda/tensor.cuh"
#include "rev/ops/softmax.hpp"

namespace rev::gpu {

namespace dense_detail {

inline constexpr int warp_size = 32;
inline constexpr int rows_per_block = threads_per_block / warp_size;

/// Sum and maximum over the 32 lanes of a warp; every lane gets the result.
template <class A>
__device__ A warp_sum(A v) {
  for (int o = warp_size / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A>
__device__ A warp_max(A v) {
  for (int o = warp_size / 2; o > 0; o /= 2) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ inline float exp_of(float v) { return expf(v); }
__device__ inline double exp_of(double v) { return exp(v); }

/// The warp's row, and the stride to its next one, for a grid of rows_per_block warps a block.
/// All lanes of a warp see the same row, so the shuffles inside the row loop are uniform.
__device__ inline index_t first_row() {
  return blockIdx.x * static_cast<index_t>(rows_per_block) + threadIdx.x / warp_size;
}
__device__ inline index_t row_stride() { return static_cast<index_t>(gridDim.x) * rows_per_block; }

inline unsigned blocks_for_rows(index_t rows) {
  return static_cast<unsigned>(std::clamp<index_t>((rows + rows_per_block - 1) / rows_per_block, 1, 65535 * 8));
}

// y = softmax(x) over rows of K; y may be x (each element is read before its lane writes it).
template <class T>
__global__ void softmax_rows_kernel(const T* x, T* y, index_t rows, index_t K) {
  const int lane = threadIdx.x % warp_size;
  for (index_t r = first_row(); r < rows; r += row_stride()) {
    const T* xr = x + r * K;
    T* yr = y + r * K;
    T m = -INFINITY;
    for (index_t j = lane; j < K; j += warp_size) m = max(m, xr[j]);
    m = warp_max(m);
    T s = 0;
    for (index_t j = lane; j < K; j += warp_size) {
      const T e = exp_of(xr[j] - m);
      yr[j] = e;
      s += e;
    }
    const T inv = T(1) / warp_sum(s);
    for (index_t j = lane; j < K; j += warp_size) yr[j] *= inv;
  }
}

// dx = scale * y ∘ (dy - rowsum(y ∘ dy)) over rows of K; dx may be dy. The dot is summed in double.
template <class T>
__global__ void softmax_rows_backward_kernel(const T* y, const T* dy, T* dx, index_t rows, index_t K, T scale) {
  const int lane = threadIdx.x % warp_size;
  for (index_t r = first_row(); r < rows; r += row_stride()) {
    const T *yr = y + r * K, *gr = dy + r * K;
    T* dr = dx + r * K;
    double dot = 0;
    for (index_t j = lane; j < K; j += warp_size) dot += static_cast<double>(yr[j]) * static_cast<double>(gr[j]);
    const T c = static_cast<T>(warp_sum(dot));
    for (index_t j = lane; j < K; j += warp_size) dr[j] = scale * yr[j] * (gr[j] - c);
  }
}

/// Row softmax of rows x K values on the current stream (in place when y == x).
template <Scalar T>
void softmax_rows(const T* x, T* y, index_t rows, index_t K) {
  if (rows <= 0 || K <= 0) return;
  softmax_rows_kernel<<<blocks_for_rows(rows), threads_per_block, 0, current_stream()>>>(x, y, rows, K);
  check_launch("rev::gpu::softmax_rows_kernel");
}

/// Its backward, times `scale` (in place when dx == dy).
template <Scalar T>
void softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t K, T scale = T(1)) {
  if (rows <= 0 || K <= 0) return;
  softmax_rows_backward_kernel<<<blocks_for_rows(rows), threads_per_block, 0, current_stream()>>>(y, dy, dx, rows, K,
                                                                                                  scale);
  check_launch("rev::gpu::softmax_rows_backward_kernel");
}

}  // namespace dense_detail

struct softmax_ops {
  /// Softmax of x [..., K] over its last extent.
  template <Scalar T>
  static Tensor<T, cuda> softmax(const Tensor<T, cuda>& x) {
    const index_t K = x.size(-1), rows = K > 0 ? x.numel() / K : 0;
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    dense_detail::softmax_rows(x.data(), y.data(), rows, K);
    return y;
  }

  /// Backward of softmax from its output y: dx_i = y_i * (dy_i - sum_j y_j dy_j).
  template <Scalar T>
  static Tensor<T, cuda> softmax_backward(const Tensor<T, cuda>& y, const Tensor<T, cuda>& dy) {
    const index_t K = y.size(-1), rows = K > 0 ? y.numel() / K : 0;
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(y.shape());
    dense_detail::softmax_rows_backward(y.data(), dy.data(), dx.data(), rows, K);
    return dx;
  }
};

}  // namespace rev::gpu
