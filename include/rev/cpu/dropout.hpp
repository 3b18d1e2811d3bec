// The CPU kernels of rev/ops/dropout.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/rng.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/dropout.hpp"

namespace rev::ops::detail {

inline constexpr index_t dropout_grain = 1 << 14;

// Calls f(i, kept_i) for i in [begin, end), kept_i = (philox::uniform(s, i) >= p), evaluating
// each Philox block (4 numbers) once.
template <class F>
void for_each_keep(const rng_state& s, double p, index_t begin, index_t end, F&& f) {
  const std::uint32_t threshold = keep_threshold(p);
  for (index_t i = begin; i < end;) {
    const std::uint64_t n = s.offset + static_cast<std::uint64_t>(i);
    const auto block = philox::block(s.seed, n >> 2);
    if ((n & 3) == 0 && end - i >= 4) {
      for (std::size_t lane = 0; lane < 4; ++lane) f(i + static_cast<index_t>(lane), (block[lane] >> 8) >= threshold);
      i += 4;
    } else {
      for (auto lane = static_cast<std::size_t>(n & 3); lane < 4 && i < end; ++lane, ++i)
        f(i, (block[lane] >> 8) >= threshold);
    }
  }
}

template <Scalar T>
Tensor<T> apply_dropout(const Tensor<T>& x, double p, const rng_state& s, const char* who) {
  check_drop_probability(p, who);
  Tensor<T> y = Tensor<T>::uninitialized(x.shape());
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  const T* px = x.data();
  T* py = y.data();
  parallel_for(x.numel(), dropout_grain, [&](index_t b, index_t e) {
    for_each_keep(s, p, b, e, [&](index_t i, bool kept) { py[i] = kept ? px[i] * scale : T(0); });
  });
  return y;
}

template <Scalar T>
Tensor<T> apply_drop_path(const Tensor<T>& x, double p, const rng_state& s, const char* who) {
  check_drop_probability(p, who);
  check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected [N, ...]");
  Tensor<T> y = Tensor<T>::uninitialized(x.shape());
  const index_t N = x.size(0), per_sample = N > 0 ? x.numel() / N : 0;
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  const T* px = x.data();
  T* py = y.data();
  std::vector<char> keep(static_cast<std::size_t>(N));
  for_each_keep(s, p, 0, N, [&](index_t n, bool kept) { keep[static_cast<std::size_t>(n)] = kept; });
  parallel_for(x.numel(), dropout_grain, [&](index_t b, index_t e) {
    for (index_t i = b; i < e;) {
      const index_t n = i / per_sample, stop = std::min(e, (n + 1) * per_sample);
      if (keep[static_cast<std::size_t>(n)]) {
        for (; i < stop; ++i) py[i] = px[i] * scale;
      } else {
        std::fill(py + i, py + stop, T(0));
        i = stop;
      }
    }
  });
  return y;
}

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct dropout_kernels {
  template <Scalar T>
  static Tensor<T> dropout(const Tensor<T>& x, double p, const rng_state& s) {
    return detail::apply_dropout(x, p, s, "rev::ops::dropout");
  }

  template <Scalar T>
  static Tensor<T> dropout_backward(const Tensor<T>& dy, double p, const rng_state& s) {
    return detail::apply_dropout(dy, p, s, "rev::ops::dropout_backward");
  }

  template <Scalar T>
  static Tensor<T> drop_path(const Tensor<T>& x, double p, const rng_state& s) {
    return detail::apply_drop_path(x, p, s, "rev::ops::drop_path");
  }

  template <Scalar T>
  static Tensor<T> drop_path_backward(const Tensor<T>& dy, double p, const rng_state& s) {
    return detail::apply_drop_path(dy, p, s, "rev::ops::drop_path_backward");
  }
};

}  // namespace rev::ops::host
