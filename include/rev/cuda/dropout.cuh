// Dropout and drop-path on rev::cuda with the masks of rev/ops/dropout.hpp: the same Philox
// counter-based generator (rev/core/rng.hpp, callable on the device) decides every element or
// sample independently, so a given rng_state gives the CPU's mask exactly, and the kept values
// are the CPU's too (x * scale with the same scale, one rounding).
#pragma once

#include <cstdint>

#include "rev/core/rng.hpp"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/dropout.hpp"

namespace rev::gpu {

namespace detail {

// y_i = x_i * scale if philox::bits(s, i) >> 8 >= threshold, else 0 (the CPU's for_each_keep
// rule). One thread per Philox block: it draws 4 numbers and serves the elements they cover.
template <Scalar T>
Tensor<T, cuda> apply_dropout(const Tensor<T, cuda>& x, double p, const rng_state& s, const char* who) {
  rev::ops::detail::check_drop_probability(p, who);
  Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
  const index_t n = x.numel();
  if (n == 0) return y;
  const std::uint32_t threshold = rev::ops::detail::keep_threshold(p);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  const std::uint64_t first = s.offset >> 2, blocks = ((s.offset + static_cast<std::uint64_t>(n) - 1) >> 2) - first + 1;
  const std::uint64_t seed = s.seed, offset = s.offset;
  const T* px = x.data();
  T* py = y.data();
  for_each(
      static_cast<index_t>(blocks),
      [=] __device__(index_t b) {
        const std::uint64_t counter = first + static_cast<std::uint64_t>(b);
        const auto numbers = philox::block(seed, counter);
        for (unsigned lane = 0; lane < 4; ++lane) {
          // Element i draws number offset + i; lanes before the offset wrap around to i >= n.
          const std::uint64_t i = 4 * counter + lane - offset;
          if (i < static_cast<std::uint64_t>(n)) py[i] = (numbers[lane] >> 8) >= threshold ? px[i] * scale : T(0);
        }
      },
      who);
  return y;
}

// y[n, ...] = x[n, ...] * scale if sample n is kept, else 0: first one flag per sample, then the
// elements.
template <Scalar T>
Tensor<T, cuda> apply_drop_path(const Tensor<T, cuda>& x, double p, const rng_state& s, const char* who) {
  rev::ops::detail::check_drop_probability(p, who);
  rev::check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected [N, ...]");
  Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
  const index_t N = x.size(0);
  if (y.numel() == 0) return y;
  const index_t per_sample = x.numel() / N;
  const std::uint32_t threshold = rev::ops::detail::keep_threshold(p);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  Tensor<T, cuda> keep = Tensor<T, cuda>::uninitialized({N});
  T* pk = keep.data();
  const rng_state st = s;
  for_each(
      N,
      [=] __device__(index_t n) {
        pk[n] = (philox::bits(st, static_cast<std::uint64_t>(n)) >> 8) >= threshold ? T(1) : T(0);
      },
      who);
  const T* px = x.data();
  T* py = y.data();
  for_each(
      y.numel(), [=] __device__(index_t i) { py[i] = pk[i / per_sample] != T(0) ? px[i] * scale : T(0); }, who);
  return y;
}

}  // namespace detail

struct dropout_ops {
  /// y_i = x_i / (1 - p) if philox::uniform(s, i) >= p, else 0. p in [0, 1).
  template <Scalar T>
  static Tensor<T, cuda> dropout(const Tensor<T, cuda>& x, double p, const rng_state& s) {
    return detail::apply_dropout(x, p, s, "rev::ops::dropout");
  }

  /// dx = dy masked and scaled like the forward with the same p and rng_state.
  template <Scalar T>
  static Tensor<T, cuda> dropout_backward(const Tensor<T, cuda>& dy, double p, const rng_state& s) {
    return detail::apply_dropout(dy, p, s, "rev::ops::dropout_backward");
  }

  /// y[n, ...] = x[n, ...] / (1 - p) if philox::uniform(s, n) >= p, else 0. p in [0, 1).
  template <Scalar T>
  static Tensor<T, cuda> drop_path(const Tensor<T, cuda>& x, double p, const rng_state& s) {
    return detail::apply_drop_path(x, p, s, "rev::ops::drop_path");
  }

  /// dx = dy masked and scaled per sample like the forward with the same p and rng_state.
  template <Scalar T>
  static Tensor<T, cuda> drop_path_backward(const Tensor<T, cuda>& dy, double p, const rng_state& s) {
    return detail::apply_drop_path(dy, p, s, "rev::ops::drop_path_backward");
  }
};

}  // namespace rev::gpu
