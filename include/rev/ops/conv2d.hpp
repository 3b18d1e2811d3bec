// 2-D convolution (cross-correlation, as PyTorch's conv2d) with stride, zero padding, dilation
// and groups, and its backward pass.
//
//   y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x[n, g*Cg + c, i*s_h - p_h + u*d_h, j*s_w - p_w + v*d_w]
//
// for o in group g (Cg = C_in / groups input channels per group; x is zero outside the image).
// Output extent: floor((H + 2p - d(k-1) - 1) / s) + 1.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "rev/core/device.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

struct conv2d_params {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};

namespace detail {

/// floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1
inline index_t conv_out_size(index_t in, index_t k, int stride, int pad, int dilation) {
  return (in + 2 * index_t{pad} - index_t{dilation} * (k - 1) - 1) / stride + 1;
}

// The extents of one convolution, checked.
struct conv_geometry {
  index_t n, c_in, h, w;  // input
  index_t c_out, kh, kw;  // weight
  index_t ho, wo;         // output
  index_t groups, cin_g, cout_g;
  conv2d_params p;

  index_t in_plane() const { return h * w; }
  index_t out_plane() const { return ho * wo; }
  index_t taps() const { return kh * kw; }
  Shape out_shape() const { return {n, c_out, ho, wo}; }
  bool depthwise() const { return groups == c_in && c_in == c_out; }
  bool pointwise() const {
    return kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  }
};

// Reads extents only, so every backend shares it.
template <Scalar T, class B>
conv_geometry conv_check(const char* who, const Tensor<T, B>& x, const Tensor<T, B>& w,
                         std::type_identity_t<const Tensor<T, B>*> bias, const conv2d_params& p) {
  check<value_error>(p.stride_h >= 1 && p.stride_w >= 1, who, ": stride ", p.stride_h, "x", p.stride_w,
                     " must be at least 1");
  check<value_error>(p.dilation_h >= 1 && p.dilation_w >= 1, who, ": dilation ", p.dilation_h, "x", p.dilation_w,
                     " must be at least 1");
  check<value_error>(p.pad_h >= 0 && p.pad_w >= 0, who, ": padding ", p.pad_h, "x", p.pad_w, " must not be negative");
  check<value_error>(p.groups >= 1, who, ": groups ", p.groups, " must be at least 1");
  expect_rank(x, 4, who, "input");
  expect_rank(w, 4, who, "weight");
  conv_geometry g{};
  g.p = p;
  g.n = x.size(0), g.c_in = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.c_out = w.size(0), g.kh = w.size(2), g.kw = w.size(3);
  g.groups = p.groups;
  check<shape_error>(g.c_out >= 1 && w.size(1) >= 1 && g.kh >= 1 && g.kw >= 1, who, ": weight has extents ", w.shape(),
                     ", expected positive extents [C_out, C_in/groups, kh, kw]");
  check<shape_error>(g.c_out % g.groups == 0, who, ": weight has ", g.c_out,
                     " output channels, not divisible by groups ", g.groups);
  check<shape_error>(g.c_in % g.groups == 0, who, ": input has ", g.c_in, " channels, not divisible by groups ",
                     g.groups);
  check<shape_error>(g.c_in == w.size(1) * g.groups, who, ": input has ", g.c_in, " channels, expected ",
                     w.size(1) * g.groups, " (weight ", w.shape(), ", groups ", g.groups, ")");
  g.cin_g = g.c_in / g.groups;
  g.cout_g = g.c_out / g.groups;
  const index_t span_h = index_t{p.dilation_h} * (g.kh - 1) + 1, span_w = index_t{p.dilation_w} * (g.kw - 1) + 1;
  check<shape_error>(span_h <= g.h + 2 * index_t{p.pad_h} && span_w <= g.w + 2 * index_t{p.pad_w}, who, ": kernel ",
                     g.kh, "x", g.kw, " with dilation ", p.dilation_h, "x", p.dilation_w, " spans ", span_h, "x",
                     span_w, ", larger than the padded input ", g.h + 2 * index_t{p.pad_h}, "x",
                     g.w + 2 * index_t{p.pad_w}, " (input ", x.shape(), ", padding ", p.pad_h, "x", p.pad_w, ")");
  if (bias) expect_shape(*bias, Shape{g.c_out}, who, "bias");
  g.ho = conv_out_size(g.h, g.kh, p.stride_h, p.pad_h, p.dilation_h);
  g.wo = conv_out_size(g.w, g.kw, p.stride_w, p.pad_w, p.dilation_w);
  return g;
}

}  // namespace detail

/// y = conv2d(x, w) + bias. x [N, C_in, H, W], w [C_out, C_in/groups, kh, kw], bias [C_out] or
/// nullptr; zero padding. Returns [N, C_out, Ho, Wo].
template <Scalar T, class B>
Tensor<T, B> conv2d(const Tensor<T, B>& x, const Tensor<T, B>& w, std::type_identity_t<const Tensor<T, B>*> bias,
                    const conv2d_params& p) {
  return kernels<B>::conv2d(x, w, bias, p);
}

/// The backward of conv2d given dy = dL/dy [N, C_out, Ho, Wo]. Returns dL/dx (an empty tensor
/// when need_dx is false); ADDS dL/dw into *dw and dL/dbias into *db when they are non-null.
template <Scalar T, class B>
Tensor<T, B> conv2d_backward(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& dy,
                             const conv2d_params& p, std::type_identity_t<Tensor<T, B>*> dw,
                             std::type_identity_t<Tensor<T, B>*> db, bool need_dx = true) {
  return kernels<B>::conv2d_backward(x, w, dy, p, dw, db, need_dx);
}

}  // namespace rev::ops
