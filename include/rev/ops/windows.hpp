// Non-overlapping windows of a token grid (Swin's and MViTv2's window attention): tokens
// [B, H*W, C] of an H x W grid, zero-padded at the bottom and right to multiples of the window
// side ws, cut into nh * nw = ceil(H / ws) * ceil(W / ws) windows of ws*ws tokens, in row-major
// window order per sample: [B * nh * nw, ws*ws, C]. window_unpartition puts windows back and
// drops the padding. Each is the other's backward (padding receives no gradient).
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

struct window_dims {
  index_t B, H, W, C, ws, nh, nw;
};

template <class X>
window_dims window_check(const X& grid, bool windows, index_t H, index_t W, index_t ws, const char* who) {
  expect_rank(grid, 3, who);
  check<value_error>(H >= 1 && W >= 1 && ws >= 1, who, ": grid ", H, " x ", W, " and window ", ws, " must be positive");
  const index_t nh = (H + ws - 1) / ws, nw = (W + ws - 1) / ws;
  if (windows) {
    check<shape_error>(grid.size(1) == ws * ws && grid.size(0) % (nh * nw) == 0, who, ": input has extents ",
                       grid.shape(), ", expected [B * ", nh * nw, ", ", ws * ws, ", C]: windows of ", ws, " x ", ws,
                       " over a ", H, " x ", W, " grid");
    return {grid.size(0) / (nh * nw), H, W, grid.size(2), ws, nh, nw};
  }
  check<shape_error>(grid.size(1) == H * W, who, ": input has extents ", grid.shape(), ", expected [B, ", H * W,
                     ", C] tokens of a ", H, " x ", W, " grid");
  return {grid.size(0), H, W, grid.size(2), ws, nh, nw};
}

}  // namespace detail

/// [B, H*W, C] -> [B * nh * nw, ws*ws, C], zero-padded (see the header comment).
template <Scalar T, class B>
Tensor<T, B> window_partition(const Tensor<T, B>& t, index_t H, index_t W, index_t ws) {
  return kernels<B>::window_partition(t, H, W, ws);
}

/// [B * nh * nw, ws*ws, C] -> [B, H*W, C]: the inverse of window_partition without its padding.
template <Scalar T, class B>
Tensor<T, B> window_unpartition(const Tensor<T, B>& w, index_t H, index_t W, index_t ws) {
  return kernels<B>::window_unpartition(w, H, W, ws);
}

}  // namespace rev::ops
