// Average pooling of NCHW maps on rev::cuda: global (mean of each map, accumulated in double)
// and over non-overlapping k x k windows, with the semantics and validation of rev/ops/pool.hpp.
#pragma once

#include "rev/cuda/elementwise.cuh"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/pool.hpp"

namespace rev::gpu {

struct pool_ops {
  /// [N, C, H, W] -> [N, C, 1, 1], the mean over each map (one block per map, summed in double).
  template <Scalar T>
  static Tensor<T, cuda> global_avg_pool(const Tensor<T, cuda>& x) {
    constexpr const char* who = "rev::ops::global_avg_pool";
    rev::ops::detail::gap_check_input(who, x.shape());
    const index_t HW = x.size(2) * x.size(3);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized({x.size(0), x.size(1), 1, 1});
    const T* px = x.data();
    T* py = y.data();
    detail::segment_sums(
        x.size(0) * x.size(1), HW, [=] __device__(index_t i) { return static_cast<double>(px[i]); },
        [=] __device__(index_t p, double s) { py[p] = static_cast<T>(s / static_cast<double>(HW)); }, who);
    return y;
  }

  /// dx[n, c, h, w] = dy[n, c] / (H * W).
  template <Scalar T>
  static Tensor<T, cuda> global_avg_pool_backward(const Shape& input_shape, const Tensor<T, cuda>& dy) {
    constexpr const char* who = "rev::ops::global_avg_pool_backward";
    rev::ops::detail::gap_check_input(who, input_shape);
    expect_shape(dy, Shape{input_shape[0], input_shape[1], 1, 1}, who, "dy");
    const index_t HW = input_shape[2] * input_shape[3];
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(input_shape);
    const T* pg = dy.data();
    T* pd = dx.data();
    for_each(
        dx.numel(),
        [=] __device__(index_t i) {
          pd[i] = static_cast<T>(static_cast<double>(pg[i / HW]) / static_cast<double>(HW));
        },
        who);
    return dx;
  }

  /// [N, C, H, W] -> [N, C, H / k, W / k]: the mean of each k x k window (kernel = stride = k, no
  /// padding); trailing rows and columns that do not fill a window are dropped.
  template <Scalar T>
  static Tensor<T, cuda> avg_pool2d(const Tensor<T, cuda>& x, int k) {
    rev::ops::detail::gap_check_input("rev::ops::avg_pool2d", x.shape());
    check<value_error>(k >= 1, "rev::ops::avg_pool2d: kernel ", k, " must be at least 1");
    const index_t H = x.size(2), W = x.size(3), Ho = H / k, Wo = W / k;
    check<shape_error>(Ho > 0 && Wo > 0, "rev::ops::avg_pool2d: input has extents ", x.shape(), ", smaller than the ",
                       k, "x", k, " window");
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    const T inv = T(1) / static_cast<T>(k * k);
    const T* px = x.data();
    T* py = y.data();
    for_each(
        y.numel(),
        [=] __device__(index_t o) {
          const index_t j = o % Wo, i = o / Wo % Ho, p = o / (Ho * Wo);
          const T* window = px + (p * H + i * k) * W + j * k;
          T s = 0;
          for (int u = 0; u < k; ++u)
            for (int v = 0; v < k; ++v) s += window[u * W + v];
          py[o] = s * inv;
        },
        "rev::ops::avg_pool2d");
    return y;
  }

  /// dx[n, c, h, w] = dy[n, c, h / k, w / k] / k^2 inside the windows, 0 in dropped rows/columns.
  template <Scalar T>
  static Tensor<T, cuda> avg_pool2d_backward(const Shape& input_shape, const Tensor<T, cuda>& dy, int k) {
    constexpr const char* who = "rev::ops::avg_pool2d_backward";
    rev::ops::detail::gap_check_input(who, input_shape);
    check<value_error>(k >= 1, who, ": kernel ", k, " must be at least 1");
    const index_t H = input_shape[2], W = input_shape[3], Ho = H / k, Wo = W / k;
    expect_shape(dy, Shape{input_shape[0], input_shape[1], Ho, Wo}, who, "dy");
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(input_shape);
    const T inv = T(1) / static_cast<T>(k * k);
    const T* pg = dy.data();
    T* pd = dx.data();
    for_each(
        dx.numel(),
        [=] __device__(index_t e) {
          const index_t w = e % W, h = e / W % H, p = e / (H * W), i = h / k, j = w / k;
          pd[e] = i < Ho && j < Wo ? pg[(p * Ho + i) * Wo + j] * inv : T(0);
        },
        who);
    return dx;
  }
};

}  // namespace rev::gpu
