// The CPU kernels of the activations (rev/ops/activation.hpp): element-wise maps of A::value
// and A::derivative. GELU in float runs on Eigen's vectorised erf and exp where Eigen's
// SpecialFunctions module is installed (cpu/eigen.hpp; its rational erf is within a few float
// ulps of std::erf): the scalar erf took a tenth of a Rev-ViT training step.
#pragma once

#include <algorithm>
#include <concepts>
#include <numbers>

#include "rev/core/parallel.hpp"
#include "rev/cpu/eigen.hpp"
#include "rev/cpu/elementwise.hpp"
#include "rev/ops/activation.hpp"

namespace rev::ops::host {

struct activation_kernels {
  template <class A, Scalar T>
  static Tensor<T> activation(const Tensor<T>& x) {
    if constexpr (fast_gelu<A, T>) return gelu(x, nullptr);
    else return elementwise_kernels::map(x, [](T v) { return A::value(v); });
  }
  template <class A, Scalar T>
  static Tensor<T> activation_backward(const Tensor<T>& x, const Tensor<T>& dy) {
    if constexpr (fast_gelu<A, T>) return gelu(x, &dy);
    else return elementwise_kernels::zip(x, dy, [](T v, T g) { return A::derivative(v) * g; });
  }

 private:
  template <class A, class T>
  static constexpr bool fast_gelu =
      (REV_EIGEN_SPECIAL_FUNCTIONS != 0) && std::same_as<A, act::gelu>&& std::same_as<T, float>;

#if REV_EIGEN_SPECIAL_FUNCTIONS
  // x Phi(x), or with dy its gradient (Phi(x) + x phi(x)) dy, Phi(x) = (1 + erf(x / sqrt 2)) / 2.
  static Tensor<float> gelu(const Tensor<float>& x, const Tensor<float>* dy) {
    Tensor<float> out = Tensor<float>::uninitialized(x.shape());
    using array = Eigen::Array<float, Eigen::Dynamic, 1>;
    constexpr float inv_sqrt2 = static_cast<float>(std::numbers::sqrt2 / 2);
    constexpr float inv_sqrt_2pi = static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    parallel_for(x.numel(), elementwise_kernels::grain, [&](index_t b, index_t e) {
      const Eigen::Map<const array> v(x.data() + b, e - b);
      Eigen::Map<array> o(out.data() + b, e - b);
      if (!dy) {
        o = 0.5f * v * (1.0f + (v * inv_sqrt2).erf());
        return;
      }
      const Eigen::Map<const array> g(dy->data() + b, e - b);
      o = (0.5f * (1.0f + (v * inv_sqrt2).erf()) + v * (-0.5f * v.square()).exp() * inv_sqrt_2pi) * g;
    });
    return out;
  }
#endif
};

}  // namespace rev::ops::host
