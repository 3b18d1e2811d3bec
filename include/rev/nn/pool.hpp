// Pooling layers: global average pooling, average pooling.
#pragma once

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/pool.hpp"

namespace rev::nn {

/// Global average pooling [N, C, H, W] -> [N, C, 1, 1] (PyTorch's nn.AdaptiveAvgPool2d(1)).
/// Keeps only the input extents for backward.
template <Scalar T = float, class B = cpu>
class GlobalAvgPool : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = GlobalAvgPool<T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;  // [N, C, 1, 1]
  struct cache {
    Shape input_shape;
  };

  tensor_type forward(const tensor_type& x, context&) { return ops::global_avg_pool(x); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type y = forward(x, ctx);
    c.input_shape = x.shape();
    return y;
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return ops::global_avg_pool_backward(c.input_shape, dy); }
};

/// Average pooling with a K x K window at stride K, [N, C, H, W] -> [N, C, H / K, W / K] (PyTorch's
/// nn.AvgPool2d(K)). Keeps only the input extents for backward.
template <int K, Scalar T = float, class B = cpu>
class AvgPool2d : public layer_types<T, B>, public no_parameters {
  static_assert(K >= 1, "rev::nn::AvgPool2d<K>: K must be positive");

 public:
  template <Scalar T2, class B2>
  using rebind = AvgPool2d<K, T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  struct cache {
    Shape input_shape;
  };

  tensor_type forward(const tensor_type& x, context&) { return K == 1 ? x : ops::avg_pool2d(x, K); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.input_shape = x.shape();
    return forward(x, ctx);
  }
  tensor_type backward(cache& c, const tensor_type& dy) {
    return K == 1 ? dy : ops::avg_pool2d_backward(c.input_shape, dy, K);
  }
};

/// Max pooling with a K x K window at stride S and padding P (PyTorch's nn.MaxPool2d(K, S, P)),
/// [N, C, H, W] -> [N, C, (H + 2P - K) / S + 1, ...]. Keeps its input for backward.
template <int K, int S, int P, Scalar T = float, class B = cpu>
class MaxPool2d : public layer_types<T, B>, public no_parameters {
  static_assert(K >= 1 && S >= 1 && P >= 0 && 2 * P <= K,
                "rev::nn::MaxPool2d<K,S,P>: needs K >= 1, S >= 1 and 0 <= P <= K / 2");

 public:
  template <Scalar T2, class B2>
  using rebind = MaxPool2d<K, S, P, T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  struct cache {
    tensor_type x;
  };

  tensor_type forward(const tensor_type& x, context&) { return ops::max_pool2d(x, K, S, P); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.x = x;
    return forward(x, ctx);
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return ops::max_pool2d_backward(c.x, dy, K, S, P); }
};

}  // namespace rev::nn
