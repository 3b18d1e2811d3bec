// nn::PositionEmbedding<N, D>: a learned absolute position embedding added to N tokens of width D
// (ViT's, Rev-ViT's: y = x + pos, pos [1, N, D] broadcast over the batch). Its one parameter is
// keyed by the layer's own name: wrap it in rev::Named ("pos_embeddings" in minREV, "pos_embed"
// in SlowFast).
#pragma once

#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"

namespace rev::nn {

template <int N, int D, Scalar T = float, class B = cpu>
class PositionEmbedding : public layer_types<T, B> {
  static_assert(N >= 1 && D >= 1, "rev::nn::PositionEmbedding<N,D>: needs at least one token and one feature");
  static_assert(std::same_as<B, cpu>, "rev::nn::PositionEmbedding<N,D>: CPU-only for now");

 public:
  template <Scalar T2, class B2>
  using rebind = PositionEmbedding<N, D, T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr int in_features = D, out_features = D, tokens = N;
  static constexpr layout in_layout = layout::tokens, out_layout = layout::tokens;
  struct cache {};

  Param<T, B> pos{Shape{1, N, D}};  // zeros, as minREV leaves it

  static std::string name() {
    return "rev::nn::PositionEmbedding<" + std::to_string(N) + "," + std::to_string(D) + ">";
  }

  tensor_type forward(const tensor_type& x, context&) {
    check<shape_error>(x.rank() == 3 && x.size(1) == N && x.size(2) == D, name(), ": input has extents ", x.shape(),
                       ", expected [B, ", N, ", ", D, "] (the embedding was made for ", N,
                       " tokens: another image size needs another configuration)");
    tensor_type y = tensor_type::uninitialized(x.shape());
    const index_t per_sample = static_cast<index_t>(N) * D;
    const T* p = pos.value.data();
    for (index_t b = 0; b < x.size(0); ++b) {
      const T* src = x.data() + b * per_sample;
      T* dst = y.data() + b * per_sample;
      for (index_t i = 0; i < per_sample; ++i) dst[i] = src[i] + p[i];
    }
    return y;
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  /// dL/dx = dy; dL/dpos, the sum of dy over the batch, is added to pos.grad.
  tensor_type backward(cache&, const tensor_type& dy) {
    check<shape_error>(dy.rank() == 3 && dy.size(1) == N && dy.size(2) == D, name(), ": output gradient has extents ",
                       dy.shape(), ", expected [B, ", N, ", ", D, "]");
    const index_t per_sample = static_cast<index_t>(N) * D;
    T* g = pos.grad.data();
    for (index_t b = 0; b < dy.size(0); ++b) {
      const T* src = dy.data() + b * per_sample;
      for (index_t i = 0; i < per_sample; ++i) g[i] += src[i];
    }
    return dy;
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    v(prefix, pos);
  }
  template <class V>
  void for_each_buffer(V&&, const std::string& = "") {}
};

}  // namespace rev::nn
