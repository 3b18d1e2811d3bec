// Zero channels around a map as a layer (no parameters): [N, C, H, W] -> [N, Before + C + After,
// H, W]. RevNet's shortcut of a widening unit (Gomez et al. 2017, after ResNet's option A) pads
// each half this way.
#pragma once

#include <span>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"

namespace rev::nn {

template <int Before, int After, Scalar T = float, class B = cpu>
class PadChannels : public layer_types<T, B>, public no_parameters {
  static_assert(Before >= 0 && After >= 0, "rev::nn::PadChannels<Before,After>: the counts must be non-negative");

 public:
  template <Scalar T2, class B2>
  using rebind = PadChannels<Before, After, T2, B2>;
  using tensor_type = Tensor<T, B>;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr signature<1> out_signature(const signature<1>& reaching) {
    const int w = reaching[0].width;
    return {{{layout::map, w == any_channels ? any_channels : Before + w + After}}};
  }
  struct cache {};

  tensor_type forward(const tensor_type& x, context&) {
    check<shape_error>(x.rank() == 4, "rev::nn::PadChannels: input has extents ", x.shape(), ", expected [N, C, H, W]");
    if constexpr (Before == 0 && After == 0) {
      return x;
    } else {
      std::vector<tensor_type> parts;
      if (Before > 0) parts.emplace_back(Shape{x.size(0), Before, x.size(2), x.size(3)});
      parts.push_back(x);
      if (After > 0) parts.emplace_back(Shape{x.size(0), After, x.size(2), x.size(3)});
      return ops::concat_channels(parts);
    }
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  /// The gradient of the middle channels.
  tensor_type backward(cache&, const tensor_type& dy) {
    if constexpr (Before == 0 && After == 0) {
      return dy;
    } else {
      std::vector<index_t> sizes;
      if (Before > 0) sizes.push_back(Before);
      sizes.push_back(dy.size(1) - Before - After);
      if (After > 0) sizes.push_back(After);
      return ops::split_channels(dy, std::span<const index_t>(sizes))[Before > 0 ? 1 : 0];
    }
  }
};

}  // namespace rev::nn
