// Space-to-depth and its inverse, depth-to-space: a permutation of the elements of an NCHW map
// that moves each b x b block of pixels into b*b channels. Two channel orders are in use:
//   revbifpn         out[n, (i*b + j)*C + c, y, x] = in[n, c, b*y + i, b*x + j]
//                    (RevBiFPN's stem, i-RevNet's "psi")
//   pixel_unshuffle  out[n, c*b*b + i*b + j, y, x] = in[n, c, b*y + i, b*x + j]   (PyTorch)
// Being a permutation, each is the other's inverse and its own backward's transpose.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rev/core/device.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

enum class s2d_order {
  revbifpn,        // out channel (i*b + j)*C + c
  pixel_unshuffle  // out channel c*b*b + i*b + j
};

namespace detail {

// The checks of space_to_depth (x: a map [N, C, H, W]) and of depth_to_space (y: a depth tensor
// [N, C*b*b, H, W]), shared by every backend, and the extents each produces.
template <class X>
Shape s2d_depth_shape(const X& x, int block) {
  constexpr const char* who = "rev::ops::space_to_depth";
  check<value_error>(block >= 1, who, ": block must be >= 1, got ", block);
  expect_rank(x, 4, who);
  check<shape_error>(x.size(2) % block == 0 && x.size(3) % block == 0, who, ": input has extents ", x.shape(),
                     ", expected H and W divisible by the block ", block);
  return {x.size(0), x.size(1) * block * block, x.size(2) / block, x.size(3) / block};
}

template <class X>
Shape s2d_map_shape(const X& y, int block) {
  constexpr const char* who = "rev::ops::depth_to_space";
  check<value_error>(block >= 1, who, ": block must be >= 1, got ", block);
  expect_rank(y, 4, who);
  const index_t bb = index_t{block} * block;
  check<shape_error>(y.size(1) % bb == 0, who, ": input has extents ", y.shape(), ", expected channels divisible by ",
                     bb, " (block ", block, " squared)");
  return {y.size(0), y.size(1) / bb, y.size(2) * block, y.size(3) * block};
}

}  // namespace detail

/// [N, C, H, W] -> [N, C*b*b, H/b, W/b]; H and W must be divisible by b.
template <Scalar T, class B>
Tensor<T, B> space_to_depth(const Tensor<T, B>& x, int block, s2d_order order) {
  return kernels<B>::space_to_depth(x, block, order);
}

/// [N, C*b*b, H, W] -> [N, C, H*b, W*b]: the inverse of space_to_depth with the same block and
/// order, and so also its backward.
template <Scalar T, class B>
Tensor<T, B> depth_to_space(const Tensor<T, B>& y, int block, s2d_order order) {
  return kernels<B>::depth_to_space(y, block, order);
}

}  // namespace rev::ops
