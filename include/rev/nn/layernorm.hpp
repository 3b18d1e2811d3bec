// LayerNorm layers: LayerNorm<D> over the last extent of tokens (PyTorch's nn.LayerNorm(D)) and
// LayerNorm2d<C> over the channels of an NCHW map at each pixel (RevCol's / ConvNeXt's
// "channels_first" LayerNorm). Parameters "weight" (init 1) and
// "bias" (init 0). Each keeps its input for backward.
#pragma once

#include <ratio>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/layernorm.hpp"

namespace rev::nn {

/// A LayerNorm's eps is a std::ratio, not a double: Clang 16 takes no floating-point template
/// arguments. The two values the zoo uses have names.
using eps_1e5 = std::ratio<1, 100'000>;    // PyTorch's nn.LayerNorm default
using eps_1e6 = std::ratio<1, 1'000'000>;  // RevCol's and ConvNeXt's

namespace detail {

template <class R>
concept eps_ratio = requires {
  R::num;
  R::den;
}
&&R::num >= 0 && R::den > 0;

// The parameters and protocol shared by both LayerNorms; Derived supplies check() and the ops.
template <int D, Scalar T, class B>
class layer_norm_base : public layer_types<T, B> {
 public:
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  struct cache {
    tensor_type x;
  };

  param_type weight{Shape{D}}, bias{Shape{D}};

  layer_norm_base() { weight.value.fill(T(1)); }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    f(join_name(prefix, "bias"), bias);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}
};

}  // namespace detail

/// LayerNorm over the last extent D of x [..., D]. Eps defaults to PyTorch's 1e-5.
template <int D, class Eps = eps_1e5, Scalar T = float, class B = cpu>
class LayerNorm : public detail::layer_norm_base<D, T, B> {
  static_assert(D > 0, "rev::nn::LayerNorm: the normalised extent must be positive");
  static_assert(detail::eps_ratio<Eps>,
                "rev::nn::LayerNorm: Eps must be a std::ratio >= 0, e.g. std::ratio<1, 100000>");
  using base = detail::layer_norm_base<D, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = LayerNorm<D, Eps, T2, B2>;
  using typename base::cache;
  using typename base::tensor_type;
  static constexpr int in_channels = D, out_channels = D;
  static constexpr layout in_layout = layout::features, out_layout = layout::features;
  static constexpr double eps = double(Eps::num) / double(Eps::den);

  tensor_type forward(const tensor_type& x, context&) {
    check_input(x);
    return ops::layer_norm(x, this->weight.value, this->bias.value, eps);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type y = forward(x, ctx);
    c.x = x;
    return y;
  }
  tensor_type backward(cache& c, const tensor_type& dy) {
    check_input(dy, "dy");
    return ops::layer_norm_backward(c.x, this->weight.value, eps, dy, &this->weight.grad, &this->bias.grad);
  }

 private:
  static void check_input(const tensor_type& x, const char* what = "input") {
    check<shape_error>(x.rank() >= 1 && x.size(-1) == D, "rev::nn::LayerNorm: ", what, " has extents ", x.shape(),
                       ", expected [..., ", D, "]");
  }
};

/// LayerNorm over the C channels of x [N, C, H, W] at each pixel. Eps defaults to RevCol's 1e-6.
template <int C, class Eps = eps_1e6, Scalar T = float, class B = cpu>
class LayerNorm2d : public detail::layer_norm_base<C, T, B> {
  static_assert(C > 0, "rev::nn::LayerNorm2d: the channel count must be positive");
  static_assert(detail::eps_ratio<Eps>,
                "rev::nn::LayerNorm2d: Eps must be a std::ratio >= 0, e.g. std::ratio<1, 100000>");
  using base = detail::layer_norm_base<C, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = LayerNorm2d<C, Eps, T2, B2>;
  using typename base::cache;
  using typename base::tensor_type;
  static constexpr int in_channels = C, out_channels = C;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr double eps = double(Eps::num) / double(Eps::den);

  tensor_type forward(const tensor_type& x, context&) {
    check_input(x);
    return ops::layer_norm_channels(x, this->weight.value, this->bias.value, eps);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type y = forward(x, ctx);
    c.x = x;
    return y;
  }
  tensor_type backward(cache& c, const tensor_type& dy) {
    check_input(dy, "dy");
    return ops::layer_norm_channels_backward(c.x, this->weight.value, eps, dy, &this->weight.grad, &this->bias.grad);
  }

 private:
  static void check_input(const tensor_type& x, const char* what = "input") {
    check<shape_error>(x.rank() == 4 && x.size(1) == C, "rev::nn::LayerNorm2d: ", what, " has extents ", x.shape(),
                       ", expected [N, ", C, ", H, W]");
  }
};

}  // namespace rev::nn
