// Squeeze-and-excitation (Hu et al. 2018) as in RevBiFPN's MBConv
// (../shared/specs/revbifpn.md §4.3), for x [N, W, H, W']:
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

#include <algorithm>
#include <string>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/rng.hpp"
#include "rev/cpu/activation.hpp"
#include "rev/cpu/moments.hpp"
#include "rev/cpu/pool.hpp"
#include "rev/nn/init.hpp"

namespace rev::nn {

template <int W, int Q, class Inner = ops::act::hardswish, class Gate = ops::act::hardsigmoid, Scalar T = float,
          class B = cpu>
class SqueezeExcite : public layer_types<T, B> {
  static_assert(W > 0 && Q > 0, "rev::nn::SqueezeExcite: the channel counts W and Q must be positive");

 public:
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_channels = W, out_channels = W, squeeze_channels = Q;

  /// The input and the small [N, W] / [N, Q] intermediates.
  struct cache {
    tensor_type x, u, z1, s, z2, g;
  };

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
    const index_t N = x.size(0), HW = x.size(2) * x.size(3);
    if (op_counts* oc = rev::detail::active_op_counts()) {  // the two 1x1 convs with bias on the pooled map
      oc->conv_macs += N * 2 * Q * W;
      oc->conv_bias += N * (Q + W);
    }
    c.x = x;
    c.u = ops::global_avg_pool(x).reshape(Shape{N, W});
    if constexpr (std::same_as<B, cpu>) {
      return forward_host(x, c, N, HW);
    } else {
      // A device: the same steps as ops.
      c.z1 = ops::linear(c.u, w1.value.reshape(Shape{Q, W}), &b1.value);
      c.s = ops::activation<Inner>(c.z1);
      c.z2 = ops::linear(c.s, w2.value.reshape(Shape{W, Q}), &b2.value);
      c.g = ops::activation<Gate>(c.z2);
      return ops::scale_channels(x, c.g);
    }
  }

  /// dx = dy * g + broadcast(du / HW), with dg = sum_{h,w}(dy * x) back through the gate and
  /// the two 1x1 convolutions; the parameter gradients are added to w1, b1, w2, b2.
  tensor_type backward(cache& c, const tensor_type& dy) {
    check_input(dy, "dy");
    expect_shape(dy, c.x.shape(), "rev::nn::SqueezeExcite", "dy");
    const index_t N = dy.size(0), HW = dy.size(2) * dy.size(3);
    if constexpr (std::same_as<B, cpu>) {
      return backward_host(c, dy, N, HW);
    } else {
      // A device: the backward of each forward op.
      auto [dx, dg] = ops::scale_channels_backward(c.x, c.g, dy);  // dy * g, sum_{h,w}(dy * x)
      tensor_type gw1 = w1.grad.reshape(Shape{Q, W}), gw2 = w2.grad.reshape(Shape{W, Q});
      const tensor_type ds = ops::linear_backward(c.s, w2.value.reshape(Shape{W, Q}),
                                                  ops::activation_backward<Gate>(c.z2, dg), &gw2, &b2.grad);
      const tensor_type du = ops::linear_backward(c.u, w1.value.reshape(Shape{Q, W}),
                                                  ops::activation_backward<Inner>(c.z1, ds), &gw1, &b1.grad);
      ops::add_(dx, ops::global_avg_pool_backward(dy.shape(), du.reshape(Shape{N, W, 1, 1})));
      return dx;
    }
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
  tensor_type forward_host(const tensor_type& x, cache& c, index_t N, index_t HW) {
    c.z1 = tensor_type::uninitialized(Shape{N, Q});
    c.s = tensor_type::uninitialized(Shape{N, Q});
    c.z2 = tensor_type::uninitialized(Shape{N, W});
    c.g = tensor_type::uninitialized(Shape{N, W});
    for (index_t n = 0; n < N; ++n) {
      affine(w1.value.data(), b1.value.data(), c.u.data() + n * W, c.z1.data() + n * Q, Q, W);
      for (int q = 0; q < Q; ++q) c.s(n, q) = Inner::value(c.z1(n, q));
      affine(w2.value.data(), b2.value.data(), c.s.data() + n * Q, c.z2.data() + n * W, W, Q);
      for (int k = 0; k < W; ++k) c.g(n, k) = Gate::value(c.z2(n, k));
    }
    tensor_type y = tensor_type::uninitialized(x.shape());
    const T *px = x.data(), *pg = c.g.data();
    T* py = y.data();
    parallel_for(N * W, std::max<index_t>(1, (index_t{1} << 15) / HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        const T g = pg[i];
        for (index_t k = i * HW; k < (i + 1) * HW; ++k) py[k] = px[k] * g;
      }
    });
    return y;
  }

  tensor_type backward_host(cache& c, const tensor_type& dy, index_t N, index_t HW) {
    const T *px = c.x.data(), *pdy = dy.data();
    // dz2 = sum_{h,w}(dy * x) * Gate'(z2), per (n, channel).
    std::vector<double> dz2(static_cast<std::size_t>(N * W));
    parallel_for(N * W, std::max<index_t>(1, (index_t{1} << 15) / HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        double sdy = 0, s = 0;  // sum(dy), sum(dy * x)
        ops::detail::sum_grad(px + i * HW, pdy + i * HW, static_cast<const T*>(nullptr), HW, 0.0, sdy, s);
        dz2[static_cast<std::size_t>(i)] = s * static_cast<double>(Gate::derivative(c.z2.data()[i]));
      }
    });
    // Through conv 2 (z2 = W2 s + b2) and Inner, then conv 1 (z1 = W1 u + b1) to du; the
    // parameter gradients are summed over the batch in double and added once.
    const auto sz = [](index_t v) { return static_cast<std::size_t>(v); };
    std::vector<double> du(sz(N * W), 0.0), dz1(sz(Q)), gw1(sz(Q * W), 0.0), gw2(sz(W * Q), 0.0), gb1(sz(Q), 0.0),
        gb2(sz(W), 0.0);
    for (index_t n = 0; n < N; ++n) {
      const double* g2 = dz2.data() + n * W;
      for (index_t q = 0; q < Q; ++q) {
        double ds = 0;
        for (index_t k = 0; k < W; ++k) {
          ds += g2[k] * static_cast<double>(w2.value.data()[k * Q + q]);
          gw2[sz(k * Q + q)] += g2[k] * static_cast<double>(c.s(n, q));
        }
        dz1[sz(q)] = ds * static_cast<double>(Inner::derivative(c.z1(n, q)));
        gb1[sz(q)] += dz1[sz(q)];
      }
      for (index_t k = 0; k < W; ++k) gb2[sz(k)] += g2[k];
      for (index_t q = 0; q < Q; ++q)
        for (index_t k = 0; k < W; ++k) {
          du[sz(n * W + k)] += dz1[sz(q)] * static_cast<double>(w1.value.data()[q * W + k]);
          gw1[sz(q * W + k)] += dz1[sz(q)] * static_cast<double>(c.u(n, k));
        }
    }
    const auto accumulate = [](Tensor<T, B>& grad, const std::vector<double>& v) {
      for (std::size_t i = 0; i < v.size(); ++i) grad.data()[i] += static_cast<T>(v[i]);
    };
    accumulate(w1.grad, gw1);
    accumulate(b1.grad, gb1);
    accumulate(w2.grad, gw2);
    accumulate(b2.grad, gb2);
    tensor_type dx = tensor_type::uninitialized(dy.shape());
    const T* pg = c.g.data();
    T* pdx = dx.data();
    parallel_for(N * W, std::max<index_t>(1, (index_t{1} << 15) / HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        const T g = pg[i], dm = static_cast<T>(du[static_cast<std::size_t>(i)] / static_cast<double>(HW));
        for (index_t k = i * HW; k < (i + 1) * HW; ++k) pdx[k] = pdy[k] * g + dm;
      }
    });
    return dx;
  }

  static void check_input(const tensor_type& x, const char* what = "input") {
    check<shape_error>(x.rank() == 4 && x.size(1) == W, "rev::nn::SqueezeExcite: ", what, " has extents ", x.shape(),
                       ", expected [N, ", W, ", H, W]");
  }

  // out[r] = bias[r] + sum_k weight[r, k] in[k], rows r < R, columns k < K, in double.
  static void affine(const T* weight, const T* bias, const T* in, T* out, int R, int K) {
    for (int r = 0; r < R; ++r) {
      double s = static_cast<double>(bias[r]);
      for (int k = 0; k < K; ++k) s += static_cast<double>(weight[r * K + k]) * static_cast<double>(in[k]);
      out[r] = static_cast<T>(s);
    }
  }
};

}  // namespace rev::nn
