// Dropout and drop-path (stochastic depth) with masks drawn from a counter-based generator.
//   dropout:   element i is kept iff philox::uniform(s, i) >= p
//   drop_path: sample n (index along dim 0) is kept iff philox::uniform(s, n) >= p
// Kept values are scaled by 1/(1-p), dropped ones are 0 (inverted dropout; SlowFast's drop_path
// x / keep * floor(keep + U) is the same rule with keep = 1 - p). The mask is a pure function of
// the rng_state, so the backward, and a reversible recomputation, regenerate it from those
// 16 bytes: nothing else is stored.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/rng.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

inline void check_drop_probability(double p, const char* who) {
  check<value_error>(p >= 0 && p < 1, who, ": p must be in [0, 1), got ", p);
}

// The smallest 24-bit value k with k / 2^24 >= p: philox::uniform(s, i) >= p holds iff
// philox::bits(s, i) >> 8 >= keep_threshold(p) (p * 2^24 is exact in double).
inline std::uint32_t keep_threshold(double p) { return static_cast<std::uint32_t>(std::ceil(p * 16777216.0)); }

}  // namespace detail

/// y_i = x_i / (1 - p) if philox::uniform(s, i) >= p, else 0. p in [0, 1).
template <Scalar T, class B>
Tensor<T, B> dropout(const Tensor<T, B>& x, double p, const rng_state& s) {
  return kernels<B>::dropout(x, p, s);
}

/// dx = dy masked and scaled like the forward with the same p and rng_state.
template <Scalar T, class B>
Tensor<T, B> dropout_backward(const Tensor<T, B>& dy, double p, const rng_state& s) {
  return kernels<B>::dropout_backward(dy, p, s);
}

/// y[n, ...] = x[n, ...] / (1 - p) if philox::uniform(s, n) >= p, else 0. p in [0, 1).
template <Scalar T, class B>
Tensor<T, B> drop_path(const Tensor<T, B>& x, double p, const rng_state& s) {
  return kernels<B>::drop_path(x, p, s);
}

/// dx = dy masked and scaled per sample like the forward with the same p and rng_state.
template <Scalar T, class B>
Tensor<T, B> drop_path_backward(const Tensor<T, B>& dy, double p, const rng_state& s) {
  return kernels<B>::drop_path_backward(dy, p, s);
}

}  // namespace rev::ops
