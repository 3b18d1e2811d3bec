// rev::Residual<L, opts>: the residual block y = x + DropPath(gamma ⊙ L(x)) of ConvNeXt (Liu et
// al. 2022, RevCol's level blocks) and of Fixup/RevUp, with two options:
//
//   layer_scale  gamma's initial value (CaiT's layer scale, a learnable per-channel vector of L's
//                width, named "gamma"); 0: no gamma, y = x + DropPath(L(x))
//   drop_path    stochastic depth: the branch of a sample is dropped with this probability in the
//                train phase and rescaled by 1 / (1 - p); replayed in the recompute phase
//
// L must return what it takes (the sum needs the same extents). gamma scales a map's channels
// (axis 1) when L returns a map, the last extent when L returns features (tokens, flat).
// L's parameters keep their names (no extra key): wrap L in rev::Named for one. Residual is an
// ordinary block, not a coupling: in a reversible Chain it is checkpointed.
#pragma once

#include <string>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/ops/elementwise.hpp"
#include "rev/ops/layer_scale.hpp"

namespace rev {

/// Options of Residual (see the header comment).
struct residual_opts {
  double layer_scale = 0;
  double drop_path = 0;
};

template <class L, residual_opts O = residual_opts{}>
class Residual {
  static constexpr auto returned = own_out_signature_of<L>();
  static_assert(returned.size() == 1 && fits(returned, in_signature_of<L>()),
                "rev::Residual<L,opts>: L must return what it takes (y = x + L(x) adds them)");
  static constexpr bool scaled = O.layer_scale != 0;
  static constexpr bool dropped = O.drop_path > 0;
  static_assert(O.drop_path >= 0 && O.drop_path < 1, "rev::Residual<L,opts>: drop_path must be in [0, 1)");
  static_assert(!scaled || out_channels_of<L>() != any_channels,
                "rev::Residual<L,opts>: layer scale needs L's width (its out_channels or out_features)");
  static_assert(!scaled || returned[0].layouts == layout::map || (returned[0].layouts & layout::map) == layout{},
                "rev::Residual<L,opts>: layer scale needs to know whether L returns a map (scaled along the channels) "
                "or features (scaled along the last extent)");
  static constexpr int axis = returned[0].layouts == layout::map ? 1 : -1;

 public:
  template <class T2, class B2>
  using rebind = Residual<rebind_t<L, T2, B2>, O>;
  using value_type = typename L::value_type;
  using backend = typename L::backend;
  using tensor_type = Tensor<value_type, backend>;
  static constexpr int in_channels = in_channels_of<L>(), out_channels = out_channels_of<L>();
  static constexpr layout in_layout = in_layout_of<L>(), out_layout = in_layout_of<L>();
  static constexpr residual_opts options = O;

  struct cache {
    typename L::cache l;
    tensor_type branch;  // L(x), read by gamma's gradient
    typename nn::DropPath<value_type, backend>::cache drop;
  };

  /// The per-channel scale of the branch ([width]; empty without layer scale).
  Param<value_type, backend> gamma =
      scaled ? Param<value_type, backend>(Shape{out_channels}) : Param<value_type, backend>();

  Residual() {
    if constexpr (scaled) gamma.value.fill(static_cast<value_type>(O.layer_scale));
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    cache c;
    return add(x, branch(l_.forward(x, ctx), ctx, c), "forward");
  }

  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type fx = l_.forward(x, ctx, c.l);
    if constexpr (scaled) c.branch = fx;
    return add(x, branch(std::move(fx), ctx, c), "forward");
  }

  tensor_type backward(cache& c, const tensor_type& dy) {
    tensor_type d = dy;
    if constexpr (dropped) d = drop_.backward(c.drop, d);
    if constexpr (scaled) d = ops::layer_scale_backward(c.branch, gamma.value, d, axis, &gamma.grad);
    tensor_type dx = ops::add(dy, l_.backward(c.l, d));
    c.branch = tensor_type();
    return dx;
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    l_.for_each_parameter(v, prefix);
    if constexpr (scaled) v(join_name(prefix, "gamma"), gamma);
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    l_.for_each_buffer(v, prefix);
  }
  /// Calls v on L and, with drop-path, on the DropPath (rev::apply: its rate can change).
  template <class V>
  void for_each_child(V&& v) {
    v(l_);
    if constexpr (dropped) v(drop_);
  }

  L& inner() { return l_; }

 private:
  tensor_type branch(tensor_type fx, context& ctx, cache& c) {
    if constexpr (scaled) fx = ops::layer_scale(fx, gamma.value, axis);
    if constexpr (dropped) fx = drop_.forward(fx, ctx, c.drop);
    return fx;
  }

  static tensor_type add(const tensor_type& x, const tensor_type& fx, const char* where) {
    check<shape_error>(fx.shape() == x.shape(), "rev::Residual<L,opts>::", where, ": L maps extents ", x.shape(),
                       " to ", fx.shape(), "; x + L(x) needs the same extents");
    return ops::add(x, fx);
  }

  L l_;
  nn::DropPath<value_type, backend> drop_{O.drop_path};
};

}  // namespace rev
