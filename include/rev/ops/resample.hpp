// Up-sampling of NCHW maps by an integer factor: bilinear with align_corners = false and = true,
// and nearest, with PyTorch's conventions for a given scale_factor (RevBiFPN's fusion
// transforms, RevCol's up paths and image decoders). All are separable and linear; the
// backwards are their adjoints.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "rev/core/device.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

template <class T, class B>
void check_resample_args(const Tensor<T, B>& x, int factor, const char* who, const char* what) {
  check<value_error>(factor >= 1, who, ": factor must be >= 1, got ", factor);
  expect_rank(x, 4, who, what);
}

// The extents of the gradient of an up-sampling whose output gradient is dy.
template <class T, class B>
Shape downsampled_shape(const Tensor<T, B>& dy, int factor, const char* who) {
  check_resample_args(dy, factor, who, "gradient");
  check<shape_error>(dy.size(2) % factor == 0 && dy.size(3) % factor == 0, who, ": gradient has extents ", dy.shape(),
                     ", expected H and W divisible by the factor ", factor);
  return {dy.size(0), dy.size(1), dy.size(2) / factor, dy.size(3) / factor};
}

}  // namespace detail

/// Bilinear up-sampling by `factor`: [N, C, H, W] -> [N, C, H*f, W*f], align_corners = false.
template <Scalar T, class B>
Tensor<T, B> upsample_bilinear(const Tensor<T, B>& x, int factor) {
  return kernels<B>::upsample_bilinear(x, factor);
}

/// The adjoint of upsample_bilinear: dy [N, C, H*f, W*f] -> dx [N, C, H, W].
template <Scalar T, class B>
Tensor<T, B> upsample_bilinear_backward(const Tensor<T, B>& dy, int factor) {
  return kernels<B>::upsample_bilinear_backward(dy, factor);
}

/// Bilinear up-sampling by `factor` with align_corners = true: [N, C, H, W] -> [N, C, H*f, W*f],
/// output row o reads the input at o * (H - 1) / (H*f - 1) (the corner pixels of input and
/// output coincide), likewise along W.
template <Scalar T, class B>
Tensor<T, B> upsample_bilinear_aligned(const Tensor<T, B>& x, int factor) {
  return kernels<B>::upsample_bilinear_aligned(x, factor);
}

/// The adjoint of upsample_bilinear_aligned: dy [N, C, H*f, W*f] -> dx [N, C, H, W].
template <Scalar T, class B>
Tensor<T, B> upsample_bilinear_aligned_backward(const Tensor<T, B>& dy, int factor) {
  return kernels<B>::upsample_bilinear_aligned_backward(dy, factor);
}

/// Nearest up-sampling by `factor`: y[n, c, o, p] = x[n, c, floor(o / f), floor(p / f)].
template <Scalar T, class B>
Tensor<T, B> upsample_nearest(const Tensor<T, B>& x, int factor) {
  return kernels<B>::upsample_nearest(x, factor);
}

/// The adjoint of upsample_nearest: dx[n, c, h, w] = sum of dy over the f x f block of (h, w).
template <Scalar T, class B>
Tensor<T, B> upsample_nearest_backward(const Tensor<T, B>& dy, int factor) {
  return kernels<B>::upsample_nearest_backward(dy, factor);
}

}  // namespace rev::ops
