// Parameter initialisers (PyTorch's torch.nn.init semantics), drawing from a rev::Generator.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>

#include "rev/core/rng.hpp"
#include "rev/core/tensor.hpp"

namespace rev::nn::init {

namespace detail {
// Runs fill(p) on a host array p of t's elements: t's own on the CPU; on another backend a host
// copy that is then uploaded (the draws are the same on every backend).
template <Scalar T, class B, class F>
void on_host(Tensor<T, B>& t, F&& fill) {
  if constexpr (std::same_as<B, cpu>) {
    fill(t.data());
  } else {
    Tensor<T> h = Tensor<T>::uninitialized(t.shape());
    fill(h.data());
    copy_into(t, h, "rev::nn::init");
  }
}
}  // namespace detail

/// Uniform in [lo, hi).
template <Scalar T, class B>
void uniform(Tensor<T, B>& t, double lo, double hi, Generator& g = default_generator()) {
  const rng_state s = g.draw(static_cast<std::uint64_t>(t.numel()));
  detail::on_host(t, [&](T* p) {
    for (index_t i = 0; i < t.numel(); ++i)
      p[i] = static_cast<T>(lo + (hi - lo) * philox::uniform(s, static_cast<std::uint64_t>(i)));
  });
}

/// Normal with the given mean and standard deviation (Box-Muller on pairs of uniforms).
template <Scalar T, class B>
void normal(Tensor<T, B>& t, double mean, double std, Generator& g = default_generator()) {
  const index_t n = t.numel();
  const rng_state s = g.draw(static_cast<std::uint64_t>(2 * n));
  detail::on_host(t, [&](T* p) {
    for (index_t i = 0; i < n; ++i) {
      const double u1 = 1.0 - philox::uniform(s, static_cast<std::uint64_t>(2 * i));  // (0, 1]
      const double u2 = philox::uniform(s, static_cast<std::uint64_t>(2 * i + 1));
      p[i] = static_cast<T>(mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2));
    }
  });
}

/// Normal with the given mean and standard deviation, redrawn outside mean +- 2 std
/// (tf.truncated_normal, the RevNet initialiser). Element i uses its own run of the stream, so
/// the result does not depend on how often other elements were redrawn.
template <Scalar T, class B>
void trunc_normal(Tensor<T, B>& t, double mean, double std, Generator& g = default_generator()) {
  constexpr std::uint64_t tries = 32;  // P(32 draws all outside 2 std) = 0.0455^32 < 1e-42
  const index_t n = t.numel();
  const rng_state s = g.draw(static_cast<std::uint64_t>(n) * 2 * tries);
  detail::on_host(t, [&](T* p) {
    for (index_t i = 0; i < n; ++i) {
      double z = 0;
      for (std::uint64_t k = 0; k < tries; ++k) {
        const std::uint64_t at = (static_cast<std::uint64_t>(i) * tries + k) * 2;
        const double u1 = 1.0 - philox::uniform(s, at), u2 = philox::uniform(s, at + 1);
        z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
        if (std::abs(z) <= 2) break;
      }
      p[i] = static_cast<T>(mean + std * std::clamp(z, -2.0, 2.0));
    }
  });
}

/// fan_in and fan_out of a weight [out, in, k...] (PyTorch's _calculate_fan_in_and_fan_out).
inline std::pair<double, double> fans(const Shape& s) {
  double receptive = 1;
  for (int i = 2; i < s.rank(); ++i) receptive *= static_cast<double>(s[i]);
  const double in = s.rank() > 1 ? static_cast<double>(s[1]) * receptive : static_cast<double>(s[0]);
  return {in, static_cast<double>(s[0]) * receptive};
}

/// Kaiming normal, fan-out mode, ReLU gain: std = sqrt(2 / fan_out).
template <Scalar T, class B>
void kaiming_normal_fan_out(Tensor<T, B>& w, Generator& g = default_generator()) {
  normal(w, 0.0, std::sqrt(2.0 / fans(w.shape()).second), g);
}

/// PyTorch's default for Conv and Linear weights: kaiming_uniform(a = sqrt(5)), i.e.
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the same bound is PyTorch's default for their biases.
template <Scalar T, class B>
void default_weight(Tensor<T, B>& w, Generator& g = default_generator()) {
  const double bound = 1.0 / std::sqrt(fans(w.shape()).first);
  uniform(w, -bound, bound, g);
}
template <Scalar T, class B>
void default_bias(Tensor<T, B>& b, double fan_in, Generator& g = default_generator()) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(fan_in) : 0.0;
  uniform(b, -bound, bound, g);
}

/// Xavier (Glorot) uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (torch.nn.MultiheadAttention's
/// packed input projection).
template <Scalar T, class B>
void xavier_uniform(Tensor<T, B>& w, Generator& g = default_generator()) {
  const auto [in, out] = fans(w.shape());
  const double bound = std::sqrt(6.0 / (in + out));
  uniform(w, -bound, bound, g);
}

}  // namespace rev::nn::init
