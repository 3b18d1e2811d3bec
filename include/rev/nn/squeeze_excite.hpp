// Squeeze-and-excitation (Hu et al. 2018) as in RevBiFPN's MBConv, for x [N, W, H, W']:
//
//   u = mean_{h,w}(x)                 [N, W]
//   z1 = W1 u + b1,  s = Inner(z1)    [N, Q]   (1x1 conv W -> Q)
//   z2 = W2 s + b2,  g = Gate(z2)     [N, W]   (1x1 conv Q -> W)
//   y = x * g                         (per-channel broadcast)
//
// Parameter names follow the official nn.Sequential(pool, conv, act, conv, gate):
// "se.1.weight" [Q, W, 1, 1], "se.1.bias" [Q], "se.3.weight" [W, Q, 1, 1], "se.3.bias" [W].
// The 1x1 convolutions act on [N, W, 1, 1] and are plain matrix-vector products.
#pragma once

#include <string>

#include "rev/core/layer.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/rng.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/ops/activation.hpp"
#include "rev/ops/squeeze_excite.hpp"

namespace rev::nn {

template <int W, int Q, class Inner = ops::act::hardswish, class Gate = ops::act::hardsigmoid, Scalar T = float,
          class B = cpu>
class SqueezeExcite : public layer_types<T, B> {
  static_assert(W > 0 && Q > 0, "rev::nn::SqueezeExcite: the channel counts W and Q must be positive");

 public:
  template <Scalar T2, class B2>
  using rebind = SqueezeExcite<W, Q, Inner, Gate, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_channels = W, out_channels = W, squeeze_channels = Q;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;

  /// The input and the small [N, W] / [N, Q] intermediates.
  using cache = ops::squeeze_excite_cache<T, B>;

  param_type w1{Shape{Q, W, 1, 1}}, b1{Shape{Q}}, w2{Shape{W, Q, 1, 1}}, b2{Shape{W}};

  /// Weights Kaiming normal (fan-out), biases zero.
  explicit SqueezeExcite(Generator& gen = default_generator()) {
    init::kaiming_normal_fan_out(w1.value, gen);
    init::kaiming_normal_fan_out(w2.value, gen);
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    cache c;
    return forward(x, ctx, c);
  }

  tensor_type forward(const tensor_type& x, context&, cache& c) {
    check_input(x);
    if (op_counts* oc = rev::detail::active_op_counts()) {  // the two 1x1 convs with bias on the pooled map
      oc->conv_macs += x.size(0) * 2 * Q * W;
      oc->conv_bias += x.size(0) * (Q + W);
    }
    return ops::squeeze_excite<Inner, Gate>(x, w1.value, b1.value, w2.value, b2.value, c);
  }

  /// The parameter gradients are added to w1, b1, w2, b2 (rev::ops::squeeze_excite_backward).
  tensor_type backward(cache& c, const tensor_type& dy) {
    check_input(dy, "dy");
    expect_shape(dy, c.x.shape(), "rev::nn::SqueezeExcite", "dy");
    return ops::squeeze_excite_backward<Inner, Gate>(c, w1.value, b1.value, w2.value, b2.value, dy,
                                                     {w1.grad, b1.grad, w2.grad, b2.grad});
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "se.1.weight"), w1);
    f(join_name(prefix, "se.1.bias"), b1);
    f(join_name(prefix, "se.3.weight"), w2);
    f(join_name(prefix, "se.3.bias"), b2);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  static void check_input(const tensor_type& x, const char* what = "input") {
    check<shape_error>(x.rank() == 4 && x.size(1) == W, "rev::nn::SqueezeExcite: ", what, " has extents ", x.shape(),
                       ", expected [N, ", W, ", H, W]");
  }
};

}  // namespace rev::nn
