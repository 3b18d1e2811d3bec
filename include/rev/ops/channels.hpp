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

#include "rev/core/device.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

// Elements per channel: the product of the extents after dim 1.
inline index_t channel_inner(const Shape& s) {
  index_t inner = 1;
  for (int i = 2; i < s.rank(); ++i) inner *= s[i];
  return inner;
}

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
template <Scalar T, class B>
std::vector<Tensor<T, B>> split_channels(const Tensor<T, B>& x, std::span<const index_t> sizes) {
  return kernels<B>::split_channels(x, sizes);
}

/// split_channels(x, {sizes...}).
template <Scalar T, class B>
std::vector<Tensor<T, B>> split_channels(const Tensor<T, B>& x, std::initializer_list<index_t> sizes) {
  return split_channels(x, std::span<const index_t>(sizes.begin(), sizes.size()));
}

/// Concatenates parts [N, C_k, ...] along dim 1 into [N, sum C_k, ...]; all other extents must agree.
template <Scalar T, class B>
Tensor<T, B> concat_channels(std::span<const Tensor<T, B>> parts) {
  return kernels<B>::concat_channels(parts);
}

/// concat_channels of a std::vector, std::array or other contiguous range of tensors.
template <std::ranges::contiguous_range R>
requires(!std::same_as<R, std::span<const std::ranges::range_value_t<R>>>) auto concat_channels(const R& parts) {
  using tensor = std::ranges::range_value_t<R>;
  return concat_channels(std::span<const tensor>(std::ranges::data(parts), std::ranges::size(parts)));
}

/// concat_channels({a, b, ...}).
template <Scalar T, class B>
Tensor<T, B> concat_channels(std::initializer_list<Tensor<T, B>> parts) {
  return concat_channels(std::span<const Tensor<T, B>>(parts.begin(), parts.size()));
}

}  // namespace rev::ops
