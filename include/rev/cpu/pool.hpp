// The CPU kernels of rev/ops/pool.hpp.
#pragma once

#include <algorithm>

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
};

}  // namespace rev::ops::host
