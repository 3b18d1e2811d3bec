// Multi-head pooling attention (MHPA; Fan et al., "Multiscale Vision Transformers", ICCV 2021,
// Sec. 3.1) as SlowFast's MultiScaleAttention builds it for Rev-MViT (mode "conv", separate
// projections, pooling after them, no class token): on tokens x [B, N, In] of a square s x s grid
//
//   q, k, v = x W_q^T + b_q, x W_k^T + b_k, x W_v^T + b_v        [B, N, Dim], split into heads of d
//   P(t)    = LayerNorm_d(depthwise conv_{k x k, stride}(t))      per head, on its s x s map
//   out     = proj(concat_h softmax(P(q_h) P(k_h)^T / sqrt(d)) P(v_h))
//
// The pooling convolution of q (of k, of v) has d kernels shared by all heads, no bias, padding
// k / 2; QStride = 0 (KVStride = 0) means that tensor is not pooled and not normalised. The pooled
// grid side is ceil(s / stride). Keys: "q", "k", "v", "proj" (Linear), "pool_q", "pool_k",
// "pool_v" ([d, 1, 1, k, k]: SlowFast's Conv3d over one frame), "norm_q", "norm_k", "norm_v"
// (LayerNorm, eps 1e-6).
//
// pool_q(x) is P applied to the input itself, heads merged back: Rev-MViT's stage-transition
// blocks pool their residual with the attention's own Q pooling (SlowFast RES_PATH "conv"),
// PooledResidualAttention below.
#pragma once

#include <array>
#include <cmath>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/ops/attention.hpp"
#include "rev/ops/conv2d.hpp"
#include "rev/ops/elementwise.hpp"
#include "rev/ops/layernorm.hpp"
#include "rev/ops/linear.hpp"
#include "rev/ops/tokens.hpp"

namespace rev::nn {

/// The pooling operator P of MHPA, shared by SlowFast's and MViTv2's attention: per head, a
/// depthwise k x k convolution (padding k / 2, no bias) whose d kernels all heads share, then
/// LayerNorm(d); and the head split and merge of token tensors around it.
namespace mhpa {

/// [B, s*s, Heads * d] of an s x s grid -> the heads' maps [B * Heads, d, s, s].
template <Scalar T, class B>
Tensor<T, B> head_maps(const Tensor<T, B>& t, index_t side, index_t heads) {
  return ops::tokens_to_map(t, side, side).reshape({t.size(0) * heads, t.size(2) / heads, side, side});
}
/// [B, s*s, Heads * d] -> [B * Heads, s*s, d], the heads' tokens.
template <Scalar T, class B>
Tensor<T, B> split_heads(const Tensor<T, B>& t, index_t side, index_t heads) {
  return ops::map_to_tokens(head_maps(t, side, heads));
}
/// [B * Heads, s*s, d] -> [B, s*s, Heads * d].
template <Scalar T, class B>
Tensor<T, B> merge_heads(const Tensor<T, B>& h, index_t batch, index_t side) {
  return ops::map_to_tokens(
      ops::tokens_to_map(h, side, side).reshape({batch, h.numel() / (batch * side * side), side, side}));
}

/// What the backward of one P needs: its conv's input map and its norm's input.
template <Scalar T, class B>
struct pool_cache {
  Tensor<T, B> map, pooled;
  index_t batch = 0, side = 0, side_out = 0;
};

inline ops::conv2d_params conv_params(index_t d, int kernel, int stride) {
  return {
      .stride_h = stride, .stride_w = stride, .pad_h = kernel / 2, .pad_w = kernel / 2, .groups = static_cast<int>(d)};
}

/// P(t): t [B, s*s, Heads * d] -> [B * Heads, s'*s', d], s' = ceil(s / stride); weight
/// [d, 1, k, k] (any extents of d * k * k elements), norm weight and bias [d].
template <Scalar T, class B>
Tensor<T, B> pool(const Tensor<T, B>& t, index_t side, index_t heads, const Tensor<T, B>& weight, int kernel,
                  int stride, const Tensor<T, B>& gamma, const Tensor<T, B>& beta, double eps, pool_cache<T, B>& c,
                  bool keep) {
  const index_t d = t.size(2) / heads;
  c.batch = t.size(0);
  c.side = side;
  c.side_out = (side - 1) / stride + 1;
  const Tensor<T, B> map = head_maps(t, side, heads);
  const Tensor<T, B> pooled = ops::map_to_tokens(
      ops::conv2d(map, weight.reshape({d, 1, kernel, kernel}), nullptr, conv_params(d, kernel, stride)));
  if (keep) {
    c.map = map;
    c.pooled = pooled;
  }
  return ops::layer_norm(pooled, gamma, beta, eps);
}

/// The gradient of P's input [B, s*s, Heads * d] from that of its output; adds the conv's and
/// the norm's gradients to dweight, dgamma and dbeta.
template <Scalar T, class B>
Tensor<T, B> pool_backward(const pool_cache<T, B>& c, const Tensor<T, B>& weight, int kernel, int stride,
                           const Tensor<T, B>& gamma, double eps, const Tensor<T, B>& dh, Tensor<T, B>& dweight,
                           Tensor<T, B>& dgamma, Tensor<T, B>& dbeta) {
  const index_t d = gamma.numel();
  const Tensor<T, B> dpooled = ops::layer_norm_backward(c.pooled, gamma, eps, dh, &dgamma, &dbeta);
  Tensor<T, B> dw = dweight.reshape({d, 1, kernel, kernel});  // a view: the sum lands in dweight
  const Tensor<T, B> dmap = ops::conv2d_backward(c.map, weight.reshape({d, 1, kernel, kernel}),
                                                 ops::tokens_to_map(dpooled, c.side_out, c.side_out),
                                                 conv_params(d, kernel, stride), &dw, nullptr);
  return ops::map_to_tokens(dmap.reshape({c.batch, c.map.size(0) / c.batch * d, c.side, c.side}));
}

/// The side of the square token grid of x [B, N, Dim], or a shape_error naming `who`.
template <Scalar T, class B>
index_t grid_side(const Tensor<T, B>& x, index_t dim, const std::string& who) {
  check<shape_error>(x.rank() == 3 && x.size(2) == dim, who, ": input has extents ", x.shape(), ", expected [B, N, ",
                     dim, "]");
  const auto side = static_cast<index_t>(std::llround(std::sqrt(static_cast<double>(x.size(1)))));
  check<shape_error>(side >= 1 && side * side == x.size(1), who, ": ", x.size(1),
                     " tokens are not a square grid (pooling needs the s x s grid of the tokens)");
  return side;
}

}  // namespace mhpa

template <int In, int Dim, int Heads, int QStride, int KVStride, Scalar T = float, class B = cpu>
class PoolingAttention : public layer_types<T, B> {
  static_assert(In >= 1 && Dim >= 1 && Heads >= 1 && Dim % Heads == 0,
                "rev::nn::PoolingAttention<In,Dim,Heads,...>: Dim must be a positive multiple of Heads");
  static_assert(QStride >= 0 && KVStride >= 0,
                "rev::nn::PoolingAttention: a stride is positive (pooled) or 0 (not pooled)");

 public:
  template <Scalar T2, class B2>
  using rebind = PoolingAttention<In, Dim, Heads, QStride, KVStride, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_features = In, out_features = Dim, heads = Heads, head_dim = Dim / Heads;
  static constexpr int kernel = 3;  // SlowFast's POOL_KVQ_KERNEL (1, 3, 3)
  static constexpr double eps = 1e-6;
  static constexpr std::array<int, 3> stride{QStride, KVStride, KVStride};  // of q, k, v
  static constexpr layout in_layout = layout::tokens, out_layout = layout::tokens;

  using pool_cache = mhpa::pool_cache<T, B>;
  struct cache {
    tensor_type x, merged;             // the input; the heads' outputs merged, before "proj"
    std::array<tensor_type, 3> heads;  // P(q), P(k), P(v) [B * Heads, N', d]
    std::array<pool_cache, 3> pool;
    ops::attention_cache<T, B> attention;
  };

  std::array<param_type, 3> in_weight{param_type(Shape{Dim, In}), param_type(Shape{Dim, In}),
                                      param_type(Shape{Dim, In})};  // q, k, v
  std::array<param_type, 3> in_bias{param_type(Shape{Dim}), param_type(Shape{Dim}), param_type(Shape{Dim})};
  param_type proj_weight{Shape{Dim, Dim}}, proj_bias{Shape{Dim}};
  std::array<param_type, 3> pool_weight{param_type(Shape{head_dim, 1, 1, kernel, kernel}),
                                        param_type(Shape{head_dim, 1, 1, kernel, kernel}),
                                        param_type(Shape{head_dim, 1, 1, kernel, kernel})};
  std::array<param_type, 3> norm_weight{param_type(Shape{head_dim}), param_type(Shape{head_dim}),
                                        param_type(Shape{head_dim})};
  std::array<param_type, 3> norm_bias{param_type(Shape{head_dim}), param_type(Shape{head_dim}),
                                      param_type(Shape{head_dim})};

  /// PyTorch's defaults: Linear and Conv weights and biases U(-1/sqrt(fan_in), ..), norms 1 and 0.
  explicit PoolingAttention(Generator& g = default_generator()) {
    for (std::size_t i = 0; i < 3; ++i) {
      init::default_weight(in_weight[i].value, g);
      init::default_bias(in_bias[i].value, In, g);
      init::default_weight(pool_weight[i].value, g);
      norm_weight[i].value.fill(T(1));
    }
    init::default_weight(proj_weight.value, g);
    init::default_bias(proj_bias.value, Dim, g);
  }

  static std::string name() {
    return "rev::nn::PoolingAttention<" + std::to_string(In) + "," + std::to_string(Dim) + "," + std::to_string(Heads) +
           "," + std::to_string(QStride) + "," + std::to_string(KVStride) + ">";
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    cache c;
    return run(x, ctx, c, false);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) { return run(x, ctx, c, true); }

  /// Returns dL/dx; adds the gradients of every projection, pooling and norm to their parameters.
  tensor_type backward(cache& c, const tensor_type& dy) {
    const index_t side_q = c.pool[0].side_out;
    const tensor_type d_merged =
        ops::linear_backward(c.merged, proj_weight.value, dy, &proj_weight.grad, &proj_bias.grad);
    const auto g = ops::multi_head_attention_backward(c.heads[0], c.heads[1], c.heads[2], 1, c.attention,
                                                      split_heads(d_merged, side_q));
    const std::array<const tensor_type*, 3> dh = {&g.dq, &g.dk, &g.dv};
    tensor_type dx;
    for (std::size_t i = 0; i < 3; ++i) {
      const tensor_type dt = pool_backward(i, c.pool[i], *dh[i]);
      tensor_type di = ops::linear_backward(c.x, in_weight[i].value, dt, &in_weight[i].grad, &in_bias[i].grad);
      dx = i == 0 ? std::move(di) : ops::add(dx, di);
    }
    return dx;
  }

  /// P_q of the input itself, heads merged back: [B, N, Dim] -> [B, N_q, Dim] (In == Dim).
  tensor_type pool_q(const tensor_type& x, pool_cache* c = nullptr) requires(In == Dim && QStride > 0) {
    pool_cache local;
    pool_cache& p = c ? *c : local;
    const tensor_type h = pool(0, x, p, c != nullptr);
    return merge_heads(h, p.batch, p.side_out);
  }
  tensor_type pool_q_backward(pool_cache& c, const tensor_type& dy) requires(In == Dim && QStride > 0) {
    return pool_backward(0, c, split_heads(dy, c.side_out));
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    constexpr const char* names[] = {"q", "k", "v"};
    for (std::size_t i = 0; i < 3; ++i) {
      f(join_name(prefix, std::string(names[i]) + ".weight"), in_weight[i]);
      f(join_name(prefix, std::string(names[i]) + ".bias"), in_bias[i]);
    }
    f(join_name(prefix, "proj.weight"), proj_weight);
    f(join_name(prefix, "proj.bias"), proj_bias);
    for (std::size_t i = 0; i < 3; ++i) {
      if (stride[i] == 0) continue;
      f(join_name(prefix, std::string("pool_") + names[i] + ".weight"), pool_weight[i]);
      f(join_name(prefix, std::string("norm_") + names[i] + ".weight"), norm_weight[i]);
      f(join_name(prefix, std::string("norm_") + names[i] + ".bias"), norm_bias[i]);
    }
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  static tensor_type split_heads(const tensor_type& t, index_t side) { return mhpa::split_heads(t, side, Heads); }
  static tensor_type merge_heads(const tensor_type& h, index_t batch, index_t side) {
    return mhpa::merge_heads(h, batch, side);
  }

  // P_i(t): t [B, s*s, Dim] -> [B * Heads, N', d].
  tensor_type pool(std::size_t i, const tensor_type& t, pool_cache& c, bool keep) {
    const index_t side = mhpa::grid_side(t, Dim, name());
    if (stride[i] == 0) {
      c.batch = t.size(0);
      c.side = c.side_out = side;
      return split_heads(t, side);
    }
    return mhpa::pool(t, side, Heads, pool_weight[i].value, kernel, stride[i], norm_weight[i].value, norm_bias[i].value,
                      eps, c, keep);
  }
  // The gradient of P_i's input [B, s*s, Dim] from that of its output [B * Heads, N', d].
  tensor_type pool_backward(std::size_t i, pool_cache& c, const tensor_type& dh) {
    if (stride[i] == 0) return merge_heads(dh, c.batch, c.side);
    return mhpa::pool_backward(c, pool_weight[i].value, kernel, stride[i], norm_weight[i].value, eps, dh,
                               pool_weight[i].grad, norm_weight[i].grad, norm_bias[i].grad);
  }

  tensor_type run(const tensor_type& x, context&, cache& c, bool keep) {
    check<shape_error>(x.rank() == 3 && x.size(2) == In, name(), ": input has extents ", x.shape(),
                       ", expected [B, N, ", In, "]");
    std::array<tensor_type, 3> h;
    for (std::size_t i = 0; i < 3; ++i)
      h[i] = pool(i, ops::linear(x, in_weight[i].value, &in_bias[i].value), c.pool[i], keep);
    tensor_type merged =
        merge_heads(ops::multi_head_attention(h[0], h[1], h[2], 1, keep ? &c.attention : nullptr),  // scale 1/sqrt(d)
                    x.size(0), c.pool[0].side_out);
    tensor_type y = ops::linear(merged, proj_weight.value, &proj_bias.value);
    if (keep) {
      c.x = x;
      c.heads = std::move(h);
      c.merged = std::move(merged);
    }
    return y;
  }
};

/// SlowFast's attention sub-block with its residual pooled (RES_PATH "conv": Rev-MViT's stage
/// transitions), on tokens z [B, N, W]: P_q(z) + MHPA(LayerNorm_1e-6(z)) with Q pooled at stride 2,
/// the residual pooled by the attention's own pool_q and norm_q (one set of weights for both
/// paths, so their gradients add). Keys "norm", "attn".
template <int W, int Heads, int KVStride, Scalar T = float, class B = cpu>
class PooledResidualAttention : public layer_types<T, B> {
 public:
  template <Scalar T2, class B2>
  using rebind = PooledResidualAttention<W, Heads, KVStride, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using attention_type = PoolingAttention<W, W, Heads, 2, KVStride, T, B>;
  using norm_type = LayerNorm<W, eps_1e6, T, B>;
  static constexpr int in_features = W, out_features = W;
  static constexpr layout in_layout = layout::tokens, out_layout = layout::tokens;
  struct cache {
    typename norm_type::cache norm;
    typename attention_type::cache attn;
    typename attention_type::pool_cache residual;
  };

  norm_type norm;
  attention_type attn;

  tensor_type forward(const tensor_type& z, context& ctx) {
    return ops::add(attn.pool_q(z), attn.forward(norm.forward(z, ctx), ctx));
  }
  tensor_type forward(const tensor_type& z, context& ctx, cache& c) {
    return ops::add(attn.pool_q(z, &c.residual), attn.forward(norm.forward(z, ctx, c.norm), ctx, c.attn));
  }
  tensor_type backward(cache& c, const tensor_type& dy) {
    return ops::add(attn.pool_q_backward(c.residual, dy), norm.backward(c.norm, attn.backward(c.attn, dy)));
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    norm.for_each_parameter(v, join_name(prefix, "norm"));
    attn.for_each_parameter(v, join_name(prefix, "attn"));
  }
  template <class V>
  void for_each_buffer(V&&, const std::string& = "") {}
};

}  // namespace rev::nn
