// The CPU kernels of the element-wise ops (rev/ops/elementwise.hpp, which checks the shapes),
// parallel over contiguous chunks.
#pragma once

#include <cmath>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev::ops::host {

struct elementwise_kernels {
  static constexpr index_t grain = 1 << 15;  // elements per task

  template <Scalar T, class F>
  static Tensor<T> map(const Tensor<T>& a, F f) {
    Tensor<T> out = Tensor<T>::uninitialized(a.shape());
    const T* pa = a.data();
    T* po = out.data();
    parallel_for(a.numel(), grain, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) po[i] = f(pa[i]);
    });
    return out;
  }

  template <Scalar T, class F>
  static Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, F f) {
    Tensor<T> out = Tensor<T>::uninitialized(a.shape());
    const T *pa = a.data(), *pb = b.data();
    T* po = out.data();
    parallel_for(a.numel(), grain, [&](index_t s, index_t e) {
      for (index_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]);
    });
    return out;
  }

  template <Scalar T, class F>
  static void zip_inplace(Tensor<T>& a, const Tensor<T>& b, F f) {
    T* pa = a.data();
    const T* pb = b.data();
    parallel_for(a.numel(), grain, [&](index_t s, index_t e) {
      for (index_t i = s; i < e; ++i) pa[i] = f(pa[i], pb[i]);
    });
  }

  template <Scalar T>
  static Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
    return zip(a, b, [](T x, T y) { return x + y; });
  }
  template <Scalar T>
  static Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
    return zip(a, b, [](T x, T y) { return x - y; });
  }
  template <Scalar T>
  static Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
    return zip(a, b, [](T x, T y) { return x * y; });
  }
  template <Scalar T>
  static void add_(Tensor<T>& a, const Tensor<T>& b) {
    zip_inplace(a, b, [](T x, T y) { return x + y; });
  }
  template <Scalar T>
  static void sub_(Tensor<T>& a, const Tensor<T>& b) {
    zip_inplace(a, b, [](T x, T y) { return x - y; });
  }
  template <Scalar T>
  static void scale_(Tensor<T>& a, T s) {
    T* p = a.data();
    parallel_for(a.numel(), grain, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) p[i] *= s;
    });
  }

  template <Scalar T>
  static double sum(const Tensor<T>& a) {
    double s = 0;
    for (T v : a) s += v;
    return s;
  }
  template <Scalar T>
  static double dot(const Tensor<T>& a, const Tensor<T>& b) {
    double s = 0;
    for (index_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
    return s;
  }

  template <Scalar U, Scalar T>
  static Tensor<U> cast(const Tensor<T>& a) {
    Tensor<U> out = Tensor<U>::uninitialized(a.shape());
    for (index_t i = 0; i < a.numel(); ++i) out.data()[i] = static_cast<U>(a.data()[i]);
    return out;
  }
};

}  // namespace rev::ops::host
