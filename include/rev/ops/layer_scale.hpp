// Layer scale (CaiT, Touvron et al. 2021; ConvNeXt): each channel of a residual branch multiplied
// by a learnable gamma,
//   y[..., c, ...] = gamma[c] * x[..., c, ...]
// along `axis`: 1 for an NCHW map, -1 for features in the last extent (tokens [B, N, D], [B, D]).
// Backward: dL/dx = gamma ⊙ dy, dL/dgamma[c] = Σ over every other index of dy ⊙ x.
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

// The checks of layer_scale and its backward, shared by every backend; returns the axis in
// [0, rank).
template <class X, class G>
int layer_scale_check(const X& x, const G& gamma, int axis, const char* who) {
  check<shape_error>(x.rank() >= 1 && axis >= -x.rank() && axis < x.rank(), who, ": axis ", axis,
                     " is out of range for input extents ", x.shape());
  const int a = axis < 0 ? axis + x.rank() : axis;
  check<shape_error>(gamma.rank() == 1 && gamma.size(0) == x.size(a), who, ": gamma has extents ", gamma.shape(),
                     ", expected [", x.size(a), "] (the input's extent ", a, " of ", x.shape(), ")");
  return a;
}

}  // namespace detail

/// y = gamma ⊙ x along `axis` (1: a map's channels; -1: the last extent).
template <Scalar T, class B>
Tensor<T, B> layer_scale(const Tensor<T, B>& x, const Tensor<T, B>& gamma, int axis) {
  return kernels<B>::layer_scale(x, gamma, detail::layer_scale_check(x, gamma, axis, "rev::ops::layer_scale"));
}

/// Returns dL/dx = gamma ⊙ dy and, if dgamma is given, ADDS Σ dy ⊙ x to it (all but `axis`).
template <Scalar T, class B>
Tensor<T, B> layer_scale_backward(const Tensor<T, B>& x, const Tensor<T, B>& gamma, const Tensor<T, B>& dy, int axis,
                                  Tensor<T, B>* dgamma) {
  constexpr const char* who = "rev::ops::layer_scale_backward";
  const int a = detail::layer_scale_check(x, gamma, axis, who);
  expect_shape(dy, x.shape(), who, "dy");
  if (dgamma) expect_shape(*dgamma, gamma.shape(), who, "dgamma");
  return kernels<B>::layer_scale_backward(x, gamma, dy, a, dgamma);
}

}  // namespace rev::ops
