// Element-wise CPU kernels and the arithmetic the couplings need (y = x + F(x), ...).
#pragma once

#include <cmath>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {
inline constexpr index_t elementwise_grain = 1 << 15;
}

/// out[i] = f(a[i]) for a new tensor out.
template <Scalar T, class F>
Tensor<T> map(const Tensor<T>& a, F f) {
  Tensor<T> out = Tensor<T>::uninitialized(a.shape());
  const T* pa = a.data();
  T* po = out.data();
  parallel_for(a.numel(), detail::elementwise_grain, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) po[i] = f(pa[i]);
  });
  return out;
}

/// out[i] = f(a[i], b[i]) for a new tensor out; a and b must have the same extents.
template <Scalar T, class F>
Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, F f, const char* who = "rev::ops::zip") {
  expect_shape(b, a.shape(), who, "second operand");
  Tensor<T> out = Tensor<T>::uninitialized(a.shape());
  const T *pa = a.data(), *pb = b.data();
  T* po = out.data();
  parallel_for(a.numel(), detail::elementwise_grain, [&](index_t s, index_t e) {
    for (index_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]);
  });
  return out;
}

/// a[i] = f(a[i], b[i]) in place.
template <Scalar T, class F>
void zip_inplace(Tensor<T>& a, const Tensor<T>& b, F f, const char* who = "rev::ops::zip_inplace") {
  expect_shape(b, a.shape(), who, "second operand");
  T* pa = a.data();
  const T* pb = b.data();
  parallel_for(a.numel(), detail::elementwise_grain, [&](index_t s, index_t e) {
    for (index_t i = s; i < e; ++i) pa[i] = f(pa[i], pb[i]);
  });
}

template <Scalar T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  return zip(
      a, b, [](T x, T y) { return x + y; }, "rev::ops::add");
}
template <Scalar T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  return zip(
      a, b, [](T x, T y) { return x - y; }, "rev::ops::sub");
}
template <Scalar T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  return zip(
      a, b, [](T x, T y) { return x * y; }, "rev::ops::mul");
}
/// a += b
template <Scalar T>
void add_(Tensor<T>& a, const Tensor<T>& b) {
  zip_inplace(
      a, b, [](T x, T y) { return x + y; }, "rev::ops::add_");
}
/// acc += t, where an empty acc becomes t; updates acc's buffer in place only when no other
/// handle shares it (sums of transform outputs and gradients build up this way).
template <Scalar T>
void accumulate(Tensor<T>& acc, const Tensor<T>& t) {
  if (acc.empty()) acc = t;
  else if (acc.unique()) add_(acc, t);
  else acc = add(acc, t);
}

/// a -= b
template <Scalar T>
void sub_(Tensor<T>& a, const Tensor<T>& b) {
  zip_inplace(
      a, b, [](T x, T y) { return x - y; }, "rev::ops::sub_");
}
/// a *= s
template <Scalar T>
void scale_(Tensor<T>& a, T s) {
  T* p = a.data();
  parallel_for(a.numel(), detail::elementwise_grain, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) p[i] *= s;
  });
}

/// Sum of all elements, accumulated in double.
template <Scalar T>
double sum(const Tensor<T>& a) {
  double s = 0;
  for (T v : a) s += v;
  return s;
}

/// Sum of a[i] * b[i], accumulated in double.
template <Scalar T>
double dot(const Tensor<T>& a, const Tensor<T>& b) {
  expect_shape(b, a.shape(), "rev::ops::dot", "second operand");
  double s = 0;
  for (index_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
  return s;
}

/// The same values converted to element type U.
template <Scalar U, Scalar T>
Tensor<U> cast(const Tensor<T>& a) {
  Tensor<U> out = Tensor<U>::uninitialized(a.shape());
  for (index_t i = 0; i < a.numel(); ++i) out.data()[i] = static_cast<U>(a.data()[i]);
  return out;
}

}  // namespace rev::ops
