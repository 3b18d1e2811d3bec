// The CPU kernels of the activations (rev/ops/activation.hpp): element-wise maps of A::value
// and A::derivative. GELU in float is vectorised through Eigen's array exp, with erf from
// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): the scalar std::erf took a tenth of a Rev-ViT
// training step.
#pragma once

#include <algorithm>
#include <numbers>
#include <type_traits>

#include "rev/core/parallel.hpp"
#include "rev/cpu/eigen.hpp"
#include "rev/cpu/elementwise.hpp"
#include "rev/ops/activation.hpp"

namespace rev::ops::host {

struct activation_kernels {
  template <class A, Scalar T>
  static Tensor<T> activation(const Tensor<T>& x) {
    if constexpr (fast_gelu<A, T>) return gelu<T>(x, nullptr);
    else return elementwise_kernels::map(x, [](T v) { return A::value(v); });
  }
  template <class A, Scalar T>
  static Tensor<T> activation_backward(const Tensor<T>& x, const Tensor<T>& dy) {
    if constexpr (fast_gelu<A, T>) return gelu<T>(x, &dy);
    else return elementwise_kernels::zip(x, dy, [](T v, T g) { return A::derivative(v) * g; });
  }

 private:
  template <class A, class T>
  static constexpr bool fast_gelu = std::conjunction_v<std::is_same<A, act::gelu>, std::is_same<T, float>>;

  // x Phi(x), or with dy its gradient (Phi(x) + x phi(x)) dy, for Phi(x) = (1 + erf(x / sqrt 2)) / 2
  // and phi(x) = exp(-x^2 / 2) / sqrt(2 pi). erf(z) = 1 - t P(t) exp(-z^2) for z >= 0, t = 1 / (1 + p z)
  // (Abramowitz & Stegun 7.1.26), so both share exp(-x^2 / 2); the tail below 0 is taken directly
  // as t P(t) exp(-z^2) / 2, not as a difference.
  // (A template, so that only the programs that run GELU compile it.)
  template <Scalar T>
  static Tensor<T> gelu(const Tensor<T>& x, const Tensor<T>* dy) {
    static_assert(std::is_same_v<T, float>, "the constants are float's");
    Tensor<float> out = Tensor<float>::uninitialized(x.shape());
    constexpr index_t block = 512;
    using array = Eigen::Array<float, Eigen::Dynamic, 1, Eigen::ColMajor, block, 1>;
    constexpr float inv_sqrt2 = static_cast<float>(std::numbers::sqrt2 / 2);
    constexpr float inv_sqrt_2pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    constexpr float p = 0.3275911f, a1 = 0.254829592f, a2 = -0.284496736f, a3 = 1.421413741f, a4 = -1.453152027f,
                    a5 = 1.061405429f;
    parallel_for(x.numel(), elementwise_kernels::grain, [&](index_t begin, index_t end) {
      for (index_t b = begin; b < end; b += block) {  // temporaries on the stack, block by block
        const index_t n = std::min(block, end - b);
        const Eigen::Map<const array> v(x.data() + b, n);
        const array t = 1.0f / (1.0f + p * inv_sqrt2 * v.abs());
        const array gauss = (-0.5f * v.square()).exp();
        const array half_tail = 0.5f * t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))) * gauss;  // Phi(-|x|)
        const array cdf = (v >= 0.0f).select(1.0f - half_tail, half_tail);
        Eigen::Map<array> o(out.data() + b, n);
        if (dy) o = (cdf + v * gauss * inv_sqrt_2pi) * Eigen::Map<const array>(dy->data() + b, n);
        else o = v * cdf;
      }
    });
    return out;
  }
};

}  // namespace rev::ops::host
