// Parameter initialisers (PyTorch's torch.nn.init semantics), drawing from a rev::Generator.
#pragma once

#include <cmath>
#include <numbers>
#include <utility>

#include "rev/core/rng.hpp"
#include "rev/core/tensor.hpp"

namespace rev::nn::init {

/// Uniform in [lo, hi).
template <Scalar T>
void uniform(Tensor<T>& t, double lo, double hi, Generator& g = default_generator()) {
  const rng_state s = g.draw(static_cast<std::uint64_t>(t.numel()));
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(lo + (hi - lo) * philox::uniform(s, static_cast<std::uint64_t>(i)));
}

/// Normal with the given mean and standard deviation (Box-Muller on pairs of uniforms).
template <Scalar T>
void normal(Tensor<T>& t, double mean, double std, Generator& g = default_generator()) {
  const index_t n = t.numel();
  const rng_state s = g.draw(static_cast<std::uint64_t>(2 * n));
  for (index_t i = 0; i < n; ++i) {
    const double u1 = 1.0 - philox::uniform(s, static_cast<std::uint64_t>(2 * i));  // (0, 1]
    const double u2 = philox::uniform(s, static_cast<std::uint64_t>(2 * i + 1));
    t.data()[i] = static_cast<T>(mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2));
  }
}

/// fan_in and fan_out of a weight [out, in, k...] (PyTorch's _calculate_fan_in_and_fan_out).
inline std::pair<double, double> fans(const Shape& s) {
  double receptive = 1;
  for (int i = 2; i < s.rank(); ++i) receptive *= static_cast<double>(s[i]);
  const double in = s.rank() > 1 ? static_cast<double>(s[1]) * receptive : static_cast<double>(s[0]);
  return {in, static_cast<double>(s[0]) * receptive};
}

/// Kaiming normal, fan-out mode, ReLU gain: std = sqrt(2 / fan_out).
template <Scalar T>
void kaiming_normal_fan_out(Tensor<T>& w, Generator& g = default_generator()) {
  normal(w, 0.0, std::sqrt(2.0 / fans(w.shape()).second), g);
}

/// PyTorch's default for Conv and Linear weights: kaiming_uniform(a = sqrt(5)), i.e.
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the same bound is PyTorch's default for their biases.
template <Scalar T>
void default_weight(Tensor<T>& w, Generator& g = default_generator()) {
  const double bound = 1.0 / std::sqrt(fans(w.shape()).first);
  uniform(w, -bound, bound, g);
}
template <Scalar T>
void default_bias(Tensor<T>& b, double fan_in, Generator& g = default_generator()) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(fan_in) : 0.0;
  uniform(b, -bound, bound, g);
}

}  // namespace rev::nn::init
