// Space-to-depth as a reversible layer (no parameters): RevBiFPN's stem (block 4, revbifpn
// order) and PyTorch's PixelUnshuffle (pixel_unshuffle order); its inverse as a layer,
// PyTorch's PixelShuffle (RevCol's image decoders).
#pragma once

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/space_to_depth.hpp"

namespace rev::nn {

/// [N, C, H, W] -> [N, C*Block*Block, H/Block, W/Block]. A permutation, hence a coupling: its
/// inverse is depth-to-space and its backward applies the inverse permutation to the gradient.
template <int Block, ops::s2d_order Order, Scalar T = float, class B = cpu>
class SpaceToDepth : public layer_types<T, B>, public no_parameters {
  static_assert(Block >= 1, "rev::nn::SpaceToDepth: Block must be >= 1");

 public:
  template <Scalar T2, class B2>
  using rebind = SpaceToDepth<Block, Order, T2, B2>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  struct cache {};
  static constexpr int block = Block;
  static constexpr int channel_factor = Block * Block;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr ops::s2d_order order = Order;

  tensor_type forward(const tensor_type& x, context&) { return ops::space_to_depth(x, Block, Order); }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) { return ops::depth_to_space(dy, Block, Order); }

  /// x from y = forward(x).
  tensor_type inverse(const tensor_type& y) const { return ops::depth_to_space(y, Block, Order); }
  tensor_type inverse(const tensor_type& y, context&) const { return inverse(y); }
  /// The input and its gradient from the output and its gradient (nothing kept).
  reconstructed<tensor_type> backward_reversible(const tensor_type& y, const tensor_type& dy) const {
    return {inverse(y), ops::depth_to_space(dy, Block, Order)};
  }
};

/// [N, C*Block*Block, H, W] -> [N, C, H*Block, W*Block] in PixelShuffle's order: output channel
/// c at pixel (h*Block + i, w*Block + j) reads input channel c*Block*Block + i*Block + j. A
/// permutation, hence a coupling.
template <int Block, Scalar T = float, class B = cpu>
class PixelShuffle : public layer_types<T, B>, public no_parameters {
  static_assert(Block >= 1, "rev::nn::PixelShuffle: Block must be >= 1");
  static constexpr auto order = ops::s2d_order::pixel_unshuffle;

 public:
  template <Scalar T2, class B2>
  using rebind = PixelShuffle<Block, T2, B2>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  struct cache {};
  static constexpr int block = Block;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr signature<1> out_signature(const signature<1>& reaching) {
    const int c = reaching[0].width;
    return {{{layout::map, c == any_channels ? any_channels : c / (Block * Block)}}};
  }

  tensor_type forward(const tensor_type& x, context&) const { return ops::depth_to_space(x, Block, order); }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) const { return forward(x, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) const { return ops::space_to_depth(dy, Block, order); }
  tensor_type inverse(const tensor_type& y, context&) const { return ops::space_to_depth(y, Block, order); }
  reconstructed<tensor_type> backward_reversible(const tensor_type& y, const tensor_type& dy) const {
    return {ops::space_to_depth(y, Block, order), ops::space_to_depth(dy, Block, order)};
  }
};

}  // namespace rev::nn
