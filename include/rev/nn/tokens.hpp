// nn::MapToTokens and nn::TokensToMap: the layers of rev/ops/tokens.hpp (no parameters). A map
// [B, C, H, W] becomes [B, H*W, C] tokens and back, the junction between a convolutional stem
// and a transformer (ViT's patch embedding) or around MViT's pooling.
#pragma once

#include <cmath>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/pool.hpp"
#include "rev/ops/tokens.hpp"

namespace rev::nn {

/// [B, C, H, W] -> [B, H*W, C].
template <Scalar T = float, class B = cpu>
class MapToTokens : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = MapToTokens<T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::map, out_layout = layout::tokens;
  struct cache {
    index_t h = 0, w = 0;
  };

  tensor_type forward(const tensor_type& x, context&) { return ops::map_to_tokens(x); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type t = forward(x, ctx);
    c.h = x.size(2);
    c.w = x.size(3);
    return t;
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return ops::tokens_to_map(dy, c.h, c.w); }
};

/// [B, h*w, C] -> [B, C, h, w], for the map size given at construction, or (h = w = 0) the
/// square one whose side is the square root of the token count.
template <Scalar T = float, class B = cpu>
class TokensToMap : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = TokensToMap<T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::tokens, out_layout = layout::map;
  struct cache {};

  TokensToMap() = default;
  TokensToMap(index_t h, index_t w) : h_(h), w_(w) {}

  tensor_type forward(const tensor_type& t, context&) {
    const auto [h, w] = size_of(t);
    return ops::tokens_to_map(t, h, w);
  }
  tensor_type forward(const tensor_type& t, context& ctx, cache&) { return forward(t, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) { return ops::map_to_tokens(dy); }

 private:
  std::pair<index_t, index_t> size_of(const tensor_type& t) const {
    if (h_ > 0) return {h_, w_};
    check<shape_error>(t.rank() == 3, "rev::nn::TokensToMap: input has extents ", t.shape(), ", expected [B, N, C]");
    const auto side = static_cast<index_t>(std::llround(std::sqrt(static_cast<double>(t.size(1)))));
    check<shape_error>(side * side == t.size(1), "rev::nn::TokensToMap: ", t.size(1),
                       " tokens are not a square map; give the map size (TokensToMap(h, w))");
    return {side, side};
  }

  index_t h_ = 0, w_ = 0;
};

/// The mean over the tokens, [B, N, D] -> [B, D] (a ViT's pooled features, Rev-ViT's end).
template <Scalar T = float, class B = cpu>
class MeanTokens : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = MeanTokens<T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::tokens, out_layout = layout::flat;
  struct cache {
    Shape input_shape;
  };

  tensor_type forward(const tensor_type& t, context&) {
    check<shape_error>(t.rank() == 3 && t.size(1) > 0, "rev::nn::MeanTokens: input has extents ", t.shape(),
                       ", expected [B, N, D] with N > 0");
    // [B, N, D] -> [B, D, N, 1] -> the mean over the map's N x 1 positions.
    return ops::global_avg_pool(ops::tokens_to_map(t, t.size(1), 1)).reshape({t.size(0), t.size(2)});
  }
  tensor_type forward(const tensor_type& t, context& ctx, cache& c) {
    c.input_shape = t.shape();
    return forward(t, ctx);
  }
  tensor_type backward(cache& c, const tensor_type& dy) {
    const Shape& s = c.input_shape;
    check<shape_error>(dy.rank() == 2 && dy.size(0) == s[0] && dy.size(1) == s[2],
                       "rev::nn::MeanTokens: output gradient has extents ", dy.shape(), ", expected [", s[0], ", ",
                       s[2], "]");
    return ops::map_to_tokens(
        ops::global_avg_pool_backward(Shape{s[0], s[2], s[1], 1}, dy.reshape({s[0], s[2], 1, 1})));
  }
};

}  // namespace rev::nn
