// Multi-head self-attention as a layer: a packed projection (Linear Dim -> 3*Dim; outputs 0..Dim-1 are q, Dim..2*Dim-1
// are k, the rest v; head h takes columns h*d..(h+1)*d - 1 of each), scaled dot-product attention per head with scale
// 1/sqrt(d), heads concatenated in order, and an output projection (Linear Dim -> Dim). Both projections have biases.
// Their keys: timm's ("qkv.weight", "proj.weight", ...; attention_keys::timm) or torch.nn.MultiheadAttention's
// ("in_proj_weight", "out_proj.weight", ...; attention_keys::torch, minREV's Rev-ViT). SlowFast's attention
// (attention_keys::separate, the official Rev-ViT checkpoints) has three input projections "q", "k", "v" of
// [Dim, Dim] instead of the packed one.
#pragma once

#include <array>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/ops/attention.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/linear.hpp"

namespace rev::nn {

/// The parameters and keys of MultiHeadAttention: timm's Attention, torch.nn.MultiheadAttention (both
/// packed), SlowFast's separate q, k, v.
enum class attention_keys { timm, torch, separate };

namespace detail {
// The input projections: one packed Linear Dim -> 3 Dim, or three Dim -> Dim (q, k, v).
template <bool Packed, int Dim, class P>
struct qkv_params {
  P qkv_weight{Shape{3 * Dim, Dim}}, qkv_bias{Shape{3 * Dim}};  // [3*Dim, Dim], [3*Dim]
};
template <int Dim, class P>
struct qkv_params<false, Dim, P> {
  std::array<P, 3> in_weight{P(Shape{Dim, Dim}), P(Shape{Dim, Dim}), P(Shape{Dim, Dim})};  // q, k, v
  std::array<P, 3> in_bias{P(Shape{Dim}), P(Shape{Dim}), P(Shape{Dim})};
};
}  // namespace detail

/// Self-attention on tokens x [B, N, Dim] -> [B, N, Dim] with Heads heads of width Dim / Heads.
template <int Dim, int Heads, Scalar T = float, class B = cpu, attention_keys Keys = attention_keys::timm>
class MultiHeadAttention : public layer_types<T, B>,
                           public detail::qkv_params<Keys != attention_keys::separate, Dim, Param<T, B>> {
  static_assert(Dim >= 1 && Heads >= 1 && Dim % Heads == 0,
                "rev::nn::MultiHeadAttention<Dim,Heads>: Dim must be a positive multiple of Heads");
  static constexpr bool packed = Keys != attention_keys::separate;

 public:
  template <Scalar T2, class B2>
  using rebind = MultiHeadAttention<Dim, Heads, T2, B2, Keys>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_features = Dim, out_features = Dim, heads = Heads, head_dim = Dim / Heads;
  static constexpr layout in_layout = layout::tokens, out_layout = layout::tokens;

  struct cache {
    tensor_type x, q, k, v, attended;  // attended: the heads' outputs before "proj"
    ops::attention_cache<T, B> attention;
  };

  param_type proj_weight, proj_bias;  // [Dim, Dim], [Dim]

  /// PyTorch's nn.Linear default initialisation of the projections, drawn from g.
  explicit MultiHeadAttention(Generator& g = default_generator()) : proj_weight({Dim, Dim}), proj_bias({Dim}) {
    if constexpr (packed) {
      init::default_weight(this->qkv_weight.value, g);
      init::default_bias(this->qkv_bias.value, Dim, g);
    } else {
      for (std::size_t i = 0; i < 3; ++i) {
        init::default_weight(this->in_weight[i].value, g);
        init::default_bias(this->in_bias[i].value, Dim, g);
      }
    }
    init::default_weight(proj_weight.value, g);
    init::default_bias(proj_bias.value, Dim, g);
  }

  /// "rev::nn::MultiHeadAttention<Dim,Heads>", the prefix of this layer's error messages.
  static std::string name() {
    return "rev::nn::MultiHeadAttention<" + std::to_string(Dim) + "," + std::to_string(Heads) + ">";
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    cache c;
    return run(x, ctx, c, false);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) { return run(x, ctx, c, true); }

  /// Returns dL/dx and adds the gradients of qkv and proj to their parameters.
  tensor_type backward(cache& c, const tensor_type& dy) {
    const tensor_type d_attended =
        ops::linear_backward(c.attended, proj_weight.value, dy, &proj_weight.grad, &proj_bias.grad);
    const auto g = ops::multi_head_attention_backward(c.q, c.k, c.v, Heads, c.attention, d_attended);
    if constexpr (packed) {
      const index_t B_ = c.x.size(0), N = c.x.size(1);
      const std::array<tensor_type, 3> parts = {g.dq.reshape({B_ * N, Dim}), g.dk.reshape({B_ * N, Dim}),
                                                g.dv.reshape({B_ * N, Dim})};
      const tensor_type dqkv = ops::concat_channels(parts).reshape({B_, N, 3 * Dim});
      return ops::linear_backward(c.x, this->qkv_weight.value, dqkv, &this->qkv_weight.grad, &this->qkv_bias.grad);
    } else {
      const std::array<const tensor_type*, 3> d = {&g.dq, &g.dk, &g.dv};
      tensor_type dx;
      for (std::size_t i = 0; i < 3; ++i) {
        tensor_type di = ops::linear_backward(c.x, this->in_weight[i].value, *d[i], &this->in_weight[i].grad,
                                              &this->in_bias[i].grad);
        dx = i == 0 ? std::move(di) : ops::add(dx, di);
      }
      return dx;
    }
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    constexpr bool torch = Keys == attention_keys::torch;
    if constexpr (packed) {
      f(join_name(prefix, torch ? "in_proj_weight" : "qkv.weight"), this->qkv_weight);
      f(join_name(prefix, torch ? "in_proj_bias" : "qkv.bias"), this->qkv_bias);
    } else {
      constexpr const char* names[] = {"q", "k", "v"};
      for (std::size_t i = 0; i < 3; ++i) {
        f(join_name(prefix, std::string(names[i]) + ".weight"), this->in_weight[i]);
        f(join_name(prefix, std::string(names[i]) + ".bias"), this->in_bias[i]);
      }
    }
    f(join_name(prefix, torch ? "out_proj.weight" : "proj.weight"), proj_weight);
    f(join_name(prefix, torch ? "out_proj.bias" : "proj.bias"), proj_bias);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  tensor_type run(const tensor_type& x, context&, cache& c, bool keep) {
    check<shape_error>(x.rank() == 3 && x.size(2) == Dim, name(), ": input has extents ", x.shape(),
                       ", expected [B, N, ", Dim, "]");
    const index_t B_ = x.size(0), N = x.size(1);
    std::array<tensor_type, 3> parts;  // q, k, v [B, N, Dim]
    if constexpr (packed) {
      // qkv [B*N, 3*Dim] split along its columns.
      const tensor_type qkv = ops::linear(x, this->qkv_weight.value, &this->qkv_bias.value).reshape({B_ * N, 3 * Dim});
      auto split = ops::split_channels(qkv, {Dim, Dim, Dim});
      for (std::size_t i = 0; i < 3; ++i) parts[i] = split[i].reshape({B_, N, Dim});
    } else {
      for (std::size_t i = 0; i < 3; ++i) parts[i] = ops::linear(x, this->in_weight[i].value, &this->in_bias[i].value);
    }
    tensor_type attended =
        ops::multi_head_attention(parts[0], parts[1], parts[2], Heads, keep ? &c.attention : nullptr);
    tensor_type y = ops::linear(attended, proj_weight.value, &proj_bias.value);
    if (keep) {
      c.x = x;
      c.q = parts[0];
      c.k = parts[1];
      c.v = parts[2];
      c.attended = attended;
    }
    return y;
  }
};

}  // namespace rev::nn
