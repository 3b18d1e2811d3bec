// rev::Fusion<Down, Up, Body>: a two-input layer y = Body(Down(low) + Up(high)), a level of a
// rev::Column. RevCol's level l (Cai et al., ICLR 2023, Sec. 2.2 and Fig. 2c): the level below
// in this column arrives through the down path (a strided convolution), the level above in the
// previous column through the up path (channel reschedule, then up-sampling), and the sum runs
// through the level's ConvNeXt blocks. Up = rev::no_input: a level with no high input (the top
// level, and every level of a first column); `high` is then ignored.
//
// Children keep their own names (wrap them in rev::Named); Fusion adds no key.
#pragma once

#include <string>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// The Up of a Fusion without a high input.
struct no_input {
  template <class T2, class B2>
  using rebind = no_input;
  struct cache {};
};

template <class Down, class Up, class Body>
class Fusion {
  static constexpr bool has_up = !std::same_as<Up, no_input>;

 public:
  template <class T2, class B2>
  using rebind = Fusion<rebind_t<Down, T2, B2>, rebind_t<Up, T2, B2>, rebind_t<Body, T2, B2>>;
  using value_type = typename Body::value_type;
  using backend = typename Body::backend;
  using tensor_type = Tensor<value_type, backend>;
  static constexpr int low_channels = in_channels_of<Down>();
  static constexpr int out_channels = out_channels_of<Body>();
  static constexpr int high_channels = [] {
    if constexpr (has_up) return in_channels_of<Up>();
    else return any_channels;
  }();
  static_assert(channels_match(out_channels_of<Down>(), in_channels_of<Body>()),
                "rev::Fusion<Down,Up,Body>: Down must return the channels Body takes");
  static_assert(!has_up || channels_match(out_channels_of<Down>(), out_channels_of<Up>()),
                "rev::Fusion<Down,Up,Body>: Up must return the channels Down returns (their sum enters Body)");

  struct cache {
    typename Down::cache down;
    [[no_unique_address]] typename Up::cache up;
    typename Body::cache body;
  };

  /// Body(Down(low) + Up(high)); high is ignored without an up path.
  tensor_type forward(const tensor_type& low, const tensor_type* high, context& ctx) {
    tensor_type s = down_.forward(low, ctx);
    if constexpr (has_up) s = sum(s, up_.forward(checked_high(high), ctx));
    return body_.forward(s, ctx);
  }
  tensor_type forward(const tensor_type& low, const tensor_type* high, context& ctx, cache& c) {
    tensor_type s = down_.forward(low, ctx, c.down);
    if constexpr (has_up) s = sum(s, up_.forward(checked_high(high), ctx, c.up));
    return body_.forward(s, ctx, c.body);
  }
  /// {dL/dlow, dL/dhigh} (dhigh empty without an up path).
  std::pair<tensor_type, tensor_type> backward(cache& c, const tensor_type& dy) {
    tensor_type ds = body_.backward(c.body, dy);
    tensor_type dhigh;
    if constexpr (has_up) dhigh = up_.backward(c.up, ds);
    tensor_type dlow = down_.backward(c.down, ds);
    c = cache{};
    return {std::move(dlow), std::move(dhigh)};
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    down_.for_each_parameter(v, prefix);
    if constexpr (has_up) up_.for_each_parameter(v, prefix);
    body_.for_each_parameter(v, prefix);
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    down_.for_each_buffer(v, prefix);
    if constexpr (has_up) up_.for_each_buffer(v, prefix);
    body_.for_each_buffer(v, prefix);
  }
  /// Calls v on the down path, the up path (if any) and the body (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    v(down_);
    if constexpr (has_up) v(up_);
    v(body_);
  }

  Down& down() { return down_; }
  Up& up() requires has_up { return up_; }
  Body& body() { return body_; }

 private:
  static const tensor_type& checked_high(const tensor_type* high) {
    check<value_error>(high != nullptr, "rev::Fusion: this level has an up path but was given no high input");
    return *high;
  }
  // Down(low) + Up(high), a new tensor: Down may return low itself (an identity).
  static tensor_type sum(const tensor_type& d, const tensor_type& u) {
    check<shape_error>(d.shape() == u.shape(), "rev::Fusion: the down path returns extents ", d.shape(),
                       " but the up path ", u.shape(), " (RevCol needs H and W multiples of 32)");
    return ops::add(d, u);
  }

  Down down_;
  [[no_unique_address]] Up up_;
  Body body_;
};

}  // namespace rev
