// Linear: a fully connected layer over the last extent (PyTorch's nn.Linear; parameters
// "weight" [Out, In] and, with Bias, "bias" [Out]); PointwiseLinear: the same layer over the
// channels of a map at each pixel (ConvNeXt's pwconv, an nn.Linear on the channels-last map).
#pragma once

#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/ops/conv2d.hpp"
#include "rev/ops/linear.hpp"

namespace rev::nn {

template <int In, int Out, bool Bias = true, Scalar T = float, class B = cpu>
class Linear : public layer_types<T, B> {
  static_assert(In >= 1 && Out >= 1, "rev::nn::Linear<In,Out>: In and Out must be at least 1");

 public:
  template <Scalar T2, class B2>
  using rebind = Linear<In, Out, Bias, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_features = In, out_features = Out;
  static constexpr layout in_layout = layout::features, out_layout = layout::features;

  struct cache {
    tensor_type x;
  };

  param_type weight;  // [Out, In]
  param_type bias;    // [Out] with Bias, else empty

  /// PyTorch's default initialisation (nn::init::default_weight / default_bias), drawn from g.
  explicit Linear(Generator& g = default_generator()) : weight({Out, In}) {
    init::default_weight(weight.value, g);
    if constexpr (Bias) {
      bias = param_type({Out});
      init::default_bias(bias.value, In, g);
    }
  }

  /// "rev::nn::Linear<In,Out>", the prefix of this layer's error messages.
  static std::string name() { return "rev::nn::Linear<" + std::to_string(In) + "," + std::to_string(Out) + ">"; }

  /// x [..., In] -> [..., Out]
  tensor_type forward(const tensor_type& x, context&) {
    check<shape_error>(x.rank() >= 1 && x.size(-1) == In, name(), ": input has extents ", x.shape(),
                       ", expected [..., ", In, "]");
    return ops::linear(x, weight.value, Bias ? &bias.value : nullptr);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.x = x;
    return forward(x, ctx);
  }
  /// Returns dL/dx and adds dL/dweight (and dL/dbias) to the parameters' gradients.
  tensor_type backward(cache& c, const tensor_type& dy) {
    check<shape_error>(dy.rank() >= 1 && dy.size(-1) == Out, name(), ": output gradient has extents ", dy.shape(),
                       ", expected [..., ", Out, "]");
    return ops::linear_backward(c.x, weight.value, dy, &weight.grad, Bias ? &bias.grad : nullptr);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    if constexpr (Bias) f(join_name(prefix, "bias"), bias);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}
};

/// y[n, :, h, w] = W x[n, :, h, w] + b on a map [N, In, H, W]: ConvNeXt's pointwise layers
/// (pwconv1, pwconv2), which PyTorch runs as nn.Linear on the channels-last permutation. The
/// weight keeps nn.Linear's extents [Out, In]; it runs as a 1x1 convolution on a view of it.
template <int In, int Out, bool Bias = true, Scalar T = float, class B = cpu>
class PointwiseLinear : public layer_types<T, B> {
  static_assert(In >= 1 && Out >= 1, "rev::nn::PointwiseLinear<In,Out>: In and Out must be at least 1");

 public:
  template <Scalar T2, class B2>
  using rebind = PointwiseLinear<In, Out, Bias, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_channels = In, out_channels = Out;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;

  struct cache {
    tensor_type x;
  };

  param_type weight;  // [Out, In]
  param_type bias;    // [Out] with Bias, else empty

  /// nn.Linear's default initialisation, drawn from g.
  explicit PointwiseLinear(Generator& g = default_generator()) : weight({Out, In}) {
    init::default_weight(weight.value, g);
    if constexpr (Bias) {
      bias = param_type({Out});
      init::default_bias(bias.value, In, g);
    }
  }

  static std::string name() {
    return "rev::nn::PointwiseLinear<" + std::to_string(In) + "," + std::to_string(Out) + ">";
  }

  /// x [N, In, H, W] -> [N, Out, H, W]
  tensor_type forward(const tensor_type& x, context&) {
    check<shape_error>(x.rank() == 4 && x.size(1) == In, name(), ": input has extents ", x.shape(), ", expected [N, ",
                       In, ", H, W]");
    return ops::conv2d(x, kernel(weight.value), Bias ? &bias.value : nullptr, ops::conv2d_params{});
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.x = x;
    return forward(x, ctx);
  }
  /// Returns dL/dx and adds dL/dweight (and dL/dbias) to the parameters' gradients.
  tensor_type backward(cache& c, const tensor_type& dy) {
    check<shape_error>(dy.rank() == 4 && dy.size(1) == Out, name(), ": output gradient has extents ", dy.shape(),
                       ", expected [N, ", Out, ", H, W]");
    tensor_type dw = kernel(weight.grad);  // a view: the convolution adds into weight.grad
    return ops::conv2d_backward(c.x, kernel(weight.value), dy, ops::conv2d_params{}, &dw, Bias ? &bias.grad : nullptr);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    if constexpr (Bias) f(join_name(prefix, "bias"), bias);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  static tensor_type kernel(const tensor_type& w) { return w.reshape({Out, In, 1, 1}); }
};

}  // namespace rev::nn
