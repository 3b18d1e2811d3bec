// Splitting and concatenating tensors along dim 1 (the channels of NCHW maps; any rank >= 2).
// Each is the other's backward: the gradient of a split is the concatenation of the parts'
// gradients, and the gradient of a concatenation is its split by the parts' channel counts.
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

namespace rev::ops {

namespace detail {

inline constexpr index_t channel_copy_grain = 1 << 15;  // elements per task

// Elements per channel: the product of the extents after dim 1.
inline index_t channel_inner(const Shape& s) {
  index_t inner = 1;
  for (int i = 2; i < s.rank(); ++i) inner *= s[i];
  return inner;
}

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

}  // namespace detail

namespace detail {

// The checks of split_channels and concat_channels, shared by every backend.
inline void split_check(const Shape& xs, std::span<const index_t> sizes) {
  constexpr const char* who = "rev::ops::split_channels";
  check<shape_error>(xs.rank() >= 2, who, ": input has rank ", xs.rank(), " (extents ", xs, "), expected rank >= 2");
  index_t total = 0;
  for (index_t s : sizes) {
    check<shape_error>(s >= 0, who, ": negative part size ", s);
    total += s;
  }
  check<shape_error>(total == xs[1], who, ": part sizes sum to ", total, ", expected the ", xs[1],
                     " channels of the input (extents ", xs, ")");
}
// The extents of the concatenation of parts (tensors of any backend).
template <class X>
Shape concat_shape(std::span<const X> parts) {
  constexpr const char* who = "rev::ops::concat_channels";
  check<shape_error>(!parts.empty(), who, ": no tensors to concatenate");
  const Shape& s0 = parts[0].shape();
  check<shape_error>(s0.rank() >= 2, who, ": part 0 has rank ", s0.rank(), " (extents ", s0, "), expected rank >= 2");
  Shape out = s0;
  out[1] = 0;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    Shape expected = s0;
    expected[1] = parts[k].size(1);
    check<shape_error>(parts[k].shape() == expected, who, ": part ", k, " has extents ", parts[k].shape(),
                       ", expected ", s0, " except in dim 1");
    out[1] += parts[k].size(1);
  }
  return out;
}

}  // namespace detail

/// Splits x [N, C, ...] into parts [N, sizes[k], ...] along dim 1; the sizes must sum to C.
template <Scalar T>
std::vector<Tensor<T>> split_channels(const Tensor<T>& x, std::span<const index_t> sizes) {
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
std::vector<Tensor<T>> split_channels(const Tensor<T>& x, std::initializer_list<index_t> sizes) {
  return split_channels(x, std::span<const index_t>(sizes.begin(), sizes.size()));
}

/// Concatenates parts [N, C_k, ...] along dim 1 into [N, sum C_k, ...]; all other extents must agree.
template <Scalar T>
Tensor<T> concat_channels(std::span<const Tensor<T>> parts) {
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

/// concat_channels of a std::vector, std::array or other contiguous range of tensors.
template <std::ranges::contiguous_range R>
requires Scalar<typename std::ranges::range_value_t<R>::value_type> &&
    std::same_as<std::ranges::range_value_t<R>, Tensor<typename std::ranges::range_value_t<R>::value_type>>
auto concat_channels(const R& parts) {
  using T = typename std::ranges::range_value_t<R>::value_type;
  return concat_channels(std::span<const Tensor<T>>(std::ranges::data(parts), std::ranges::size(parts)));
}

template <Scalar T>
Tensor<T> concat_channels(std::initializer_list<Tensor<T>> parts) {
  return concat_channels(std::span<const Tensor<T>>(parts.begin(), parts.size()));
}

}  // namespace rev::ops
