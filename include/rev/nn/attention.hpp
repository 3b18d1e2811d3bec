// Multi-head self-attention as a layer, with the timm / minREV parameter names: a packed projection "qkv" (Linear Dim
// -> 3*Dim; outputs 0..Dim-1 are q, Dim..2*Dim-1 are k, the rest v; head h takes columns h*d..(h+1)*d - 1 of each),
// scaled dot-product attention per head with scale 1/sqrt(d), heads concatenated in order, and
// an output projection "proj" (Linear Dim -> Dim). Both projections have biases.
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

/// Self-attention on tokens x [B, N, Dim] -> [B, N, Dim] with Heads heads of width Dim / Heads.
template <int Dim, int Heads, Scalar T = float, class B = cpu>
class MultiHeadAttention : public layer_types<T, B> {
  static_assert(Dim >= 1 && Heads >= 1 && Dim % Heads == 0,
                "rev::nn::MultiHeadAttention<Dim,Heads>: Dim must be a positive multiple of Heads");

 public:
  template <Scalar T2, class B2>
  using rebind = MultiHeadAttention<Dim, Heads, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_features = Dim, out_features = Dim, heads = Heads, head_dim = Dim / Heads;
  static constexpr layout in_layout = layout::tokens, out_layout = layout::tokens;

  struct cache {
    tensor_type x, q, k, v, attended;  // attended: the heads' outputs before "proj"
    ops::attention_cache<T, B> attention;
  };

  param_type qkv_weight, qkv_bias;    // [3*Dim, Dim], [3*Dim]
  param_type proj_weight, proj_bias;  // [Dim, Dim], [Dim]

  /// PyTorch's nn.Linear default initialisation of both projections, drawn from g.
  explicit MultiHeadAttention(Generator& g = default_generator())
      : qkv_weight({3 * Dim, Dim}), qkv_bias({3 * Dim}), proj_weight({Dim, Dim}), proj_bias({Dim}) {
    init::default_weight(qkv_weight.value, g);
    init::default_bias(qkv_bias.value, Dim, g);
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
    const index_t B_ = c.x.size(0), N = c.x.size(1);
    const std::array<tensor_type, 3> parts = {g.dq.reshape({B_ * N, Dim}), g.dk.reshape({B_ * N, Dim}),
                                              g.dv.reshape({B_ * N, Dim})};
    const tensor_type dqkv = ops::concat_channels(parts).reshape({B_, N, 3 * Dim});
    return ops::linear_backward(c.x, qkv_weight.value, dqkv, &qkv_weight.grad, &qkv_bias.grad);
  }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "qkv.weight"), qkv_weight);
    f(join_name(prefix, "qkv.bias"), qkv_bias);
    f(join_name(prefix, "proj.weight"), proj_weight);
    f(join_name(prefix, "proj.bias"), proj_bias);
  }
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}

 private:
  tensor_type run(const tensor_type& x, context&, cache& c, bool keep) {
    check<shape_error>(x.rank() == 3 && x.size(2) == Dim, name(), ": input has extents ", x.shape(),
                       ", expected [B, N, ", Dim, "]");
    const index_t B_ = x.size(0), N = x.size(1);
    // qkv [B*N, 3*Dim] split along its columns into q, k, v [B, N, Dim].
    const tensor_type qkv = ops::linear(x, qkv_weight.value, &qkv_bias.value).reshape({B_ * N, 3 * Dim});
    auto parts = ops::split_channels(qkv, {Dim, Dim, Dim});
    for (auto& p : parts) p = p.reshape({B_, N, Dim});
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
