// Element-wise ops: arithmetic, in-place updates, double reductions and conversions. The shape
// checks are here; each backend's kernels<B> computes (rev/cpu/elementwise.hpp,
// rev/cuda/elementwise.cuh).
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

/// out[i] = f(a[i]) for a new tensor out. f is called where the backend computes (a host
/// functor: rev::cpu only).
template <Scalar T, class B, class F>
Tensor<T, B> map(const Tensor<T, B>& a, F f) {
  return kernels<B>::map(a, f);
}

/// out[i] = f(a[i], b[i]) for a new tensor out; a and b must have the same extents.
template <Scalar T, class B, class F>
Tensor<T, B> zip(const Tensor<T, B>& a, const Tensor<T, B>& b, F f, const char* who = "rev::ops::zip") {
  expect_shape(b, a.shape(), who, "second operand");
  return kernels<B>::zip(a, b, f);
}

/// a[i] = f(a[i], b[i]) in place.
template <Scalar T, class B, class F>
void zip_inplace(Tensor<T, B>& a, const Tensor<T, B>& b, F f, const char* who = "rev::ops::zip_inplace") {
  expect_shape(b, a.shape(), who, "second operand");
  kernels<B>::zip_inplace(a, b, f);
}

/// a + b
template <Scalar T, class B>
Tensor<T, B> add(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_shape(b, a.shape(), "rev::ops::add", "second operand");
  return kernels<B>::add(a, b);
}

/// a - b
template <Scalar T, class B>
Tensor<T, B> sub(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_shape(b, a.shape(), "rev::ops::sub", "second operand");
  return kernels<B>::sub(a, b);
}

/// a * b, element by element.
template <Scalar T, class B>
Tensor<T, B> mul(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_shape(b, a.shape(), "rev::ops::mul", "second operand");
  return kernels<B>::mul(a, b);
}

/// a += b
template <Scalar T, class B>
void add_(Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_shape(b, a.shape(), "rev::ops::add_", "second operand");
  kernels<B>::add_(a, b);
}

/// a -= b
template <Scalar T, class B>
void sub_(Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_shape(b, a.shape(), "rev::ops::sub_", "second operand");
  kernels<B>::sub_(a, b);
}

/// a *= s
template <Scalar T, class B>
void scale_(Tensor<T, B>& a, std::type_identity_t<T> s) {
  kernels<B>::scale_(a, s);
}

/// acc += t, where an empty acc becomes t (sharing its buffer); updates acc's buffer in place
/// only when no other handle shares it (sums of transform outputs and gradients build up this
/// way). Composed of add_ and add, so every backend has it.
template <Scalar T, class B>
void accumulate(Tensor<T, B>& acc, const Tensor<T, B>& t) {
  if (acc.empty()) acc = t;
  else if (acc.unique()) add_(acc, t);
  else acc = add(acc, t);
}

/// Sum of all elements, accumulated in double.
template <Scalar T, class B>
double sum(const Tensor<T, B>& a) {
  return kernels<B>::sum(a);
}

/// Sum of a[i] * b[i], accumulated in double.
template <Scalar T, class B>
double dot(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_shape(b, a.shape(), "rev::ops::dot", "second operand");
  return kernels<B>::dot(a, b);
}

/// The same values converted to element type U.
template <Scalar U, Scalar T, class B>
Tensor<U, B> cast(const Tensor<T, B>& a) {
  return kernels<B>::template cast<U>(a);
}

}  // namespace rev::ops
