// Activation functions and their derivatives, with PyTorch's definitions and derivative
// conventions at the kinks (hard-swish and hard-sigmoid as in MobileNetV3 and RevBiFPN). The functors of act:: are the
// formulas every backend evaluates (host and device).
#pragma once

#include <cmath>
#include <numbers>

#include "rev/core/device.hpp"
#include "rev/core/host_device.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

/// Each activation: value(x) and derivative(x), as used by forward and backward.
namespace act {

struct relu {
  static constexpr const char* name = "relu";
  template <class T>
  REV_HOST_DEVICE static T value(T x) {
    return x > T(0) ? x : T(0);
  }
  template <class T>
  REV_HOST_DEVICE static T derivative(T x) {
    return x > T(0) ? T(1) : T(0);
  }  // 0 at x = 0, as PyTorch
};

// min(max(v, 0), 6), NaN passing through as with std::min / std::max (which device code cannot call).
template <class T>
REV_HOST_DEVICE T clamp_0_6(T v) {
  return v < T(0) ? T(0) : (v > T(6) ? T(6) : v);
}

// hard-swish(x) = x * min(max(x + 3, 0), 6) / 6.
struct hardswish {
  static constexpr const char* name = "hardswish";
  template <class T>
  REV_HOST_DEVICE static T value(T x) {
    return x * clamp_0_6(x + T(3)) / T(6);
  }
  // PyTorch: 0 for x < -3, x/3 + 1/2 on [-3, 3] (both ends included), 1 for x > 3.
  template <class T>
  REV_HOST_DEVICE static T derivative(T x) {
    return x < T(-3) ? T(0) : (x <= T(3) ? x / T(3) + T(0.5) : T(1));
  }
};

// hard-sigmoid(x) = min(max(x + 3, 0), 6) / 6.
struct hardsigmoid {
  static constexpr const char* name = "hardsigmoid";
  template <class T>
  REV_HOST_DEVICE static T value(T x) {
    return clamp_0_6(x + T(3)) / T(6);
  }
  // PyTorch: 1/6 strictly inside (-3, 3), 0 elsewhere (also at +-3).
  template <class T>
  REV_HOST_DEVICE static T derivative(T x) {
    return (x > T(-3) && x < T(3)) ? T(1) / T(6) : T(0);
  }
};

// GELU with the exact erf: x * Phi(x).
struct gelu {
  static constexpr const char* name = "gelu";
  template <class T>
  REV_HOST_DEVICE static T value(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
  }
  template <class T>
  REV_HOST_DEVICE static T derivative(T x) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    return cdf + x * pdf;
  }
};

struct sigmoid {
  static constexpr const char* name = "sigmoid";
  template <class T>
  REV_HOST_DEVICE static T value(T x) {
    return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
  }
  template <class T>
  REV_HOST_DEVICE static T derivative(T x) {
    const T s = value(x);
    return s * (T(1) - s);
  }
};

// SiLU (swish): x * sigmoid(x).
struct silu {
  static constexpr const char* name = "silu";
  template <class T>
  REV_HOST_DEVICE static T value(T x) {
    return x * sigmoid::value(x);
  }
  template <class T>
  REV_HOST_DEVICE static T derivative(T x) {
    const T s = sigmoid::value(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

}  // namespace act

/// y = A(x), A one of rev::ops::act.
template <class A, Scalar T, class B>
Tensor<T, B> activation(const Tensor<T, B>& x) {
  return kernels<B>::template activation<A>(x);
}

/// dx = A'(x) * dy
template <class A, Scalar T, class B>
Tensor<T, B> activation_backward(const Tensor<T, B>& x, const Tensor<T, B>& dy) {
  expect_shape(dy, x.shape(), "rev::ops::activation_backward", "second operand");
  return kernels<B>::template activation_backward<A>(x, dy);
}

template <Scalar T, class B>
Tensor<T, B> relu(const Tensor<T, B>& x) {
  return activation<act::relu>(x);
}
template <Scalar T, class B>
Tensor<T, B> hardswish(const Tensor<T, B>& x) {
  return activation<act::hardswish>(x);
}
template <Scalar T, class B>
Tensor<T, B> hardsigmoid(const Tensor<T, B>& x) {
  return activation<act::hardsigmoid>(x);
}
template <Scalar T, class B>
Tensor<T, B> gelu(const Tensor<T, B>& x) {
  return activation<act::gelu>(x);
}
template <Scalar T, class B>
Tensor<T, B> sigmoid(const Tensor<T, B>& x) {
  return activation<act::sigmoid>(x);
}
template <Scalar T, class B>
Tensor<T, B> silu(const Tensor<T, B>& x) {
  return activation<act::silu>(x);
}

}  // namespace rev::ops
