// rev::Additive<F, G>: the additive coupling of RevNet (Gomez et al. 2017, eqs. (1)-(2)):
//   y1 = x1 + F(x2),  y2 = x2 + G(y1);     inverse: x2 = y2 - G(y1),  x1 = y1 - F(x2).
// F and G need not be invertible; they must be deterministic given the phase (BatchNorm
// statistics and dropout masks are replayed in the recompute phase).
//
// With a shortcut S (RevNet's unit that opens a stage, where the width or the resolution
// changes): y1 = S(x1) + F(x2), y2 = S(x2) + G(y1), each half through its own instance of S
// (named "shortcut.0" and "shortcut.1"). That block is not invertible: it is an ordinary block,
// checkpointed in a reversible Chain.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/coupling/halves.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// The default shortcut of Additive: none, y1 = x1 + F(x2) (an invertible coupling).
struct no_shortcut : no_parameters {
  struct cache {};
};

/// F must map x2 to x1's signature (what G takes, y1 = x1 + F(x2)) and G y1 to x2's (what F
/// takes, y2 = x2 + G(y1)).
template <class F, class G>
concept AdditiveCompatible = fits(own_out_signature_of<F>(), in_signature_of<G>()) &&
    fits(own_out_signature_of<G>(), in_signature_of<F>());

/// In the split layouts the two halves have the same width: F keeps it.
template <class F>
concept MapsHalfToHalf = fits(own_out_signature_of<F>(), in_signature_of<F>());

/// Named in the compile errors of an Additive whose F or G does not fit (signatures of
/// core/signature.hpp): F maps x2 to what must be x1 (G's input); G maps y1 to what must be x2
/// (F's input); with a channel split, F must keep the width of a half.
template <class Taken>
struct Additive_F_maps {
  template <class Returned>
  struct to {
    template <class GTakes>
    struct but_G_takes;
    struct but_the_split_halves_have_one_width;
  };
};
template <class Taken>
struct Additive_G_maps {
  template <class Returned>
  struct to {
    template <class FTakes>
    struct but_F_takes;
    template <class FReturns>
    struct but_F_returns;  // with a shortcut, y1 and y2 have F's output width
  };
};

namespace detail {
// signatures_fit, or (an incomplete type) F or G of an Additive that does not fit.
template <class F, class G, bool Split, bool Shortcut>
constexpr auto additive_check() {
  constexpr auto f_in = in_signature_of<F>(), f_out = own_out_signature_of<F>();
  constexpr auto g_in = in_signature_of<G>(), g_out = own_out_signature_of<G>();
  using f_maps = typename Additive_F_maps<signature_name_t<f_in>>::template to<signature_name_t<f_out>>;
  using g_maps = typename Additive_G_maps<signature_name_t<g_in>>::template to<signature_name_t<g_out>>;
  if constexpr (!fits(f_out, g_in))
    return std::type_identity<typename f_maps::template but_G_takes<signature_name_t<g_in>>>{};
  else if constexpr (!Shortcut && !fits(g_out, f_in))
    return std::type_identity<typename g_maps::template but_F_takes<signature_name_t<f_in>>>{};
  else if constexpr (Shortcut && !fits(g_out, f_out))
    return std::type_identity<typename g_maps::template but_F_returns<signature_name_t<f_out>>>{};
  else if constexpr (Split && !Shortcut && !fits(f_out, f_in))
    return std::type_identity<typename f_maps::but_the_split_halves_have_one_width>{};
  else return std::type_identity<signatures_fit>{};
}
}  // namespace detail

template <class F, class G, coupling_layout Layout = coupling_layout::halves, class Shortcut = no_shortcut>
class Additive {
  static constexpr bool has_shortcut = !std::same_as<Shortcut, no_shortcut>;
  static_assert(std::same_as<typename F::value_type, typename G::value_type> &&
                    std::same_as<typename F::backend, typename G::backend>,
                "rev::Additive<F,G>: F and G must have the same element type and backend");
  // F or G not fitting makes this an error naming it (sizeof of an incomplete type).
  static_assert(sizeof(typename decltype(detail::additive_check<F, G, Layout != coupling_layout::streams,
                                                                has_shortcut>())::type) > 0);

 public:
  template <class T2, class B2>
  using rebind = Additive<rebind_t<F, T2, B2>, rebind_t<G, T2, B2>, Layout, rebind_t<Shortcut, T2, B2>>;
  using value_type = typename F::value_type;
  using backend = typename F::backend;
  static constexpr bool is_coupling = !has_shortcut;
  using tensor_type = Tensor<value_type, backend>;
  static constexpr bool split = Layout != coupling_layout::streams;
  using input_type = std::conditional_t<split, tensor_type, Tensors<value_type, 2, backend>>;
  using output_type = input_type;
  /// The width of x1 and x2 (of y1 and y2: out_half_channels).
  static constexpr int half_channels = in_channels_of<F>() != any_channels ? in_channels_of<F>()
                                       : has_shortcut                      ? any_channels
                                                                           : out_channels_of<F>();
  static constexpr int out_half_channels = has_shortcut ? out_channels_of<F>() : half_channels;
  static constexpr int in_channels = split && half_channels != any_channels ? 2 * half_channels : half_channels;
  static constexpr int out_channels =
      split && out_half_channels != any_channels ? 2 * out_half_channels : out_half_channels;
  static constexpr layout in_layout = split ? layout::map : in_layout_of<F>() & in_layout_of<G>(),
                          out_layout = in_layout;

  struct cache {
    typename F::cache f;
    typename G::cache g;
    std::array<typename Shortcut::cache, has_shortcut ? 2 : 0> s;
  };

  Additive() = default;
  Additive(F f, G g) : f_(std::move(f)), g_(std::move(g)) {}

  output_type forward(const input_type& x, context& ctx) {
    auto [x1, x2] = unpack(x, half_channels, "input");
    const tensor_type s1 = skip(0, x1, ctx, nullptr);
    tensor_type y1 = ops::add(s1, of_f(f_.forward(x2, ctx), x2, s1));
    const tensor_type s2 = skip(1, x2, ctx, nullptr);
    tensor_type y2 = ops::add(s2, of_g(g_.forward(y1, ctx), y1, s2));
    return pack(y1, y2);
  }

  output_type forward(const input_type& x, context& ctx, cache& c) {
    auto [x1, x2] = unpack(x, half_channels, "input");
    const tensor_type s1 = skip(0, x1, ctx, &c);
    tensor_type y1 = ops::add(s1, of_f(f_.forward(x2, ctx, c.f), x2, s1));
    const tensor_type s2 = skip(1, x2, ctx, &c);
    tensor_type y2 = ops::add(s2, of_g(g_.forward(y1, ctx, c.g), y1, s2));
    return pack(y1, y2);
  }

  /// forward that also reports log|det dy/dx| per sample: 0, additive couplings preserve volume.
  output_type forward(const input_type& x, context& ctx, tensor_type& log_det) requires(!has_shortcut) {
    output_type y = forward(x, ctx);
    log_det = tensor_type({batch_of(x)});
    return y;
  }

  input_type backward(cache& c, const output_type& dy) {
    auto [dy1, dy2] = unpack(dy, out_half_channels, "gradient");
    tensor_type dz1 = ops::add(dy1, g_.backward(c.g, dy2));  // total gradient reaching y1
    tensor_type dx2 = ops::add(skip_backward(1, c, dy2), f_.backward(c.f, dz1));
    return pack(skip_backward(0, c, dz1), dx2);
  }

  input_type inverse(const output_type& y, context& ctx) requires(!has_shortcut) {
    auto [y1, y2] = unpack(y, half_channels, "output");
    tensor_type x2 = ops::sub(y2, of_g(g_.forward(y1, ctx), y1, y2));
    tensor_type x1 = ops::sub(y1, of_f(f_.forward(x2, ctx), x2, y1));
    return pack(x1, x2);
  }

  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) requires(!has_shortcut) {
    context ctx = recompute_context();
    auto [y1, y2] = unpack(y, half_channels, "output");
    auto [dy1, dy2] = unpack(dy, half_channels, "gradient");
    tensor_type x2, dz1;
    {  // undo G: x2 = y2 - G(y1), one evaluation of G serving both
      typename G::cache cg;
      x2 = ops::sub(y2, of_g(g_.forward(y1, ctx, cg), y1, y2));
      dz1 = ops::add(dy1, g_.backward(cg, dy2));
    }
    typename F::cache cf;  // undo F: x1 = y1 - F(x2)
    tensor_type x1 = ops::sub(y1, of_f(f_.forward(x2, ctx, cf), x2, y1));
    tensor_type dx2 = ops::add(dy2, f_.backward(cf, dz1));
    return {pack(x1, x2), pack(dz1, dx2)};
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    f_.for_each_parameter(v, child_prefix<F>(prefix, "f"));  // nothing for an Unnamed F
    g_.for_each_parameter(v, child_prefix<G>(prefix, "g"));
    for (std::size_t h = 0; h < s_.size(); ++h)
      s_[h].for_each_parameter(v, join_name(prefix, "shortcut." + std::to_string(h)));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    f_.for_each_buffer(v, child_prefix<F>(prefix, "f"));
    g_.for_each_buffer(v, child_prefix<G>(prefix, "g"));
    for (std::size_t h = 0; h < s_.size(); ++h)
      s_[h].for_each_buffer(v, join_name(prefix, "shortcut." + std::to_string(h)));
  }
  /// Calls v on F, G and the shortcuts (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    v(f_);
    v(g_);
    for (auto& s : s_) v(s);
  }

  F& f() { return f_; }
  G& g() { return g_; }

 private:
  // S(x) of half h (x itself without a shortcut), keeping S's record in c when given.
  tensor_type skip(std::size_t h, const tensor_type& x, context& ctx, cache* c) {
    if constexpr (!has_shortcut) return x;
    else return c ? s_[h].forward(x, ctx, c->s[h]) : s_[h].forward(x, ctx);
  }
  tensor_type skip_backward(std::size_t h, cache& c, const tensor_type& dy) {
    if constexpr (!has_shortcut) return dy;
    else return s_[h].backward(c.s[h], dy);
  }

  // (x1, x2) of the layout, halves of width `half`; both are fresh tensors or handles of the
  // stream tensors.
  static std::array<tensor_type, 2> unpack(const input_type& x, int half_width, const char* what) {
    if constexpr (!split) return {x[0], x[1]};
    else return detail::split_halves<Layout>(x, half_width, "rev::Additive<F,G>", what);
  }
  static output_type pack(const tensor_type& y1, const tensor_type& y2) {
    if constexpr (!split) return {y1, y2};
    else return detail::join_halves<Layout>(y1, y2);
  }

  // F(x2) is added to x1 (G(y1) to x2): a result of other extents is the named function's fault.
  static const tensor_type& of_f(const tensor_type& fx, const tensor_type& x, const tensor_type& target) {
    return added("F", fx, x, target, "x1");
  }
  static const tensor_type& of_g(const tensor_type& gx, const tensor_type& x, const tensor_type& target) {
    return added("G", gx, x, target, "x2");
  }
  static const tensor_type& added(const char* fn, const tensor_type& result, const tensor_type& x,
                                  const tensor_type& target, const char* what) {
    check<shape_error>(result.shape() == target.shape(), "rev::Additive<F,G>: ", fn, " maps extents ", x.shape(),
                       " to ", result.shape(), ", but it is added to ", what, " of extents ", target.shape());
    return result;
  }

  static index_t batch_of(const input_type& x) {
    if constexpr (split) return x.size(0);
    else return x[0].size(0);
  }

  F f_;
  G g_;
  std::array<Shortcut, has_shortcut ? 2 : 0> s_;
};

}  // namespace rev
