// Activation layers: ReLU, HardSwish, HardSigmoid, GELU, Sigmoid, SiLU.
#pragma once

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/activation.hpp"

namespace rev::nn {

/// An element-wise activation A (one of rev::ops::act) as a layer. Keeps its input for backward.
template <class A, Scalar T = float, class B = cpu>
class Activation : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = Activation<A, T2, B2>;
  using tensor_type = Tensor<T, B>;
  struct cache {
    tensor_type x;
  };

  tensor_type forward(const tensor_type& x, context&) { return ops::activation<A>(x); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.x = x;
    return forward(x, ctx);
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return ops::activation_backward<A>(c.x, dy); }
};

template <Scalar T = float, class B = cpu>
using ReLU = Activation<ops::act::relu, T, B>;
template <Scalar T = float, class B = cpu>
using HardSwish = Activation<ops::act::hardswish, T, B>;
template <Scalar T = float, class B = cpu>
using HardSigmoid = Activation<ops::act::hardsigmoid, T, B>;
template <Scalar T = float, class B = cpu>
using GELU = Activation<ops::act::gelu, T, B>;
template <Scalar T = float, class B = cpu>
using Sigmoid = Activation<ops::act::sigmoid, T, B>;
template <Scalar T = float, class B = cpu>
using SiLU = Activation<ops::act::silu, T, B>;

}  // namespace rev::nn
