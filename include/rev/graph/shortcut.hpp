// rev::Shortcut<S, L>: a block with a transformed shortcut, y = S(x) + L(x) (He et al. 2016's
// projection shortcut; MViTv2's stage transitions, where S max-pools the tokens while L attends
// with its queries pooled at the same stride). With S the identity it is rev::Residual.
//
// S and L must return the same extents. Both keep their parameters' names (wrap them in
// rev::Named for keys); Shortcut adds none. An ordinary block, not a coupling: in a reversible
// Chain it is checkpointed.
#pragma once

#include <string>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

template <class S, class L>
class Shortcut {
  static_assert(own_out_signature_of<S>().size() == 1 && own_out_signature_of<L>().size() == 1,
                "rev::Shortcut<S,L>: S and L must each return one tensor (y = S(x) + L(x))");

 public:
  template <class T2, class B2>
  using rebind = Shortcut<rebind_t<S, T2, B2>, rebind_t<L, T2, B2>>;
  using value_type = typename L::value_type;
  using backend = typename L::backend;
  using tensor_type = Tensor<value_type, backend>;
  static constexpr int in_channels = in_channels_of<L>(), out_channels = own_out_signature_of<L>()[0].width;
  static constexpr layout in_layout = in_layout_of<L>(), out_layout = own_out_signature_of<L>()[0].layouts;

  struct cache {
    typename S::cache s;
    typename L::cache l;
  };

  tensor_type forward(const tensor_type& x, context& ctx) { return add(s_.forward(x, ctx), l_.forward(x, ctx), x); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    return add(s_.forward(x, ctx, c.s), l_.forward(x, ctx, c.l), x);
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return ops::add(s_.backward(c.s, dy), l_.backward(c.l, dy)); }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    s_.for_each_parameter(v, prefix);
    l_.for_each_parameter(v, prefix);
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    s_.for_each_buffer(v, prefix);
    l_.for_each_buffer(v, prefix);
  }
  template <class V>
  void for_each_child(V&& v) {
    v(s_);
    v(l_);
  }

  S& shortcut() { return s_; }
  L& inner() { return l_; }

 private:
  static tensor_type add(const tensor_type& sx, const tensor_type& lx, const tensor_type& x) {
    check<shape_error>(sx.shape() == lx.shape(), "rev::Shortcut<S,L>::forward: for input ", x.shape(), ", S returns ",
                       sx.shape(), " and L ", lx.shape(), "; S(x) + L(x) needs the same extents");
    return ops::add(sx, lx);
  }

  S s_;
  L l_;
};

}  // namespace rev
