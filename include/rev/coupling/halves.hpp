// Where the parts x1 and x2 of a two-part coupling (Additive, Affine) come from, and the split
// and join of a map's channel halves that both use.
#pragma once

#include <array>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"

namespace rev {

/// Where x1 and x2 come from.
enum class coupling_layout {
  halves,          // one map split along channels: x1 = first half, x2 = second half (RevNet)
  halves_swapped,  // x1 = second half, x2 = first half (RevBiFPN's RevBlock; alternating flows)
  streams          // two tensors {x1, x2} (Rev-ViT's two residual streams)
};

namespace detail {

/// (x1, x2) of map x split into channel halves in Layout. x must have 2 * half channels (an even
/// count when half is any_channels); `who` and `what` name the block and the tensor in errors.
template <coupling_layout Layout, Scalar T, class B>
std::array<Tensor<T, B>, 2> split_halves(const Tensor<T, B>& x, int half, const char* who, const char* what) {
  static_assert(Layout != coupling_layout::streams, "rev::detail::split_halves: streams are not split");
  check<shape_error>(x.rank() == 4 && x.size(1) % 2 == 0 && (half == any_channels || x.size(1) == 2 * half), who, ": ",
                     what, " has extents ", x.shape(), ", expected [N, ",
                     half == any_channels ? std::string("2k") : std::to_string(2 * half), ", H, W]");
  const index_t h = x.size(1) / 2;
  auto parts = ops::split_channels(x, {h, h});
  if constexpr (Layout == coupling_layout::halves_swapped) return {parts[1], parts[0]};
  else return {parts[0], parts[1]};
}

/// The map whose channel halves in Layout are y1 and y2.
template <coupling_layout Layout, Scalar T, class B>
Tensor<T, B> join_halves(const Tensor<T, B>& y1, const Tensor<T, B>& y2) {
  static_assert(Layout != coupling_layout::streams, "rev::detail::join_halves: streams are not joined");
  if constexpr (Layout == coupling_layout::halves_swapped) return ops::concat_channels({y2, y1});
  else return ops::concat_channels({y1, y2});
}

}  // namespace detail
}  // namespace rev
