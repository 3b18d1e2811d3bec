// Channel tiling as a layer (no parameters): [N, In, H, W] -> [N, Out, H, W] with channel k of the
// output equal to channel k mod In of the input. RevBiFPN stacks the image this way when its stem
// takes more channels than the image has (c_0 / 16 channels from the image's 3).
#pragma once

#include <array>
#include <span>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev::nn {

/// The input is the output's first In channels, so TileChannels is a coupling: its inverse reads
/// them, and the gradient of input channel c is the sum of the gradients of its copies.
template <int In, int Out, Scalar T = float, class B = cpu>
class TileChannels : public layer_types<T, B>, public no_parameters {
  static_assert(In >= 1 && Out >= In, "rev::nn::TileChannels<In,Out>: needs 1 <= In <= Out");
  static constexpr int copies = Out / In, remainder = Out % In;

 public:
  template <Scalar T2, class B2>
  using rebind = TileChannels<In, Out, T2, B2>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  static constexpr int in_channels = In, out_channels = Out;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  struct cache {};

  tensor_type forward(const tensor_type& x, context&) {
    check<shape_error>(x.rank() == 4 && x.size(1) == In, "rev::nn::TileChannels<", In, ",", Out,
                       ">: input has extents ", x.shape(), ", expected [N, ", In, ", H, W]");
    if constexpr (Out == In) {
      return x;
    } else {
      std::array<tensor_type, copies + (remainder > 0 ? 1 : 0)> parts;
      for (int k = 0; k < copies; ++k) parts[static_cast<std::size_t>(k)] = x;
      if constexpr (remainder > 0) parts[copies] = ops::split_channels(x, {remainder, In - remainder})[0];
      return ops::concat_channels(parts);
    }
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) { return folded(dy); }
  tensor_type inverse(const tensor_type& y, context&) { return taken(y); }
  reconstructed<tensor_type> backward_reversible(const tensor_type& y, const tensor_type& dy) {
    return {taken(y), folded(dy)};
  }

 private:
  static tensor_type taken(const tensor_type& y) {
    if constexpr (Out == In) return y;
    else return ops::split_channels(y, {In, Out - In})[0];
  }
  static tensor_type folded(const tensor_type& dy) {
    if constexpr (Out == In) {
      return dy;
    } else {
      std::vector<index_t> sizes(static_cast<std::size_t>(copies), In);
      if constexpr (remainder > 0) sizes.push_back(remainder);
      std::vector<tensor_type> parts = ops::split_channels(dy, std::span<const index_t>(sizes));
      tensor_type d = parts[0];
      for (int k = 1; k < copies; ++k) ops::add_(d, parts[static_cast<std::size_t>(k)]);
      if constexpr (remainder > 0) {
        std::vector<tensor_type> head = ops::split_channels(d, {remainder, In - remainder});
        ops::add_(head[0], parts.back());
        d = ops::concat_channels(head);
      }
      return d;
    }
  }
};

}  // namespace rev::nn
