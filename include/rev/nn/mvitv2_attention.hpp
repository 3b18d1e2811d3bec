// MViTv2's pooling attention (Li et al., "MViTv2: Improved Multiscale Vision Transformers", CVPR
// 2022, Sec. 4.1; the detectron2 MultiScaleAttention minREV's Rev-MViT wraps, spec revvit.md
// §4.2), on tokens x [B, N, Dim] of a square s x s grid:
//
//   q, k, v = split(x W_qkv^T + b_qkv)                 one packed projection, [q | k | v] x heads x d
//   P(t)    = LayerNorm_d,1e-5(depthwise conv_3x3,stride(t))   per head, always (also at stride 1)
//   S       = P(q) P(k)^T / sqrt(d) + rel(P(q))        rel: decomposed relative positions (ops/rel_pos.hpp)
//   z       = softmax(S) P(v) + P(q)                   the residual pooling connection (eq. (4))
//   out     = proj(concat_h z_h)
//
// With Window > 0 the attention runs inside windows (ops/windows.hpp): the pooled q in windows of
// Window / QStride, k and v in windows of Window / KVStride, zero-padded (padded keys take part in
// the softmax, as in the reference), so both grids must give the same number of windows. The
// relative-position tables have Table rows (2 * the grid side the model was built for, minus 1)
// and are resampled when the attended grids need another length. Keys: "qkv", "proj" (Linear),
// "pool_q", "pool_k", "pool_v" ([d, 1, 3, 3]), "norm_q", "norm_k", "norm_v", "rel_pos_h",
// "rel_pos_w" ([Table, d]).
#pragma once

#include <array>
#include <cmath>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/pooling_attention.hpp"
#include "rev/ops/attention.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"
#include "rev/ops/linear.hpp"
#include "rev/ops/rel_pos.hpp"
#include "rev/ops/windows.hpp"

namespace rev::nn {

template <int Dim, int Heads, int QStride, int KVStride, int Window, int Table, Scalar T = float, class B = cpu>
class MViTv2Attention : public layer_types<T, B> {
  static_assert(Dim >= 1 && Heads >= 1 && Dim % Heads == 0,
                "rev::nn::MViTv2Attention<Dim,Heads,...>: Dim must be a positive multiple of Heads");
  static_assert(QStride >= 1 && KVStride >= 1, "rev::nn::MViTv2Attention: the pooling strides must be positive");
  static_assert(Window == 0 || (Window / QStride >= 1 && Window / KVStride >= 1),
                "rev::nn::MViTv2Attention: the window must be at least the pooling strides");
  static_assert(Table >= 1, "rev::nn::MViTv2Attention: the relative-position tables need at least one row");

 public:
  template <Scalar T2, class B2>
  using rebind = MViTv2Attention<Dim, Heads, QStride, KVStride, Window, Table, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_features = Dim, out_features = Dim, heads = Heads, head_dim = Dim / Heads;
  static constexpr int kernel = 3;
  static constexpr double eps = 1e-5;
  static constexpr std::array<int, 3> stride{QStride, KVStride, KVStride};  // of q, k, v
  static constexpr std::array<int, 3> window{Window / QStride, Window / KVStride, Window / KVStride};
  static constexpr layout in_layout = layout::tokens, out_layout = layout::tokens;

  struct cache {
    tensor_type x, merged;
    std::array<tensor_type, 3> att;  // q, k, v as attended: pooled, normed, in windows
    std::array<mhpa::pool_cache<T, B>, 3> pool;
    tensor_type rh, rw;  // the relative positions looked up
    ops::attention_cache<T, B> attention;
  };

  param_type qkv_weight{Shape{3 * Dim, Dim}}, qkv_bias{Shape{3 * Dim}};
  param_type proj_weight{Shape{Dim, Dim}}, proj_bias{Shape{Dim}};
  std::array<param_type, 3> pool_weight{param_type(Shape{head_dim, 1, kernel, kernel}),
                                        param_type(Shape{head_dim, 1, kernel, kernel}),
                                        param_type(Shape{head_dim, 1, kernel, kernel})};
  std::array<param_type, 3> norm_weight{param_type(Shape{head_dim}), param_type(Shape{head_dim}),
                                        param_type(Shape{head_dim})};
  std::array<param_type, 3> norm_bias{param_type(Shape{head_dim}), param_type(Shape{head_dim}),
                                      param_type(Shape{head_dim})};
  param_type rel_pos_h{Shape{Table, head_dim}}, rel_pos_w{Shape{Table, head_dim}};

  /// PyTorch's defaults: Linear and Conv weights and biases U(-1/sqrt(fan_in), ..), norms 1 and 0,
  /// relative positions 0 (rel_pos_zero_init).
  explicit MViTv2Attention(Generator& g = default_generator()) {
    init::default_weight(qkv_weight.value, g);
    init::default_bias(qkv_bias.value, Dim, g);
    init::default_weight(proj_weight.value, g);
    init::default_bias(proj_bias.value, Dim, g);
    for (std::size_t i = 0; i < 3; ++i) {
      init::default_weight(pool_weight[i].value, g);
      norm_weight[i].value.fill(T(1));
    }
  }

  static std::string name() {
    return "rev::nn::MViTv2Attention<" + std::to_string(Dim) + "," + std::to_string(Heads) + "," +
           std::to_string(QStride) + "," + std::to_string(KVStride) + "," + std::to_string(Window) + "," +
           std::to_string(Table) + ">";
  }

  tensor_type forward(const tensor_type& x, context&) {
    cache c;
    return run(x, c, false);
  }
  tensor_type forward(const tensor_type& x, context&, cache& c) { return run(x, c, true); }

  /// Returns dL/dx; adds the gradients of every parameter.
  tensor_type backward(cache& c, const tensor_type& dy) {
    const index_t sq = c.pool[0].side_out;
    const tensor_type dz = mhpa::split_heads(
        ops::linear_backward(c.merged, proj_weight.value, dy, &proj_weight.grad, &proj_bias.grad), sq, Heads);
    auto g = ops::attention_with_bias_backward(c.att[0], c.att[1], c.att[2], 1, c.attention, to_windows(0, c, dz));
    const auto r = ops::rel_pos_bias_backward(c.att[0], c.rh, c.rw,
                                              g.dbias.reshape({g.dbias.size(0), g.dbias.size(2), g.dbias.size(3)}));
    ops::add_(g.dq, r.dq);
    ops::add_(rel_pos_h.grad, ops::rel_pos_lookup_backward(r.drh, Table));
    ops::add_(rel_pos_w.grad, ops::rel_pos_lookup_backward(r.drw, Table));
    std::array<tensor_type, 3> dh{from_windows(0, c, g.dq), from_windows(1, c, g.dk), from_windows(2, c, g.dv)};
    ops::add_(dh[0], dz);  // the residual pooling connection
    std::array<tensor_type, 3> dparts;
    const index_t rows = c.x.size(0) * c.x.size(1);
    for (std::size_t i = 0; i < 3; ++i)
      dparts[i] = mhpa::pool_backward(c.pool[i], pool_weight[i].value, kernel, stride[i], norm_weight[i].value, eps,
                                      dh[i], pool_weight[i].grad, norm_weight[i].grad, norm_bias[i].grad)
                      .reshape({rows, Dim});
    const tensor_type dqkv = ops::concat_channels(dparts).reshape({c.x.size(0), c.x.size(1), 3 * Dim});
    return ops::linear_backward(c.x, qkv_weight.value, dqkv, &qkv_weight.grad, &qkv_bias.grad);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    constexpr const char* names[] = {"q", "k", "v"};
    f(join_name(prefix, "rel_pos_h"), rel_pos_h);
    f(join_name(prefix, "rel_pos_w"), rel_pos_w);
    f(join_name(prefix, "qkv.weight"), qkv_weight);
    f(join_name(prefix, "qkv.bias"), qkv_bias);
    f(join_name(prefix, "proj.weight"), proj_weight);
    f(join_name(prefix, "proj.bias"), proj_bias);
    for (std::size_t i = 0; i < 3; ++i) {
      f(join_name(prefix, std::string("pool_") + names[i] + ".weight"), pool_weight[i]);
      f(join_name(prefix, std::string("norm_") + names[i] + ".weight"), norm_weight[i]);
      f(join_name(prefix, std::string("norm_") + names[i] + ".bias"), norm_bias[i]);
    }
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  // The attended form of tensor i [B * Heads, s*s, d]: its windows, or itself.
  static tensor_type to_windows(std::size_t i, const cache& c, const tensor_type& t) {
    if constexpr (Window == 0) return t;
    else return ops::window_partition(t, c.pool[i].side_out, c.pool[i].side_out, window[i]);
  }
  static tensor_type from_windows(std::size_t i, const cache& c, const tensor_type& t) {
    if constexpr (Window == 0) return t;
    else return ops::window_unpartition(t, c.pool[i].side_out, c.pool[i].side_out, window[i]);
  }
  // The side of the grid attended over: the window, or the pooled grid.
  static index_t attended_side(std::size_t i, const cache& c) { return Window == 0 ? c.pool[i].side_out : window[i]; }

  tensor_type run(const tensor_type& x, cache& c, bool keep) {
    const index_t side = mhpa::grid_side(x, Dim, name()), batch = x.size(0);
    const auto parts =
        ops::split_channels(ops::linear(x, qkv_weight.value, &qkv_bias.value).reshape({x.size(0) * x.size(1), 3 * Dim}),
                            {index_t{Dim}, index_t{Dim}, index_t{Dim}});
    std::array<tensor_type, 3> h;
    for (std::size_t i = 0; i < 3; ++i)
      h[i] = mhpa::pool(parts[i].reshape({batch, x.size(1), Dim}), side, Heads, pool_weight[i].value, kernel, stride[i],
                        norm_weight[i].value, norm_bias[i].value, eps, c.pool[i], keep);
    if constexpr (Window > 0) {
      const auto count = [&](std::size_t i) {
        const index_t n = (c.pool[i].side_out + window[i] - 1) / window[i];
        return n * n;
      };
      check<shape_error>(count(0) == count(1), name(), ": on a ", side, " x ", side, " grid the queries (",
                         c.pool[0].side_out, " x ", c.pool[0].side_out, " in windows of ", window[0], ") give ",
                         count(0), " windows but the keys (", c.pool[1].side_out, " x ", c.pool[1].side_out,
                         " in windows of ", window[1], ") give ", count(1));
    }
    std::array<tensor_type, 3> att{to_windows(0, c, h[0]), to_windows(1, c, h[1]), to_windows(2, c, h[2])};
    const index_t aq = attended_side(0, c), ak = attended_side(1, c);
    tensor_type rh = ops::rel_pos_lookup(rel_pos_h.value, aq, ak), rw = ops::rel_pos_lookup(rel_pos_w.value, aq, ak);
    const tensor_type bias = ops::rel_pos_bias(att[0], rh, rw);
    tensor_type z = from_windows(
        0, c,
        ops::attention_with_bias(att[0], att[1], att[2], 1, bias.reshape({bias.size(0), 1, bias.size(1), bias.size(2)}),
                                 keep ? &c.attention : nullptr));  // scale 1/sqrt(d)
    ops::add_(z, h[0]);                                            // the residual pooling connection
    tensor_type merged = mhpa::merge_heads(z, batch, c.pool[0].side_out);
    tensor_type y = ops::linear(merged, proj_weight.value, &proj_bias.value);
    if (keep) {
      c.x = x;
      c.merged = std::move(merged);
      c.att = std::move(att);
      c.rh = std::move(rh);
      c.rw = std::move(rw);
    }
    return y;
  }
};

}  // namespace rev::nn
