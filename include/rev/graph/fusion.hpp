// rev::Fusion<Down, Up, Body, Top>: a two-input layer y = Body(Down(low) + Up(high)), a level of a
// rev::Column. RevCol's level l (Cai et al., ICLR 2023, Sec. 2.2 and Fig. 2c): the level below
// in this column arrives through the down path (a strided convolution), the level above in the
// previous column through the up path (channel reschedule, then up-sampling), and the sum runs
// through the level's ConvNeXt blocks. Up = rev::no_input: a level with no high input (the top
// level, and every level of a first column); `high` is then ignored.
//
// Top, when given, makes it a three-input layer reading the previous column's top level too:
// y = Body(Down(low) + Up(high) + Top(top)), summed in that order: RevCol-H's level 0, whose
// second up path ("up2") brings the top level down by 8.
//
// Children keep their own names (wrap them in rev::Named); Fusion adds no key.
#pragma once

#include <string>
#include <tuple>
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

namespace detail {
// top_channels, stated only by a Fusion with a top input (rev::ReadsTop).
template <class Top>
struct fusion_top {
  static constexpr int top_channels = in_channels_of<Top>();
};
template <>
struct fusion_top<no_input> {};
}  // namespace detail

template <class Down, class Up, class Body, class Top = no_input>
class Fusion : public detail::fusion_top<Top> {
  static constexpr bool has_up = !std::same_as<Up, no_input>;
  static constexpr bool has_top = !std::same_as<Top, no_input>;

 public:
  template <class T2, class B2>
  using rebind = Fusion<rebind_t<Down, T2, B2>, rebind_t<Up, T2, B2>, rebind_t<Body, T2, B2>, rebind_t<Top, T2, B2>>;
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
  static_assert(!has_top || channels_match(out_channels_of<Down>(), out_channels_of<Top>()),
                "rev::Fusion<Down,Up,Body,Top>: Top must return the channels Down returns (their sum enters Body)");

  struct cache {
    typename Down::cache down;
    [[no_unique_address]] typename Up::cache up;
    [[no_unique_address]] typename Top::cache top;
    typename Body::cache body;
  };

  /// Body(Down(low) + Up(high)); high is ignored without an up path.
  tensor_type forward(const tensor_type& low, const tensor_type* high, context& ctx) requires(!has_top) {
    return run(low, high, nullptr, ctx, nullptr);
  }
  tensor_type forward(const tensor_type& low, const tensor_type* high, context& ctx, cache& c) requires(!has_top) {
    return run(low, high, nullptr, ctx, &c);
  }
  /// Body(Down(low) + Up(high) + Top(top)).
  tensor_type forward(const tensor_type& low, const tensor_type* high, const tensor_type* top,
                      context& ctx) requires has_top {
    return run(low, high, top, ctx, nullptr);
  }
  tensor_type forward(const tensor_type& low, const tensor_type* high, const tensor_type* top, context& ctx,
                      cache& c) requires has_top {
    return run(low, high, top, ctx, &c);
  }
  /// {dL/dlow, dL/dhigh} (dhigh empty without an up path), and dL/dtop with a top input.
  auto backward(cache& c, const tensor_type& dy) {
    tensor_type ds = body_.backward(c.body, dy);
    tensor_type dhigh, dtop;
    if constexpr (has_up) dhigh = up_.backward(c.up, ds);
    if constexpr (has_top) dtop = top_.backward(c.top, ds);
    tensor_type dlow = down_.backward(c.down, ds);
    c = cache{};
    if constexpr (has_top) return std::tuple{std::move(dlow), std::move(dhigh), std::move(dtop)};
    else return std::pair{std::move(dlow), std::move(dhigh)};
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    down_.for_each_parameter(v, prefix);
    if constexpr (has_up) up_.for_each_parameter(v, prefix);
    if constexpr (has_top) top_.for_each_parameter(v, prefix);
    body_.for_each_parameter(v, prefix);
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    down_.for_each_buffer(v, prefix);
    if constexpr (has_up) up_.for_each_buffer(v, prefix);
    if constexpr (has_top) top_.for_each_buffer(v, prefix);
    body_.for_each_buffer(v, prefix);
  }
  /// Calls v on the down path, the up paths (if any) and the body (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    v(down_);
    if constexpr (has_up) v(up_);
    if constexpr (has_top) v(top_);
    v(body_);
  }

  Down& down() { return down_; }
  Up& up() requires has_up { return up_; }
  Top& top() requires has_top { return top_; }
  Body& body() { return body_; }

 private:
  tensor_type run(const tensor_type& low, const tensor_type* high, const tensor_type* top, context& ctx, cache* c) {
    tensor_type s = c ? down_.forward(low, ctx, c->down) : down_.forward(low, ctx);
    if constexpr (has_up) {
      const tensor_type& h = checked(high, "an up path", "high");
      s = sum(s, c ? up_.forward(h, ctx, c->up) : up_.forward(h, ctx), "up path");
    }
    if constexpr (has_top) {
      const tensor_type& t = checked(top, "a top path", "top");
      s = sum(s, c ? top_.forward(t, ctx, c->top) : top_.forward(t, ctx), "top path");
    }
    return c ? body_.forward(s, ctx, c->body) : body_.forward(s, ctx);
  }
  static const tensor_type& checked(const tensor_type* input, const char* path, const char* which) {
    check<value_error>(input != nullptr, "rev::Fusion: this level has ", path, " but was given no ", which, " input");
    return *input;
  }
  // Down(low) + Up(high) [+ Top(top)], a new tensor: Down may return low itself (an identity).
  static tensor_type sum(const tensor_type& d, const tensor_type& u, const char* path) {
    check<shape_error>(d.shape() == u.shape(), "rev::Fusion: the down path returns extents ", d.shape(), " but the ",
                       path, " ", u.shape(), " (RevCol needs H and W multiples of 32)");
    return ops::add(d, u);
  }

  Down down_;
  [[no_unique_address]] Up up_;
  [[no_unique_address]] Top top_;
  Body body_;
};

}  // namespace rev
