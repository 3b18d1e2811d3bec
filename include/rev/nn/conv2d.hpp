// Conv2d: a 2-D convolution layer with static channel counts and options (PyTorch's nn.Conv2d
// with a square kernel; parameters "weight" [Out, In/groups, k, k] and, with bias, "bias" [Out]).
#pragma once

#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/ops/conv2d.hpp"

namespace rev::nn {

/// The static options of a Conv2d. padding = -1 means (kernel - 1) / 2 * dilation ("same" for
/// stride 1 and odd kernels).
struct conv_opts {
  int kernel = 1;
  int stride = 1;
  int padding = -1;
  int dilation = 1;
  int groups = 1;
  bool bias = false;
};

template <int In, int Out, conv_opts O = conv_opts{}, Scalar T = float, class B = cpu>
class Conv2d : public layer_types<T, B> {
  static_assert(In >= 1 && Out >= 1, "rev::nn::Conv2d<In,Out,opts>: In and Out must be at least 1");
  static_assert(O.kernel >= 1, "rev::nn::Conv2d<In,Out,opts>: kernel must be at least 1");
  static_assert(O.stride >= 1, "rev::nn::Conv2d<In,Out,opts>: stride must be at least 1");
  static_assert(O.dilation >= 1, "rev::nn::Conv2d<In,Out,opts>: dilation must be at least 1");
  static_assert(O.padding >= -1,
                "rev::nn::Conv2d<In,Out,opts>: padding must be >= 0, or -1 for (kernel - 1) / 2 * dilation");
  static_assert(O.groups >= 1, "rev::nn::Conv2d<In,Out,opts>: groups must be at least 1");
  static_assert(In % O.groups == 0, "rev::nn::Conv2d<In,Out,opts>: groups must divide In");
  static_assert(Out % O.groups == 0, "rev::nn::Conv2d<In,Out,opts>: groups must divide Out");

 public:
  template <Scalar T2, class B2>
  using rebind = Conv2d<In, Out, O, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_channels = In, out_channels = Out;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr conv_opts opts = O;
  static constexpr int padding = O.padding < 0 ? (O.kernel - 1) / 2 * O.dilation : O.padding;
  static constexpr ops::conv2d_params params{O.stride, O.stride, padding, padding, O.dilation, O.dilation, O.groups};

  struct cache {
    tensor_type x;
  };

  param_type weight;  // [Out, In / groups, kernel, kernel]
  param_type bias;    // [Out] with O.bias, else empty

  /// PyTorch's default initialisation (nn::init::default_weight / default_bias), drawn from g.
  explicit Conv2d(Generator& g = default_generator()) : weight({Out, In / O.groups, O.kernel, O.kernel}) {
    init::default_weight(weight.value, g);
    if constexpr (O.bias) {
      bias = param_type({Out});
      init::default_bias(bias.value, init::fans(weight.shape()).first, g);
    }
  }

  /// "rev::nn::Conv2d<In,Out>", the prefix of this layer's error messages.
  static std::string name() { return "rev::nn::Conv2d<" + std::to_string(In) + "," + std::to_string(Out) + ">"; }

  tensor_type forward(const tensor_type& x, context&) {
    check_input(x);
    return ops::conv2d(x, weight.value, O.bias ? &bias.value : nullptr, params);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.x = x;
    return forward(x, ctx);
  }
  /// Returns dL/dx and adds dL/dweight (and dL/dbias) to the parameters' gradients.
  tensor_type backward(cache& c, const tensor_type& dy) {
    return ops::conv2d_backward(c.x, weight.value, dy, params, &weight.grad, O.bias ? &bias.grad : nullptr);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    if constexpr (O.bias) f(join_name(prefix, "bias"), bias);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  static void check_input(const tensor_type& x) {
    if (x.rank() != 4) expect_rank(x, 4, name().c_str());
    check<shape_error>(x.size(1) == In, name(), ": input has ", x.size(1), " channels, expected ", In, " (input ",
                       x.shape(), ")");
  }
};

}  // namespace rev::nn
