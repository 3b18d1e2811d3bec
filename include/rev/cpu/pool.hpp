// The CPU kernels of rev/ops/pool.hpp.
#pragma once

#include <algorithm>
#include <cmath>

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/moments.hpp"
#include "rev/ops/pool.hpp"

namespace rev::ops::host {

struct pool_kernels {
  template <Scalar T>
  static Tensor<T> global_avg_pool(const Tensor<T>& x) {
    detail::gap_check_input("rev::ops::global_avg_pool", x.shape());
    const index_t planes = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
    Tensor<T> y = Tensor<T>::uninitialized({x.size(0), x.size(1), 1, 1});
    const T* px = x.data();
    T* py = y.data();
    parallel_for(planes, std::max<index_t>(1, (index_t{1} << 15) / HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i)
        py[i] = static_cast<T>(detail::sum_values(px + i * HW, HW) / static_cast<double>(HW));
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> global_avg_pool_backward(const Shape& input_shape, const Tensor<T>& dy) {
    constexpr const char* who = "rev::ops::global_avg_pool_backward";
    detail::gap_check_input(who, input_shape);
    expect_shape(dy, Shape{input_shape[0], input_shape[1], 1, 1}, who, "dy");
    const index_t planes = input_shape[0] * input_shape[1], HW = input_shape[2] * input_shape[3];
    Tensor<T> dx = Tensor<T>::uninitialized(input_shape);
    const T* pg = dy.data();
    T* pd = dx.data();
    parallel_for(planes, std::max<index_t>(1, (index_t{1} << 15) / HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i)
        std::fill(pd + i * HW, pd + (i + 1) * HW, static_cast<T>(static_cast<double>(pg[i]) / static_cast<double>(HW)));
    });
    return dx;
  }

  template <Scalar T>
  static Tensor<T> avg_pool2d(const Tensor<T>& x, int k) {
    detail::gap_check_input("rev::ops::avg_pool2d", x.shape());
    check<value_error>(k >= 1, "rev::ops::avg_pool2d: kernel ", k, " must be at least 1");
    const index_t H = x.size(2), W = x.size(3), Ho = H / k, Wo = W / k;
    check<shape_error>(Ho > 0 && Wo > 0, "rev::ops::avg_pool2d: input has extents ", x.shape(), ", smaller than the ",
                       k, "x", k, " window");
    Tensor<T> y = Tensor<T>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    const T inv = T(1) / static_cast<T>(k * k);
    const T* px = x.data();
    T* py = y.data();
    parallel_for(x.size(0) * x.size(1), std::max<index_t>(1, (index_t{1} << 15) / (H * W)), [&](index_t b, index_t e) {
      for (index_t p = b; p < e; ++p)
        for (index_t i = 0; i < Ho; ++i)
          for (index_t j = 0; j < Wo; ++j) {
            T s = 0;
            for (int u = 0; u < k; ++u)
              for (int v = 0; v < k; ++v) s += px[(p * H + i * k + u) * W + j * k + v];
            py[(p * Ho + i) * Wo + j] = s * inv;
          }
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> avg_pool2d_backward(const Shape& input_shape, const Tensor<T>& dy, int k) {
    constexpr const char* who = "rev::ops::avg_pool2d_backward";
    detail::gap_check_input(who, input_shape);
    check<value_error>(k >= 1, who, ": kernel ", k, " must be at least 1");
    const index_t H = input_shape[2], W = input_shape[3], Ho = H / k, Wo = W / k;
    expect_shape(dy, Shape{input_shape[0], input_shape[1], Ho, Wo}, who, "dy");
    Tensor<T> dx(input_shape);
    const T inv = T(1) / static_cast<T>(k * k);
    const T* pg = dy.data();
    T* pd = dx.data();
    parallel_for(input_shape[0] * input_shape[1], std::max<index_t>(1, (index_t{1} << 15) / (H * W)),
                 [&](index_t b, index_t e) {
                   for (index_t p = b; p < e; ++p)
                     for (index_t i = 0; i < Ho; ++i)
                       for (index_t j = 0; j < Wo; ++j) {
                         const T g = pg[(p * Ho + i) * Wo + j] * inv;
                         for (int u = 0; u < k; ++u)
                           for (int v = 0; v < k; ++v) pd[(p * H + i * k + u) * W + j * k + v] = g;
                       }
                 });
    return dx;
  }

  template <Scalar T>
  static Tensor<T> max_pool2d(const Tensor<T>& x, int k, int stride, int padding) {
    const auto m = detail::max_pool_check("rev::ops::max_pool2d", x.shape(), k, stride, padding);
    Tensor<T> y = Tensor<T>::uninitialized({x.size(0), x.size(1), m.Ho, m.Wo});
    const T* px = x.data();
    T* py = y.data();
    for_each_window(
        x.size(0) * x.size(1), m, k, stride, padding,
        [&](index_t plane, index_t out, index_t at) { py[plane * m.Ho * m.Wo + out] = px[plane * m.H * m.W + at]; },
        px);
    return y;
  }

  template <Scalar T>
  static Tensor<T> max_pool2d_backward(const Tensor<T>& x, const Tensor<T>& dy, int k, int stride, int padding) {
    constexpr const char* who = "rev::ops::max_pool2d_backward";
    const auto m = detail::max_pool_check(who, x.shape(), k, stride, padding);
    expect_shape(dy, Shape{x.size(0), x.size(1), m.Ho, m.Wo}, who, "dy");
    Tensor<T> dx(x.shape());
    const T* pg = dy.data();
    T* pd = dx.data();
    // A task owns whole planes, so the scattered sums of overlapping windows never race.
    for_each_window(
        x.size(0) * x.size(1), m, k, stride, padding,
        [&](index_t plane, index_t out, index_t at) { pd[plane * m.H * m.W + at] += pg[plane * m.Ho * m.Wo + out]; },
        x.data());
    return dx;
  }

 private:
  // Calls f(plane, output index, index of its maximum in the plane) for every output element.
  template <class T, class F>
  static void for_each_window(index_t planes, const detail::max_pool_dims& m, int k, int stride, int padding, F&& f,
                              const T* px) {
    parallel_for(planes, std::max<index_t>(1, (index_t{1} << 15) / (m.H * m.W)), [&](index_t b, index_t e) {
      for (index_t p = b; p < e; ++p) {
        const T* plane = px + p * m.H * m.W;
        for (index_t i = 0; i < m.Ho; ++i)
          for (index_t j = 0; j < m.Wo; ++j) {
            const index_t h0 = i * stride - padding, w0 = j * stride - padding;
            index_t best = -1;
            for (index_t u = std::max<index_t>(h0, 0); u < std::min<index_t>(h0 + k, m.H); ++u)
              for (index_t v = std::max<index_t>(w0, 0); v < std::min<index_t>(w0 + k, m.W); ++v) {
                const index_t at = u * m.W + v;
                if (best < 0 || plane[at] > plane[best] || std::isnan(plane[at])) best = at;
              }
            f(p, i * m.Wo + j, best);
          }
      }
    });
  }
};

}  // namespace rev::ops::host
