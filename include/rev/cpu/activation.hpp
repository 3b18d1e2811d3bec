// The CPU kernels of the activations (rev/ops/activation.hpp): element-wise maps of A::value
// and A::derivative.
#pragma once

#include "rev/cpu/elementwise.hpp"
#include "rev/ops/activation.hpp"

namespace rev::ops::host {

struct activation_kernels {
  template <class A, Scalar T>
  static Tensor<T> activation(const Tensor<T>& x) {
    return elementwise_kernels::map(x, [](T v) { return A::value(v); });
  }
  template <class A, Scalar T>
  static Tensor<T> activation_backward(const Tensor<T>& x, const Tensor<T>& dy) {
    return elementwise_kernels::zip(x, dy, [](T v, T g) { return A::derivative(v) * g; });
  }
};

}  // namespace rev::ops::host
