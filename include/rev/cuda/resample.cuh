// Up-sampling of NCHW maps on rev::cuda: nearest and bilinear (align_corners = false) by an
// integer factor, with the conventions, validation and op counting of rev/ops/resample.hpp.
// The backwards gather: each input gradient sums the output gradients it contributed to, so no
// atomics are needed.
#pragma once

#include "rev/core/op_count.hpp"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/resample.hpp"

namespace rev::gpu {

namespace detail {

// The two source indices of output o along an axis of length n up-sampled by f, and their
// weights: bilinear_axis<T>::taps of rev/cpu/resample.hpp (the weights rounded from double).
template <Scalar T>
__device__ inline void bilinear_taps(index_t o, index_t n, int f, index_t& i0, index_t& i1, T& w0, T& w1) {
  const int h = f / 2;
  const index_t i = o < h ? -1 : (o - h) / f;
  if (i < 0 || i + 1 >= n) {
    i0 = i1 = i < 0 ? 0 : n - 1;
    w0 = T(1), w1 = T(0);
  } else {
    const double w = (h + static_cast<double>((o - h) % f) + 0.5) / f - 0.5;
    i0 = i, i1 = i + 1, w0 = static_cast<T>(1 - w), w1 = static_cast<T>(w);
  }
}

// The weight of input index i in output o (0 if o does not read i).
template <Scalar T>
__device__ inline T bilinear_weight(index_t o, index_t i, index_t n, int f) {
  index_t i0, i1;
  T w0, w1;
  bilinear_taps(o, n, f, i0, i1, w0, w1);
  return (i0 == i ? w0 : T(0)) + (i1 == i ? w1 : T(0));
}

}  // namespace detail

struct resample_ops {
  /// Nearest up-sampling by `factor`: y[n, c, o, p] = x[n, c, floor(o / f), floor(p / f)].
  template <Scalar T>
  static Tensor<T, cuda> upsample_nearest(const Tensor<T, cuda>& x, int factor) {
    rev::ops::detail::check_resample_args(x, factor, "rev::ops::upsample_nearest", "input");
    const index_t H = x.size(2), W = x.size(3), Ho = H * factor, Wo = W * factor;
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    const T* px = x.data();
    T* py = y.data();
    const int f = factor;
    for_each(
        y.numel(),
        [=] __device__(index_t i) {
          const index_t ow = i % Wo, oh = i / Wo % Ho, p = i / (Ho * Wo);
          py[i] = px[(p * H + oh / f) * W + ow / f];
        },
        "rev::ops::upsample_nearest");
    return y;
  }

  /// The adjoint of upsample_nearest: dx[n, c, h, w] = sum of dy over the f x f block of (h, w).
  template <Scalar T>
  static Tensor<T, cuda> upsample_nearest_backward(const Tensor<T, cuda>& dy, int factor) {
    const Shape xs = rev::ops::detail::downsampled_shape(dy, factor, "rev::ops::upsample_nearest_backward");
    const index_t W = xs[3], Wo = dy.size(3);
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(xs);
    const T* pg = dy.data();
    T* pd = dx.data();
    const int f = factor;
    for_each(
        dx.numel(),
        [=] __device__(index_t i) {
          const index_t w = i % W, r = i / W;  // r: the input row (n, c, h) flattened
          const T* block = pg + r * f * Wo + w * f;
          T acc = 0;
          for (int u = 0; u < f; ++u) {  // row by row, as the CPU adds them
            T s = 0;
            for (int v = 0; v < f; ++v) s += block[u * Wo + v];
            acc += s;
          }
          pd[i] = acc;
        },
        "rev::ops::upsample_nearest_backward");
    return dx;
  }

  /// Bilinear up-sampling by `factor`: [N, C, H, W] -> [N, C, H*f, W*f], align_corners = false.
  template <Scalar T>
  static Tensor<T, cuda> upsample_bilinear(const Tensor<T, cuda>& x, int factor) {
    rev::ops::detail::check_resample_args(x, factor, "rev::ops::upsample_bilinear", "input");
    const index_t H = x.size(2), W = x.size(3), Ho = H * factor, Wo = W * factor;
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    if (op_counts* c = rev::detail::active_op_counts()) c->upsample_elements += y.numel();
    const T* px = x.data();
    T* py = y.data();
    const int f = factor;
    // Along W within the two source rows, then between them (the CPU's order of operations).
    for_each(
        y.numel(),
        [=] __device__(index_t i) {
          const index_t ow = i % Wo, oh = i / Wo % Ho, p = i / (Ho * Wo);
          index_t h0, h1, w0, w1;
          T a0, a1, b0, b1;
          detail::bilinear_taps(oh, H, f, h0, h1, a0, a1);
          detail::bilinear_taps(ow, W, f, w0, w1, b0, b1);
          const T* r0 = px + (p * H + h0) * W;
          const T* r1 = px + (p * H + h1) * W;
          py[i] = a0 * (b0 * r0[w0] + b1 * r0[w1]) + a1 * (b0 * r1[w0] + b1 * r1[w1]);
        },
        "rev::ops::upsample_bilinear");
    return y;
  }

  /// The adjoint of upsample_bilinear: dy [N, C, H*f, W*f] -> dx [N, C, H, W].
  template <Scalar T>
  static Tensor<T, cuda> upsample_bilinear_backward(const Tensor<T, cuda>& dy, int factor) {
    const Shape xs = rev::ops::detail::downsampled_shape(dy, factor, "rev::ops::upsample_bilinear_backward");
    const index_t H = xs[2], W = xs[3], Ho = dy.size(2), Wo = dy.size(3);
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(xs);
    const T* pg = dy.data();
    T* pd = dx.data();
    const int f = factor;
    // Input h is read only by outputs in [f*(h-1), f*(h+2)) (its own cell, the cell before it, and
    // the clamped border outputs), so each gradient gathers from at most 3f x 3f outputs; zero
    // weights are skipped, as outputs that do not read an input add nothing to its gradient.
    for_each(
        dx.numel(),
        [=] __device__(index_t i) {
          const index_t w = i % W, h = i / W % H, p = i / (H * W);
          const index_t oh_begin = f * (h - 1) > 0 ? f * (h - 1) : 0, oh_end = f * (h + 2) < Ho ? f * (h + 2) : Ho;
          const index_t ow_begin = f * (w - 1) > 0 ? f * (w - 1) : 0, ow_end = f * (w + 2) < Wo ? f * (w + 2) : Wo;
          const T* g = pg + p * Ho * Wo;
          T acc = 0;
          for (index_t oh = oh_begin; oh < oh_end; ++oh) {
            const T a = detail::bilinear_weight<T>(oh, h, H, f);
            if (a == T(0)) continue;
            T s = 0;
            for (index_t ow = ow_begin; ow < ow_end; ++ow) {
              const T b = detail::bilinear_weight<T>(ow, w, W, f);
              if (b != T(0)) s += b * g[oh * Wo + ow];
            }
            acc += a * s;
          }
          pd[i] = acc;
        },
        "rev::ops::upsample_bilinear_backward");
    return dx;
  }
};

}  // namespace rev::gpu
