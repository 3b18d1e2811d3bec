// MBConv: RevBiFPN's inverted-bottleneck block (MobileNetV2/V3's, Sandler et al. 2018), without an
// internal residual:
//
//   [1x1 conv In->Mid, BN, hswish]  (only if expand != 1)
//   kxk depthwise conv (stride t), BN, hswish
//   [squeeze-excite Mid -> Q -> Mid]  (only if Q > 0)
//   1x1 conv Mid->Out, BN
//   [drop-path]  (only if drop_path > 0)
//
// Mid = int(In * expand). Q = max(1, int(In * se_ratio)) from the block's INPUT channels, or
// se_channels when given (RevBiFPN's G transforms take Q from another width).
// Parameter names are the official ones: exp_conv.conv, exp_conv.norm, dw_conv.conv,
// dw_conv.norm, se.se.1, se.se.3, project_conv.conv, project_conv.norm.
#pragma once

#include <string>
#include <type_traits>

#include "rev/core/layer.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/squeeze_excite.hpp"

namespace rev::nn {

struct mbconv_opts {
  double expand = 1;     // Mid = int(In * expand)
  int kernel = 3;        // depthwise kernel, padding (kernel - 1) / 2
  int stride = 1;        // depthwise stride
  double se_ratio = 0;   // Q = max(1, int(In * se_ratio)); 0: no squeeze-excite
  int se_channels = -1;  // Q given directly (>= 0 overrides se_ratio; 0: no squeeze-excite)
  double drop_path = 0;  // stochastic depth rate (training only)
};

/// BatchNorm of RevBiFPN: eps 1e-3, momentum 0.1.
inline constexpr bn_opts mbconv_bn{.eps = 1e-3, .momentum = 0.1};

namespace detail {

constexpr int mbconv_mid(int in, double expand) { return static_cast<int>(in * expand); }
constexpr int mbconv_se(int in, const mbconv_opts& o) {
  if (o.se_channels >= 0) return o.se_channels;
  if (o.se_ratio <= 0) return 0;
  const int q = static_cast<int>(in * o.se_ratio);
  return q < 1 ? 1 : q;
}

// Conv, BatchNorm and an optional hard-swish: the official "conv"/"norm" unit.
template <int In, int Out, conv_opts C, bool Act, Scalar T, class B>
struct conv_bn_act {
  using value_type = T;
  using backend = B;
  template <Scalar T2, class B2>
  using rebind = conv_bn_act<In, Out, C, Act, T2, B2>;
  using tensor_type = Tensor<T, B>;
  struct cache {
    typename Conv2d<In, Out, C, T, B>::cache conv;
    typename BatchNorm2d<Out, mbconv_bn, T, B>::cache norm;
    typename HardSwish<T, B>::cache act;
  };

  Conv2d<In, Out, C, T, B> conv;
  BatchNorm2d<Out, mbconv_bn, T, B> norm;
  [[no_unique_address]] HardSwish<T, B> act;

  explicit conv_bn_act(Generator& g = default_generator()) : conv(g) {
    init::kaiming_normal_fan_out(conv.weight.value, g);
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    tensor_type y = norm.forward(conv.forward(x, ctx), ctx);
    if constexpr (Act) return act.forward(y, ctx);
    else return y;
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type y = norm.forward(conv.forward(x, ctx, c.conv), ctx, c.norm);
    if constexpr (Act) return act.forward(y, ctx, c.act);
    else return y;
  }
  tensor_type backward(cache& c, const tensor_type& dy) {
    tensor_type d = dy;
    if constexpr (Act) d = act.backward(c.act, d);
    return conv.backward(c.conv, norm.backward(c.norm, d));
  }
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix) {
    conv.for_each_parameter(f, join_name(prefix, "conv"));
    norm.for_each_parameter(f, join_name(prefix, "norm"));
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix) {
    norm.for_each_buffer(f, join_name(prefix, "norm"));
  }
  template <class V>
  void for_each_child(V&& v) {
    v(conv);
    v(norm);
    v(act);
  }
};

// Stands for an absent optional part.
struct absent {
  struct cache {};
};

}  // namespace detail

template <int In, int Out, mbconv_opts O = mbconv_opts{}, Scalar T = float, class B = cpu>
class MBConv : public layer_types<T, B> {
 public:
  template <Scalar T2, class B2>
  using rebind = MBConv<In, Out, O, T2, B2>;
  static constexpr int in_channels = In, out_channels = Out;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr int mid_channels = detail::mbconv_mid(In, O.expand);
  static constexpr int se_channels = detail::mbconv_se(In, O);
  static constexpr bool expands = O.expand != 1;
  static constexpr bool drops = O.drop_path > 0;
  static_assert(In > 0 && Out > 0 && mid_channels > 0, "rev::nn::MBConv: channel counts must be positive");
  static_assert(O.kernel >= 1 && O.kernel % 2 == 1, "rev::nn::MBConv: the depthwise kernel must be odd");
  static_assert(O.stride >= 1, "rev::nn::MBConv: stride must be at least 1");
  static_assert(se_channels >= 0, "rev::nn::MBConv: se_channels must be >= 0");
  static_assert(O.drop_path >= 0 && O.drop_path < 1, "rev::nn::MBConv: drop_path must be in [0, 1)");
  static constexpr int Mid = mid_channels, Q = se_channels;

  using tensor_type = Tensor<T, B>;
  using exp_type =
      std::conditional_t<expands, detail::conv_bn_act<In, Mid, conv_opts{.kernel = 1}, true, T, B>, detail::absent>;
  using dw_type =
      detail::conv_bn_act<Mid, Mid, conv_opts{.kernel = O.kernel, .stride = O.stride, .groups = Mid}, true, T, B>;
  using se_type =
      std::conditional_t<(Q > 0), SqueezeExcite<Mid, (Q > 0 ? Q : 1), ops::act::hardswish, ops::act::hardsigmoid, T, B>,
                         detail::absent>;
  using project_type = detail::conv_bn_act<Mid, Out, conv_opts{.kernel = 1}, false, T, B>;
  using drop_type = std::conditional_t<drops, DropPath<T, B>, detail::absent>;

  struct cache {
    typename exp_type::cache exp;
    typename dw_type::cache dw;
    typename se_type::cache se;
    typename project_type::cache project;
    typename drop_type::cache drop;
  };

  /// Convolution weights Kaiming normal (fan-out), BN weight 1 / bias 0, SE biases 0 (the official initialisation).
  explicit MBConv(Generator& g = default_generator())
      : exp_conv(make<exp_type>(g)), dw_conv(g), se(make<se_type>(g)), project_conv(g), drop(make_drop()) {}

  tensor_type forward(const tensor_type& x, context& ctx) {
    check_input(x);
    tensor_type v = x;
    if constexpr (expands) v = exp_conv.forward(v, ctx);
    v = dw_conv.forward(v, ctx);
    if constexpr (Q > 0) v = se.forward(v, ctx);
    v = project_conv.forward(v, ctx);
    if constexpr (drops) v = drop.forward(v, ctx);
    return v;
  }

  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    check_input(x);
    tensor_type v = x;
    if constexpr (expands) v = exp_conv.forward(v, ctx, c.exp);
    v = dw_conv.forward(v, ctx, c.dw);
    if constexpr (Q > 0) v = se.forward(v, ctx, c.se);
    v = project_conv.forward(v, ctx, c.project);
    if constexpr (drops) v = drop.forward(v, ctx, c.drop);
    return v;
  }

  tensor_type backward(cache& c, const tensor_type& dy) {
    tensor_type d = dy;
    if constexpr (drops) d = drop.backward(c.drop, d);
    d = project_conv.backward(c.project, d);
    if constexpr (Q > 0) d = se.backward(c.se, d);
    d = dw_conv.backward(c.dw, d);
    if constexpr (expands) d = exp_conv.backward(c.exp, d);
    return d;
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    if constexpr (expands) exp_conv.for_each_parameter(f, join_name(prefix, "exp_conv"));
    dw_conv.for_each_parameter(f, join_name(prefix, "dw_conv"));
    if constexpr (Q > 0) se.for_each_parameter(f, join_name(prefix, "se"));
    project_conv.for_each_parameter(f, join_name(prefix, "project_conv"));
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    if constexpr (expands) exp_conv.for_each_buffer(f, join_name(prefix, "exp_conv"));
    dw_conv.for_each_buffer(f, join_name(prefix, "dw_conv"));
    project_conv.for_each_buffer(f, join_name(prefix, "project_conv"));
  }
  /// Calls v on each part the block has (rev::apply; the DropPath's rate can change).
  template <class V>
  void for_each_child(V&& v) {
    if constexpr (expands) v(exp_conv);
    v(dw_conv);
    if constexpr (Q > 0) v(se);
    v(project_conv);
    if constexpr (drops) v(drop);
  }

  [[no_unique_address]] exp_type exp_conv;
  dw_type dw_conv;
  [[no_unique_address]] se_type se;
  project_type project_conv;
  [[no_unique_address]] drop_type drop;

 private:
  template <class P>
  static P make(Generator& g) {
    if constexpr (std::is_same_v<P, detail::absent>) return {};
    else return P(g);
  }
  static drop_type make_drop() {
    if constexpr (drops) return drop_type(O.drop_path);
    else return {};
  }
  static std::string name() { return "rev::nn::MBConv<" + std::to_string(In) + "," + std::to_string(Out) + ">"; }
  static void check_input(const tensor_type& x) {
    check<shape_error>(x.rank() == 4 && x.size(1) == In, name(), ": input has extents ", x.shape(), ", expected [N, ",
                       In, ", H, W]");
  }
};

}  // namespace rev::nn
