// Space-to-depth and its inverse, depth-to-space: a permutation of the elements of an NCHW map
// that moves each b x b block of pixels into b*b channels. Two channel orders are in use:
//   revbifpn         out[n, (i*b + j)*C + c, y, x] = in[n, c, b*y + i, b*x + j]
//                    (RevBiFPN's stem, i-RevNet's "psi"; ../shared/specs/revbifpn.md §3.2)
//   pixel_unshuffle  out[n, c*b*b + i*b + j, y, x] = in[n, c, b*y + i, b*x + j]   (PyTorch)
// Being a permutation, each is the other's inverse and its own backward's transpose.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

enum class s2d_order {
  revbifpn,        // out channel (i*b + j)*C + c
  pixel_unshuffle  // out channel c*b*b + i*b + j
};

namespace detail {

inline constexpr index_t s2d_grain = 1 << 14;  // elements per task

// Moves every element between the map [N, C, H, W] and its space-to-depth [N, C*b*b, H/b, W/b],
// from the map if ToDepth, else to it. One task unit is one (n, c, y): b rows of the map and
// b*b row segments of length W/b of the blocks. B > 0 fixes the block at compile time.
template <int B, bool ToDepth, Scalar T>
void s2d_permute(std::conditional_t<ToDepth, const T*, T*> map, std::conditional_t<ToDepth, T*, const T*> depth,
                 const Shape& map_shape, int block, s2d_order order) {
  const int b = B > 0 ? B : block;
  const index_t C = map_shape[1], H = map_shape[2], W = map_shape[3], Ho = H / b, Wo = W / b, plane = Ho * Wo;
  // Output channel = (i*b + j) * ij_stride + c * c_stride.
  const index_t ij_stride = order == s2d_order::revbifpn ? C : 1;
  const index_t c_stride = order == s2d_order::revbifpn ? 1 : index_t{b} * b;
  parallel_for(map_shape[0] * C * Ho, std::max<index_t>(1, s2d_grain / (b * W)), [&](index_t begin, index_t end) {
    for (index_t t = begin; t < end; ++t) {
      const index_t y = t % Ho, nc = t / Ho, c = nc % C, n = nc / C;
      const index_t depth_base = (n * C * b * b + c * c_stride) * plane + y * Wo;
      for (int i = 0; i < b; ++i) {
        const auto row = map + (nc * H + y * b + i) * W;
        for (int j = 0; j < b; ++j) {
          const auto seg = depth + depth_base + (i * b + j) * ij_stride * plane;
          if constexpr (ToDepth) {
            for (index_t x = 0; x < Wo; ++x) seg[x] = row[x * b + j];
          } else {
            for (index_t x = 0; x < Wo; ++x) row[x * b + j] = seg[x];
          }
        }
      }
    }
  });
}

template <bool ToDepth, Scalar T>
void s2d_dispatch(std::conditional_t<ToDepth, const T*, T*> map, std::conditional_t<ToDepth, T*, const T*> depth,
                  const Shape& map_shape, int block, s2d_order order) {
  switch (block) {
    case 2: s2d_permute<2, ToDepth, T>(map, depth, map_shape, block, order); break;
    case 4: s2d_permute<4, ToDepth, T>(map, depth, map_shape, block, order); break;
    default: s2d_permute<0, ToDepth, T>(map, depth, map_shape, block, order);
  }
}

}  // namespace detail

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
template <Scalar T>
Tensor<T> space_to_depth(const Tensor<T>& x, int block, s2d_order order) {
  Tensor<T> y = Tensor<T>::uninitialized(detail::s2d_depth_shape(x, block));
  if (y.numel() > 0) detail::s2d_dispatch<true, T>(x.data(), y.data(), x.shape(), block, order);
  return y;
}

/// [N, C*b*b, H, W] -> [N, C, H*b, W*b]: the inverse of space_to_depth with the same block and
/// order, and so also its backward.
template <Scalar T>
Tensor<T> depth_to_space(const Tensor<T>& y, int block, s2d_order order) {
  const Shape map_shape = detail::s2d_map_shape(y, block);
  Tensor<T> x = Tensor<T>::uninitialized(map_shape);
  if (x.numel() > 0) detail::s2d_dispatch<false, T>(x.data(), y.data(), map_shape, block, order);
  return x;
}

}  // namespace rev::ops
