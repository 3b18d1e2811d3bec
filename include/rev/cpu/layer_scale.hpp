// The CPU kernels of rev/ops/layer_scale.hpp. The input is viewed as [outer, C, inner] around
// the scaled axis.
#pragma once

#include <algorithm>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/layer_scale.hpp"

namespace rev::ops::host {

struct layer_scale_kernels {
  template <Scalar T>
  static Tensor<T> layer_scale(const Tensor<T>& x, const Tensor<T>& gamma, int axis) {
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    scale(x.data(), gamma.data(), y.data(), x.shape(), axis);
    return y;
  }

  template <Scalar T>
  static Tensor<T> layer_scale_backward(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& dy, int axis,
                                        Tensor<T>* dgamma) {
    Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
    scale(dy.data(), gamma.data(), dx.data(), x.shape(), axis);
    if (dgamma) {
      const auto [outer, C, inner] = split(x.shape(), axis);
      const T *px = x.data(), *pd = dy.data();
      T* pg = dgamma->data();
      // One task per channel: each sums its own outer x inner products (in double).
      parallel_for(C, std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(1, outer * inner)),
                   [&](index_t b, index_t e) {
                     for (index_t c = b; c < e; ++c) {
                       double s = 0;
                       for (index_t o = 0; o < outer; ++o) {
                         const index_t base = (o * C + c) * inner;
                         for (index_t i = 0; i < inner; ++i)
                           s += static_cast<double>(pd[base + i]) * static_cast<double>(px[base + i]);
                       }
                       pg[c] = static_cast<T>(pg[c] + s);
                     }
                   });
    }
    return dx;
  }

 private:
  struct extents {
    index_t outer, C, inner;
  };
  static extents split(const Shape& s, int axis) {
    extents e{1, s[axis], 1};
    for (int d = 0; d < axis; ++d) e.outer *= s[d];
    for (int d = axis + 1; d < s.rank(); ++d) e.inner *= s[d];
    return e;
  }

  // out[o, c, i] = g[c] * in[o, c, i]
  template <Scalar T>
  static void scale(const T* in, const T* g, T* out, const Shape& s, int axis) {
    const auto [outer, C, inner] = split(s, axis);
    parallel_for(outer * C, std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(1, inner)),
                 [&](index_t b, index_t e) {
                   for (index_t r = b; r < e; ++r) {
                     const T gc = g[r % C];
                     const T* src = in + r * inner;
                     T* dst = out + r * inner;
                     for (index_t i = 0; i < inner; ++i) dst[i] = gc * src[i];
                   }
                 });
  }
};

}  // namespace rev::ops::host
