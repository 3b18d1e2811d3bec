// rev::ops::squeeze_excite on the device: the small [N, W] and [N, Q] steps as the ops linear and
// activation, and the per-channel gate y = x * g and its backward as kernels of their own.
#pragma once

#include <utility>

#include "rev/cuda/launch.cuh"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/activation.hpp"
#include "rev/ops/elementwise.hpp"
#include "rev/ops/linear.hpp"
#include "rev/ops/pool.hpp"
#include "rev/ops/squeeze_excite.hpp"

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

  template <class Inner, class Gate, Scalar T>
  static Tensor<T, cuda> squeeze_excite(const Tensor<T, cuda>& x, const Tensor<T, cuda>& w1, const Tensor<T, cuda>& b1,
                                        const Tensor<T, cuda>& w2, const Tensor<T, cuda>& b2,
                                        ops::squeeze_excite_cache<T, cuda>& c) {
    const index_t N = x.size(0), W = x.size(1), Q = w1.size(0);
    c.x = x;
    c.u = ops::global_avg_pool(x).reshape(Shape{N, W});
    c.z1 = ops::linear(c.u, w1.reshape(Shape{Q, W}), &b1);
    c.s = ops::activation<Inner>(c.z1);
    c.z2 = ops::linear(c.s, w2.reshape(Shape{W, Q}), &b2);
    c.g = ops::activation<Gate>(c.z2);
    return scale_channels(x, c.g);
  }

  template <class Inner, class Gate, Scalar T>
  static Tensor<T, cuda> squeeze_excite_backward(const ops::squeeze_excite_cache<T, cuda>& c, const Tensor<T, cuda>& w1,
                                                 const Tensor<T, cuda>& w2, const Tensor<T, cuda>& dy,
                                                 ops::squeeze_excite_grads<T, cuda> grads) {
    const index_t N = dy.size(0), W = dy.size(1), Q = w1.size(0);
    auto [dx, dg] = scale_channels_backward(c.x, c.g, dy);  // dy * g, sum_{h,w}(dy * x)
    Tensor<T, cuda> gw1 = grads.dw1.reshape(Shape{Q, W}), gw2 = grads.dw2.reshape(Shape{W, Q});
    const Tensor<T, cuda> ds =
        ops::linear_backward(c.s, w2.reshape(Shape{W, Q}), ops::activation_backward<Gate>(c.z2, dg), &gw2, &grads.db2);
    const Tensor<T, cuda> du =
        ops::linear_backward(c.u, w1.reshape(Shape{Q, W}), ops::activation_backward<Inner>(c.z1, ds), &gw1, &grads.db1);
    ops::add_(dx, ops::global_avg_pool_backward(dy.shape(), du.reshape(Shape{N, W, 1, 1})));
    return dx;
  }
};

}  // namespace rev::gpu
