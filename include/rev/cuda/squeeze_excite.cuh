// The device steps of nn::SqueezeExcite that are not ops of their own elsewhere: the per-channel
// gate y = x * g and its backward (the CPU layer fuses both into its loops).
#pragma once

#include <utility>

#include "rev/cuda/launch.cuh"
#include "rev/cuda/tensor.cuh"

namespace rev::gpu {

namespace detail {

// dg[p] = sum over plane p of dy * x: one block per plane, partial sums in double.
template <class T>
__global__ void plane_dot_kernel(const T* dy, const T* x, T* dg, index_t hw) {
  __shared__ double partial[threads_per_block];
  const index_t p = blockIdx.x;
  double s = 0;
  for (index_t i = threadIdx.x; i < hw; i += blockDim.x)
    s += static_cast<double>(dy[p * hw + i]) * static_cast<double>(x[p * hw + i]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = threads_per_block / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) dg[p] = static_cast<T>(partial[0]);
}

template <class T>
void check_gate(const char* who, const Tensor<T, cuda>& x, const Tensor<T, cuda>& g) {
  check<shape_error>(x.rank() == 4, who, ": input has extents ", x.shape(), ", expected [N, C, H, W]");
  expect_shape(g, Shape{x.size(0), x.size(1)}, who, "gate");
}

}  // namespace detail

struct channel_scale_ops {
  /// y[n, c, h, w] = x[n, c, h, w] * g[n, c].
  template <Scalar T>
  static Tensor<T, cuda> scale_channels(const Tensor<T, cuda>& x, const Tensor<T, cuda>& g) {
    detail::check_gate("rev::ops::scale_channels", x, g);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    const index_t hw = x.size(2) * x.size(3);
    const T *px = x.data(), *pg = g.data();
    T* py = y.data();
    for_each(
        x.numel(), [=] __device__(index_t i) { py[i] = px[i] * pg[i / hw]; }, "rev::ops::scale_channels");
    return y;
  }

  /// The backward of scale_channels: {dx = dy * g, dg = sum_{h,w}(dy * x)}.
  template <Scalar T>
  static std::pair<Tensor<T, cuda>, Tensor<T, cuda>> scale_channels_backward(const Tensor<T, cuda>& x,
                                                                             const Tensor<T, cuda>& g,
                                                                             const Tensor<T, cuda>& dy) {
    constexpr const char* who = "rev::ops::scale_channels_backward";
    detail::check_gate(who, x, g);
    expect_shape(dy, x.shape(), who, "dy");
    Tensor<T, cuda> dx = scale_channels(dy, g), dg = Tensor<T, cuda>::uninitialized(g.shape());
    const index_t planes = g.numel(), hw = x.size(2) * x.size(3);
    if (planes > 0) {
      detail::plane_dot_kernel<<<static_cast<unsigned>(planes), threads_per_block, 0, current_stream()>>>(
          dy.data(), x.data(), dg.data(), hw);
      check_launch(who);
    }
    return {dx, dg};
  }
};

}  // namespace rev::gpu
