// The CPU kernels of rev/ops/tokens.hpp: per sample, a transpose of a [C, H*W] matrix, in tiles.
#pragma once

#include <algorithm>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/tokens.hpp"

namespace rev::ops::host {

struct tokens_kernels {
  template <Scalar T>
  static Tensor<T> map_to_tokens(const Tensor<T>& x) {
    Tensor<T> t = Tensor<T>::uninitialized(detail::tokens_shape(x));
    transpose(x.data(), t.data(), x.size(0), x.size(1), x.size(2) * x.size(3));
    return t;
  }

  template <Scalar T>
  static Tensor<T> tokens_to_map(const Tensor<T>& t, index_t h, index_t w) {
    Tensor<T> x = Tensor<T>::uninitialized(detail::map_shape(t, h, w));
    transpose(t.data(), x.data(), t.size(0), t.size(1), t.size(2));
    return x;
  }

 private:
  // dst[b, j, i] = src[b, i, j] for src [batch, rows, cols]; one task per tile of rows.
  template <Scalar T>
  static void transpose(const T* src, T* dst, index_t batch, index_t rows, index_t cols) {
    constexpr index_t tile = 32;
    const index_t row_tiles = (rows + tile - 1) / tile;
    parallel_for(batch * row_tiles, std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(1, tile * cols)),
                 [&](index_t begin, index_t end) {
                   for (index_t task = begin; task < end; ++task) {
                     const index_t b = task / row_tiles, r0 = (task % row_tiles) * tile, r1 = std::min(rows, r0 + tile);
                     const T* s = src + b * rows * cols;
                     T* d = dst + b * rows * cols;
                     for (index_t c0 = 0; c0 < cols; c0 += tile) {
                       const index_t c1 = std::min(cols, c0 + tile);
                       for (index_t i = r0; i < r1; ++i)
                         for (index_t j = c0; j < c1; ++j) d[j * rows + i] = s[i * cols + j];
                     }
                   }
                 });
  }
};

}  // namespace rev::ops::host
