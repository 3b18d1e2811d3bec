// The CPU kernels of rev/ops/space_to_depth.hpp.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/space_to_depth.hpp"

namespace rev::ops::detail {

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

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct space_to_depth_kernels {
  template <Scalar T>
  static Tensor<T> space_to_depth(const Tensor<T>& x, int block, s2d_order order) {
    Tensor<T> y = Tensor<T>::uninitialized(detail::s2d_depth_shape(x, block));
    if (y.numel() > 0) detail::s2d_dispatch<true, T>(x.data(), y.data(), x.shape(), block, order);
    return y;
  }

  template <Scalar T>
  static Tensor<T> depth_to_space(const Tensor<T>& y, int block, s2d_order order) {
    const Shape map_shape = detail::s2d_map_shape(y, block);
    Tensor<T> x = Tensor<T>::uninitialized(map_shape);
    if (x.numel() > 0) detail::s2d_dispatch<false, T>(x.data(), y.data(), map_shape, block, order);
    return x;
  }
};

}  // namespace rev::ops::host
