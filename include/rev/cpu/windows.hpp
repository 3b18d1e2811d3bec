// The CPU kernels of rev/ops/windows.hpp: row copies between the grid and its windows.
#pragma once

#include <algorithm>
#include <cstring>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/windows.hpp"

namespace rev::ops::host {

struct windows_kernels {
  template <Scalar T>
  static Tensor<T> window_partition(const Tensor<T>& t, index_t H, index_t W, index_t ws) {
    const auto d = detail::window_check(t, false, H, W, ws, "rev::ops::window_partition");
    Tensor<T> w({d.B * d.nh * d.nw, ws * ws, d.C});  // zero: the padding
    copy<true>(d, t.data(), w.data());
    return w;
  }

  template <Scalar T>
  static Tensor<T> window_unpartition(const Tensor<T>& w, index_t H, index_t W, index_t ws) {
    const auto d = detail::window_check(w, true, H, W, ws, "rev::ops::window_unpartition");
    Tensor<T> t = Tensor<T>::uninitialized({d.B, H * W, d.C});
    copy<false>(d, w.data(), t.data());
    return t;
  }

 private:
  // Copies each grid row segment of a window from the grid to the windows (Split) or back, one
  // task per (sample, grid row).
  template <bool Split, Scalar T>
  static void copy(const detail::window_dims& d, const T* src, T* dst) {
    parallel_for(d.B * d.H, std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(1, d.W * d.C)),
                 [&](index_t begin, index_t end) {
                   for (index_t r = begin; r < end; ++r) {
                     const index_t b = r / d.H, y = r % d.H, wy = y / d.ws, iy = y % d.ws;
                     for (index_t wx = 0; wx < d.nw; ++wx) {
                       const index_t x0 = wx * d.ws, n = std::min(d.ws, d.W - x0);
                       const index_t wi = (((b * d.nh + wy) * d.nw + wx) * d.ws * d.ws + iy * d.ws) * d.C;
                       const index_t gi = ((b * d.H + y) * d.W + x0) * d.C;
                       std::memcpy(dst + (Split ? wi : gi), src + (Split ? gi : wi),
                                   static_cast<std::size_t>(n * d.C) * sizeof(T));
                     }
                   }
                 });
  }
};

}  // namespace rev::ops::host
