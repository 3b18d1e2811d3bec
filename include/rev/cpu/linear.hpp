// The CPU kernels of rev/ops/linear.hpp.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rev/core/op_count.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/gemm.hpp"
#include "rev/ops/linear.hpp"

namespace rev::ops::host {

struct linear_kernels {
  template <Scalar T>
  static Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& w, std::type_identity_t<const Tensor<T>*> bias) {
    constexpr const char* who = "rev::ops::linear";
    const index_t rows = detail::linear_check(who, x, w);
    const index_t in = w.size(1), out = w.size(0);
    if (bias) expect_shape(*bias, Shape{out}, who, "bias");
    Shape ys = x.shape();
    ys[-1] = out;
    Tensor<T> y = Tensor<T>::uninitialized(ys);
    if (op_counts* c = rev::detail::active_op_counts()) c->linear_macs += rows * in * out;
    T* yp = y.data();
    parallel_gemm(mat(x.data(), rows, in), mat_t(w.data(), out, in), mat(yp, rows, out));
    if (bias)
      for (index_t r = 0; r < rows; ++r)
        for (index_t o = 0; o < out; ++o) yp[r * out + o] += bias->data()[o];
    return y;
  }

  template <Scalar T>
  static Tensor<T> linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy,
                                   std::type_identity_t<Tensor<T>*> dw, std::type_identity_t<Tensor<T>*> db,
                                   bool need_dx) {
    constexpr const char* who = "rev::ops::linear_backward";
    const index_t rows = detail::linear_check(who, x, w);
    const index_t in = w.size(1), out = w.size(0);
    Shape ys = x.shape();
    ys[-1] = out;
    expect_shape(dy, ys, who, "output gradient");
    if (dw) expect_shape(*dw, w.shape(), who, "weight gradient");
    if (db) expect_shape(*db, Shape{out}, who, "bias gradient");
    const T* dyp = dy.data();
    if (dw) parallel_gemm(mat_t(dyp, rows, out), mat(x.data(), rows, in), mat(dw->data(), out, in), T(1));
    if (db)  // column sums of dY, over chunks of rows
      detail::parallel_accumulate(rows, out, db->data(), [&](index_t b, index_t e, T* acc) {
        for (index_t r = b; r < e; ++r)
          for (index_t o = 0; o < out; ++o) acc[o] += dyp[r * out + o];
      });
    if (!need_dx) return Tensor<T>();
    Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
    parallel_gemm(mat(dyp, rows, out), mat(w.data(), out, in), mat(dx.data(), rows, in));
    return dx;
  }
};

}  // namespace rev::ops::host
