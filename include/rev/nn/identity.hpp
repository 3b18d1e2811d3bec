// nn::Identity: y = x (PyTorch's nn.Identity). A coupling with nothing to keep; RevCol's level 0
// has it as its down path (the stem map enters the level unchanged).
#pragma once

#include "rev/core/layer.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"

namespace rev::nn {

template <Scalar T = float, class B = cpu>
class Identity : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = Identity<T2, B2>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  struct cache {};

  tensor_type forward(const tensor_type& x, context&) const { return x; }
  tensor_type forward(const tensor_type& x, context&, cache&) const { return x; }
  tensor_type backward(cache&, const tensor_type& dy) const { return dy; }
  tensor_type inverse(const tensor_type& y, context&) const { return y; }
  reconstructed<tensor_type> backward_reversible(const tensor_type& y, const tensor_type& dy) const { return {y, dy}; }
};

}  // namespace rev::nn
