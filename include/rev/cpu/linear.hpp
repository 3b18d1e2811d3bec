// Fully connected layer op, PyTorch's F.linear: y = x W^T + b over the last extent of x.
#pragma once

#include <algorithm>
#include <functional>
#include <type_traits>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/gemm.hpp"

namespace rev::ops {

namespace detail {

// Rows of x per parallel task: about 2^16 multiply-adds, and at least 16 rows.
inline index_t linear_rows_per_task(index_t in, index_t out) {
  return std::max<index_t>(16, (index_t{1} << 16) / std::max<index_t>(in * out, 1));
}

template <Scalar T>
index_t linear_check(const char* who, const Tensor<T>& x, const Tensor<T>& w) {
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
template <Scalar T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& w, std::type_identity_t<const Tensor<T>*> bias) {
  constexpr const char* who = "rev::ops::linear";
  const index_t rows = detail::linear_check(who, x, w);
  const index_t in = w.size(1), out = w.size(0);
  if (bias) expect_shape(*bias, Shape{out}, who, "bias");
  Shape ys = x.shape();
  ys[-1] = out;
  Tensor<T> y = Tensor<T>::uninitialized(ys);
  const T *xp = x.data(), *wp = w.data();
  T* yp = y.data();
  parallel_for(rows, detail::linear_rows_per_task(in, out), [&](index_t b, index_t e) {
    gemm(mat(xp + b * in, e - b, in), mat_t(wp, out, in), mat(yp + b * out, e - b, out));
    if (bias)
      for (index_t r = b; r < e; ++r)
        for (index_t o = 0; o < out; ++o) yp[r * out + o] += bias->data()[o];
  });
  return y;
}

/// The backward of linear given dy [..., out]. Returns dL/dx (an empty tensor when need_dx is
/// false); ADDS dL/dw = dy^T x into *dw and dL/db = sum of dy's rows into *db when non-null.
template <Scalar T>
Tensor<T> linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, std::type_identity_t<Tensor<T>*> dw,
                          std::type_identity_t<Tensor<T>*> db,
                          bool need_dx = true) {
  constexpr const char* who = "rev::ops::linear_backward";
  const index_t rows = detail::linear_check(who, x, w);
  const index_t in = w.size(1), out = w.size(0);
  Shape ys = x.shape();
  ys[-1] = out;
  expect_shape(dy, ys, who, "output gradient");
  if (dw) expect_shape(*dw, w.shape(), who, "weight gradient");
  if (db) expect_shape(*db, Shape{out}, who, "bias gradient");
  const T *xp = x.data(), *wp = w.data(), *dyp = dy.data();
  if (dw || db) {  // over chunks of rows: dW += dY_rows^T X_rows, db += column sums of dY_rows
    const index_t dw_size = dw ? out * in : 0;
    Tensor<T> acc(Shape{dw_size + (db ? out : 0)});
    detail::parallel_accumulate(rows, acc.numel(), acc.data(), [&](index_t b, index_t e, T* a) {
      if (dw) gemm(mat_t(dyp + b * out, e - b, out), mat(xp + b * in, e - b, in), mat(a, out, in), T(1), T(1));
      if (db)
        for (index_t r = b; r < e; ++r)
          for (index_t o = 0; o < out; ++o) a[dw_size + o] += dyp[r * out + o];
    });
    if (dw) std::transform(dw->begin(), dw->end(), acc.begin(), dw->begin(), std::plus<T>());
    if (db) std::transform(db->begin(), db->end(), acc.begin() + dw_size, db->begin(), std::plus<T>());
  }
  if (!need_dx) return Tensor<T>();
  Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
  T* dxp = dx.data();
  parallel_for(rows, detail::linear_rows_per_task(in, out), [&](index_t b, index_t e) {
    gemm(mat(dyp + b * out, e - b, out), mat(wp, out, in), mat(dxp + b * in, e - b, in));
  });
  return dx;
}

}  // namespace rev::ops
