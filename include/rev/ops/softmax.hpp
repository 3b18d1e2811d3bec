// Softmax over the last extent: y_i = exp(x_i - max x) / sum_j exp(x_j - max x).
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

/// Softmax of x [..., K] over its last extent.
template <Scalar T, class B>
Tensor<T, B> softmax(const Tensor<T, B>& x) {
  check<shape_error>(x.rank() >= 1, "rev::ops::softmax: input has rank 0, expected [..., K]");
  return kernels<B>::softmax(x);
}

/// Backward of softmax from its output y: dx_i = y_i * (dy_i - sum_j y_j dy_j).
template <Scalar T, class B>
Tensor<T, B> softmax_backward(const Tensor<T, B>& y, const Tensor<T, B>& dy) {
  constexpr const char* who = "rev::ops::softmax_backward";
  check<shape_error>(y.rank() >= 1, who, ": output has rank 0, expected [..., K]");
  expect_shape(dy, y.shape(), who, "dy");
  return kernels<B>::softmax_backward(y, dy);
}

}  // namespace rev::ops
