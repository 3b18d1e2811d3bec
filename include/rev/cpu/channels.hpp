// The CPU kernels of rev/ops/channels.hpp.
#pragma once

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <ranges>
#include <span>
#include <vector>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/channels.hpp"

namespace rev::ops::detail {

inline constexpr index_t channel_copy_grain = 1 << 15;  // elements per task

// For every sample n and part k, copies one contiguous run of rows[k] * inner elements between
// the whole tensor (at channel offset first[k]) and part k. Runs are spread over the pool.
template <bool ToParts, class Whole, class Part>
void copy_channel_runs(Whole whole, std::span<Part> parts, std::span<const index_t> rows,
                       std::span<const index_t> first, index_t N, index_t C, index_t inner) {
  const auto K = static_cast<index_t>(parts.size());
  const index_t per_run = std::max<index_t>(1, N * C * inner / std::max<index_t>(1, N * K));
  parallel_for(N * K, std::max<index_t>(1, channel_copy_grain / per_run), [&](index_t b, index_t e) {
    for (index_t t = b; t < e; ++t) {
      const index_t n = t / K;
      const auto k = static_cast<std::size_t>(t % K);
      const index_t len = rows[k] * inner;
      if (len == 0) continue;
      const auto w = whole + (n * C + first[k]) * inner;
      const auto p = parts[k] + n * len;
      if constexpr (ToParts) std::memcpy(p, w, static_cast<std::size_t>(len) * sizeof(*w));
      else std::memcpy(w, p, static_cast<std::size_t>(len) * sizeof(*w));
    }
  });
}

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct channels_kernels {
  template <Scalar T>
  static std::vector<Tensor<T>> split_channels(const Tensor<T>& x, std::span<const index_t> sizes) {
    detail::split_check(x.shape(), sizes);
    std::vector<Tensor<T>> parts;
    std::vector<T*> dst;
    std::vector<index_t> first;
    index_t c0 = 0;
    for (index_t s : sizes) {
      Shape ps = x.shape();
      ps[1] = s;
      parts.push_back(Tensor<T>::uninitialized(ps));
      dst.push_back(parts.back().data());
      first.push_back(c0);
      c0 += s;
    }
    detail::copy_channel_runs<true>(x.data(), std::span<T*>(dst), sizes, first, x.size(0), x.size(1),
                                    detail::channel_inner(x.shape()));
    return parts;
  }

  template <Scalar T>
  static Tensor<T> concat_channels(std::span<const Tensor<T>> parts) {
    const Shape out = detail::concat_shape(parts);
    std::vector<const T*> src;
    std::vector<index_t> rows, first;
    index_t c0 = 0;
    for (const Tensor<T>& part : parts) {
      src.push_back(part.data());
      rows.push_back(part.size(1));
      first.push_back(c0);
      c0 += part.size(1);
    }
    Tensor<T> y = Tensor<T>::uninitialized(out);
    detail::copy_channel_runs<false>(y.data(), std::span<const T*>(src), rows, first, out[0], out[1],
                                     detail::channel_inner(out));
    return y;
  }
};

}  // namespace rev::ops::host
