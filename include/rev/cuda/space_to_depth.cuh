// Space-to-depth and depth-to-space on rev::cuda, in both channel orders of
// rev/ops/space_to_depth.hpp (revbifpn and pixel_unshuffle), with its validation. Both are
// permutations: one thread per element of the depth tensor moves it from or to its place in the map.
#pragma once

#include "rev/cuda/tensor.cuh"
#include "rev/ops/space_to_depth.hpp"

namespace rev::gpu {

namespace detail {

// The offset in the map [N, C, H, W] of element d of its space-to-depth [N, C*b*b, H/b, W/b].
__device__ inline index_t s2d_map_offset(index_t d, index_t C, index_t H, index_t W, int b, bool revbifpn) {
  const index_t Ho = H / b, Wo = W / b, bb = index_t{b} * b;
  const index_t x = d % Wo, y = d / Wo % Ho, oc = d / (Ho * Wo) % (C * bb), n = d / (Ho * Wo * C * bb);
  const index_t c = revbifpn ? oc % C : oc / bb, ij = revbifpn ? oc / C : oc % bb;
  return ((n * C + c) * H + y * b + ij / b) * W + x * b + ij % b;
}

}  // namespace detail

struct space_to_depth_ops {
  /// [N, C, H, W] -> [N, C*b*b, H/b, W/b]; H and W must be divisible by b.
  template <Scalar T>
  static Tensor<T, cuda> space_to_depth(const Tensor<T, cuda>& x, int block, rev::ops::s2d_order order) {
    constexpr const char* who = "rev::ops::space_to_depth";
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(rev::ops::detail::s2d_depth_shape(x, block));
    const index_t C = x.size(1), H = x.size(2), W = x.size(3);
    const bool revbifpn = order == rev::ops::s2d_order::revbifpn;
    const T* px = x.data();
    T* py = y.data();
    for_each(
        y.numel(), [=] __device__(index_t d) { py[d] = px[detail::s2d_map_offset(d, C, H, W, block, revbifpn)]; }, who);
    return y;
  }

  /// [N, C*b*b, H, W] -> [N, C, H*b, W*b]: the inverse of space_to_depth with the same block and
  /// order, and so also its backward.
  template <Scalar T>
  static Tensor<T, cuda> depth_to_space(const Tensor<T, cuda>& y, int block, rev::ops::s2d_order order) {
    constexpr const char* who = "rev::ops::depth_to_space";
    const Shape map_shape = rev::ops::detail::s2d_map_shape(y, block);
    Tensor<T, cuda> x = Tensor<T, cuda>::uninitialized(map_shape);
    const index_t C = map_shape[1], H = map_shape[2], W = map_shape[3];
    const bool revbifpn = order == rev::ops::s2d_order::revbifpn;
    const T* py = y.data();
    T* px = x.data();
    for_each(
        y.numel(), [=] __device__(index_t d) { px[detail::s2d_map_offset(d, C, H, W, block, revbifpn)] = py[d]; }, who);
    return x;
  }
};

}  // namespace rev::gpu
