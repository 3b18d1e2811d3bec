// Maps and token sequences: an NCHW map [B, C, H, W] read as H*W tokens of C features,
// [B, H*W, C] in row-major pixel order (ViT's patch embedding, x.flatten(2).transpose(1, 2) in
// PyTorch), and back. Each is the other's inverse and so also its backward.
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

// The checks of map_to_tokens and tokens_to_map, shared by every backend; each returns the
// extents it produces.
template <class X>
Shape tokens_shape(const X& x) {
  expect_rank(x, 4, "rev::ops::map_to_tokens");
  return {x.size(0), x.size(2) * x.size(3), x.size(1)};
}

template <class X>
Shape map_shape(const X& t, index_t h, index_t w) {
  constexpr const char* who = "rev::ops::tokens_to_map";
  expect_rank(t, 3, who);
  check<shape_error>(h >= 1 && w >= 1 && t.size(1) == h * w, who, ": input has extents ", t.shape(), ", expected [B, ",
                     h, " * ", w, " = ", h * w, ", C] tokens for an ", h, " x ", w, " map");
  return {t.size(0), t.size(2), h, w};
}

}  // namespace detail

/// [B, C, H, W] -> [B, H*W, C]: token n = y*W + x holds the C channels of pixel (y, x).
template <Scalar T, class B>
Tensor<T, B> map_to_tokens(const Tensor<T, B>& x) {
  return kernels<B>::map_to_tokens(x);
}

/// [B, h*w, C] -> [B, C, h, w]: the inverse of map_to_tokens (and its backward).
template <Scalar T, class B>
Tensor<T, B> tokens_to_map(const Tensor<T, B>& t, index_t h, index_t w) {
  return kernels<B>::tokens_to_map(t, h, w);
}

}  // namespace rev::ops
