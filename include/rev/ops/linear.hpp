// Fully connected layer op, PyTorch's F.linear: y = x W^T + b over the last extent of x.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rev/core/device.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

template <Scalar T, class B>
index_t linear_check(const char* who, const Tensor<T, B>& x, const Tensor<T, B>& w) {
  check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected rank >= 1 (last extent = in features)");
  expect_rank(w, 2, who, "weight");
  check<shape_error>(x.size(-1) == w.size(1), who, ": input has ", x.size(-1), " features (extents ", x.shape(),
                     "), expected ", w.size(1), " (weight ", w.shape(), ")");
  index_t rows = 1;
  for (int i = 0; i + 1 < x.rank(); ++i) rows *= x.size(i);
  return rows;
}

}  // namespace detail

/// y = x W^T + bias. x [..., in] (rank >= 1), w [out, in], bias [out] or nullptr -> [..., out].
template <Scalar T, class B>
Tensor<T, B> linear(const Tensor<T, B>& x, const Tensor<T, B>& w, std::type_identity_t<const Tensor<T, B>*> bias) {
  return kernels<B>::linear(x, w, bias);
}

/// The backward of linear given dy [..., out]. Returns dL/dx (an empty tensor when need_dx is
/// false); ADDS dL/dw = dy^T x into *dw and dL/db = sum of dy's rows into *db when non-null.
template <Scalar T, class B>
Tensor<T, B> linear_backward(const Tensor<T, B>& x, const Tensor<T, B>& w, const Tensor<T, B>& dy,
                             std::type_identity_t<Tensor<T, B>*> dw, std::type_identity_t<Tensor<T, B>*> db,
                             bool need_dx = true) {
  return kernels<B>::linear_backward(x, w, dy, dw, db, need_dx);
}

}  // namespace rev::ops
