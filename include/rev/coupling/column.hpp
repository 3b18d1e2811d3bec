// rev::Column<M, Fuse>: the multi-level reversible unit of RevCol (Cai et al., ICLR 2023, eq. 3)
//
//   x_t = F_t(x_{t-1}, x_{t-m+1}) + gamma_t * x_{t-m}        inverse: x_{t-m} = (x_t - F_t(..)) / gamma_t
//
// laid out as one column of a RevCol network with M levels l = 0..M-1. The column maps the
// previous column's levels a_l to its own b_l; the stem map x rides along unchanged:
//
//   b_l = Fuse_l(low_l, high_l) + gamma_l * a_l,   low_0 = x, low_l = b_{l-1},
//                                                  high_l = a_{l+1} (none for the top level).
//
// The inverse runs top-down, a_{M-1} first, because each level's high input is the previous
// column's reconstructed level above. A level may also read the previous column's top level
// a_{M-1} (RevCol-H's level 0, whose sum gains Up2(a_3)); it is reconstructed first, so the
// inverse order holds. gamma_l is learnable and channel-wise ([1, C_l, 1, 1], as
// RevCol stores it); before every
// forward (train or eval; not the recompute of a walk back) it is clamped in place to |gamma| >= 1e-3 keeping its sign
// (RevCol's safeguard for the division in the inverse; an exactly zero gamma becomes +1e-3 instead of staying 0).
//
// Fuse<l> is a two-input layer: forward(low, high, ctx[, cache]) where high is nullptr for
// the top level, backward(cache, dy) -> {dlow, dhigh}; it states low_channels, high_channels
// and out_channels. A Fuse<l> that also states top_channels reads the top level as a third
// input: forward(low, high, top, ctx[, cache]), backward(cache, dy) -> {dlow, dhigh, dtop}.
// rev::Fusion (graph/fusion.hpp) builds one from a down path, up paths and a body.
//
// Column<M, Fuse, column_kind::first> is a network's first column: it reads the stem map x alone,
// its previous levels being zero (RevCol's first column scales zeros: b_l = Fuse_l(low_l, -)),
// so its inverse is exact and its gammas get no gradient; Fuse<l> has no high input there.
#pragma once

#include <array>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// A two-input layer, as a Column level: (low, high) -> out.
template <class F>
concept FusionLayer = requires {
  F::low_channels;
  F::high_channels;
  F::out_channels;
  typename F::cache;
};

/// A Column level that also reads the previous column's top level.
template <class F>
concept ReadsTop = requires {
  F::top_channels;
};

namespace detail {
template <class F>
constexpr int top_channels_of() {
  if constexpr (ReadsTop<F>) return F::top_channels;
  else return any_channels;
}
// Which input of a Column level does not fit.
enum class column_input { low, high, top };
// The first level l whose low input (l - 1's output, b_{l-1}), high input (l + 1's output,
// a_{l+1}) or top input (a_{M-1}) has other channels than Fuse<l> reads, and which input.
template <int M, template <int> class Fuse, std::size_t... L>
constexpr std::pair<int, column_input> first_unfit_level(std::index_sequence<L...>) {
  constexpr int out[] = {Fuse<static_cast<int>(L)>::out_channels...};
  constexpr int low[] = {Fuse<static_cast<int>(L)>::low_channels...};
  constexpr int high[] = {Fuse<static_cast<int>(L)>::high_channels...};
  constexpr int top[] = {top_channels_of<Fuse<static_cast<int>(L)>>()...};
  for (std::size_t l = 0; l < sizeof...(L); ++l) {
    if (l > 0 && !channels_match(low[l], out[l - 1])) return {static_cast<int>(l), column_input::low};
    if (l + 1 < sizeof...(L) && !channels_match(high[l], out[l + 1])) return {static_cast<int>(l), column_input::high};
    if (!channels_match(top[l], out[M - 1])) return {static_cast<int>(l), column_input::top};
  }
  return {-1, column_input::low};
}
template <int M, template <int> class Fuse>
inline constexpr std::pair<int, column_input> column_unfit = first_unfit_level<M, Fuse>(std::make_index_sequence<M>{});
}  // namespace detail

/// Level l's low input has level l-1's channels, its high input level l+1's, a top input the top
/// level's.
template <int M, template <int> class Fuse>
concept ColumnCompatible = detail::column_unfit<M, Fuse>
.first < 0;

/// Named in the compile error of a Column whose level L reads another channel count than its
/// neighbour returns: Column_level<L>::reads_low<c>::but_level_below_returns<c'> (or high/above,
/// top/top_level).
template <int L>
struct Column_level {
  template <int Reads>
  struct reads_low {
    template <int Returns>
    struct but_level_below_returns;
  };
  template <int Reads>
  struct reads_high {
    template <int Returns>
    struct but_level_above_returns;
  };
  template <int Reads>
  struct reads_top {
    template <int Returns>
    struct but_top_level_returns;
  };
};

namespace detail {
// signatures_fit, or (an incomplete type) the first level of a Column that does not fit.
template <int M, template <int> class Fuse>
constexpr auto column_check() {
  constexpr auto bad = column_unfit<M, Fuse>;
  if constexpr (bad.first < 0) {
    return std::type_identity<signatures_fit>{};
  } else if constexpr (bad.second == column_input::top) {
    return std::type_identity<typename Column_level<bad.first>::template reads_top<
        top_channels_of<Fuse<bad.first>>()>::template but_top_level_returns<Fuse<M - 1>::out_channels>>{};
  } else if constexpr (bad.second == column_input::high) {
    return std::type_identity<typename Column_level<bad.first>::template reads_high<
        Fuse<bad.first>::high_channels>::template but_level_above_returns<Fuse<bad.first + 1>::out_channels>>{};
  } else {
    return std::type_identity<typename Column_level<bad.first>::template reads_low<
        Fuse<bad.first>::low_channels>::template but_level_below_returns<Fuse<bad.first - 1>::out_channels>>{};
  }
}
}  // namespace detail

namespace detail {
// The fusions Fuse<l> of a column, rebound to element type T2 and backend B2.
template <template <int> class Fuse, class T2, class B2>
struct rebound_fuse {
  template <int L>
  using type = rebind_t<Fuse<L>, T2, B2>;
};
}  // namespace detail

/// Where a Column stands: `next` maps the previous column's levels; `first` starts from the
/// stem map alone (its previous levels are zero: b_l = Fuse_l(low_l) + gamma_l * 0).
enum class column_kind { next, first };

template <int M, template <int> class Fuse, column_kind Kind = column_kind::next>
class Column {
  static_assert(M >= 1, "rev::Column<M,Fuse>: needs at least one level");
  static_assert((FusionLayer<Fuse<0>>),
                "rev::Column<M,Fuse>: Fuse<l> must be a two-input layer (low_channels, "
                "high_channels, out_channels, cache)");
  // A level that does not fit makes this an error naming it (sizeof of an incomplete type).
  static_assert(sizeof(typename decltype(detail::column_check<M, Fuse>())::type) > 0);
  template <std::size_t... L>
  static auto fuse_tuple(std::index_sequence<L...>) -> std::tuple<Fuse<static_cast<int>(L)>...>;
  using fuses = decltype(fuse_tuple(std::make_index_sequence<M>{}));
  template <class... Ts>
  static auto caches_of(std::tuple<Ts...>*) -> std::tuple<typename Ts::cache...>;
  using fuse_caches = decltype(caches_of(static_cast<fuses*>(nullptr)));
  static constexpr bool first = Kind == column_kind::first;

 public:
  using value_type = typename Fuse<0>::value_type;
  using backend = typename Fuse<0>::backend;
  // Itself for its own element type and backend (an alias of Fuse is another template).
  template <class T2, class B2>
  using rebind = std::conditional_t<std::same_as<T2, value_type> && std::same_as<B2, backend>, Column,
                                    Column<M, detail::rebound_fuse<Fuse, T2, B2>::template type, Kind>>;
  static constexpr bool is_coupling = true;
  static_assert(std::same_as<backend, cpu>,
                "rev::Column<M,Fuse>: CPU-only for now (its levels are host tensors); Fuse<l> must run on rev::cpu");
  using tensor_type = Tensor<value_type, backend>;
  using param_type = Param<value_type, backend>;
  using output_type = Tensors<value_type, M + 1, backend>;                 // {x, b_0, ..., b_{M-1}}
  using input_type = std::conditional_t<first, tensor_type, output_type>;  // x, or {x, a_0, ..., a_{M-1}}
  static constexpr double min_gamma = 1e-3;
  template <int L>
  static constexpr int channels = Fuse<L>::out_channels;
  static constexpr signature<M + 1> out_signature(const signature<first ? 1 : M + 1>& reaching) {
    signature<M + 1> s{};
    s[0] = reaching[0];
    [&]<std::size_t... L>(std::index_sequence<L...>) {
      ((s[L + 1] = {layout::map, Fuse<static_cast<int>(L)>::out_channels}), ...);
    }
    (std::make_index_sequence<M>{});
    return s;
  }

  struct cache {
    fuse_caches fuse;
    input_type a;  // gamma's gradient reads the previous column's levels
  };

  /// gamma_l initialised to `gamma0` (RevCol: 0.5) in every channel.
  explicit Column(double gamma0 = 0.5) {
    each_level([&](auto, auto l) {
      gamma_[l] = param_type({1, channels<decltype(l)::value>, 1, 1});
      gamma_[l].value.fill(static_cast<value_type>(gamma0));
    });
  }

  output_type forward(const input_type& a, context& ctx) { return run(a, ctx, nullptr); }
  output_type forward(const input_type& a, context& ctx, cache& c) { return run(a, ctx, &c); }

  input_type backward(cache& c, const output_type& db) {
    input_type da = start(db[0]);
    tensor_type u;  // total gradient reaching b_l, top-down
    each_level_down([&](auto& fuse, auto l) {
      const std::size_t L = l;
      tensor_type ul = L + 1 < M ? accumulated(db[L + 1], u) : db[L + 1];
      level_grads g = fuse_backward(fuse, std::get<L>(c.fuse), ul);
      if constexpr (!first) level_backward(L, ul, c.a[L + 1], da);
      pass_down(L, std::move(g), da, u);
    });
    c = cache{};
    return da;
  }

  input_type inverse(const output_type& b, context& ctx) {
    input_type a = start(b[0]);
    if constexpr (!first) {
      each_level_down([&](auto& fuse, auto l) {
        const std::size_t L = l;
        a[L + 1] = unscale(L, b[L + 1], fuse_forward(fuse, b[L], a, L, ctx));
      });
    }
    return a;
  }

  reconstructed<input_type> backward_reversible(const output_type& b, const output_type& db) {
    context ctx = recompute_context();
    input_type a = start(b[0]), da = start(db[0]);
    tensor_type u;
    each_level_down([&](auto& fuse, auto l) {  // one evaluation of Fuse_l: reconstruction and gradient
      const std::size_t L = l;
      typename std::remove_cvref_t<decltype(fuse)>::cache fc;
      tensor_type f = fuse_forward(fuse, b[L], a, L, ctx, fc);
      if constexpr (!first) a[L + 1] = unscale(L, b[L + 1], f);
      tensor_type ul = L + 1 < M ? accumulated(db[L + 1], u) : db[L + 1];
      level_grads g = fuse_backward(fuse, fc, ul);
      if constexpr (!first) level_backward(L, ul, a[L + 1], da);
      pass_down(L, std::move(g), da, u);
    });
    return {std::move(a), std::move(da)};
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    for (int l = 0; l < M; ++l) v(join_name(prefix, "alpha" + std::to_string(l)), gamma_[static_cast<std::size_t>(l)]);
    each_level(
        [&](auto& fuse, auto l) { fuse.for_each_parameter(v, join_name(prefix, "level" + std::to_string(l()))); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each_level([&](auto& fuse, auto l) { fuse.for_each_buffer(v, join_name(prefix, "level" + std::to_string(l()))); });
  }
  /// Calls v(fuse) for each level's block (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    each_level([&](auto& fuse, auto) { v(fuse); });
  }

  /// gamma_l. A first column has them too (RevCol stores them), with gradient zero: they
  /// multiply zeros.
  param_type& gamma(int l) { return gamma_[static_cast<std::size_t>(l)]; }
  template <int L>
  auto& level() {
    return std::get<L>(fuses_);
  }

 private:
  // The state a column's input starts from: x alone (first), or {x, -, ..., -}.
  static input_type start(const tensor_type& x) {
    if constexpr (first) {
      return x;
    } else {
      input_type a;
      a[0] = x;
      return a;
    }
  }
  static tensor_type& stem(input_type& a) {
    if constexpr (first) return a;
    else return a[0];
  }
  static const tensor_type& stem(const input_type& a) {
    if constexpr (first) return a;
    else return a[0];
  }
  // Level l's high input: the previous column's level l + 1 (none at the top, none in a first
  // column).
  static const tensor_type* high(const input_type& a, std::size_t l) {
    if constexpr (first) return nullptr;
    else return l + 1 < M ? &a[l + 2] : nullptr;
  }
  // Fuse_l(low, high[, top]), the top input being the previous column's top level a_{M-1}.
  template <class F, class... Cache>
  static tensor_type fuse_forward(F& fuse, const tensor_type& low, const input_type& a, std::size_t l, context& ctx,
                                  Cache&... c) {
    if constexpr (!ReadsTop<F>) return fuse.forward(low, high(a, l), ctx, c...);
    else if constexpr (first) return fuse.forward(low, high(a, l), nullptr, ctx, c...);
    else return fuse.forward(low, high(a, l), &a[M], ctx, c...);
  }
  // The gradients of Fuse_l with respect to its inputs (top empty where it reads none).
  struct level_grads {
    tensor_type low, high, top;
  };
  template <class F>
  static level_grads fuse_backward(F& fuse, typename F::cache& c, const tensor_type& dy) {
    if constexpr (ReadsTop<F>) {
      auto [dlow, dhigh, dtop] = fuse.backward(c, dy);
      return {std::move(dlow), std::move(dhigh), std::move(dtop)};
    } else {
      auto [dlow, dhigh] = fuse.backward(c, dy);
      return {std::move(dlow), std::move(dhigh), {}};
    }
  }
  // Level l's input gradients: the high and top ones to the previous column's levels, the low
  // one to the stem map (l = 0) or as u, on to level l - 1.
  static void pass_down(std::size_t l, level_grads g, input_type& da, tensor_type& u) {
    if constexpr (!first) {
      if (!g.high.empty()) ops::accumulate(da[l + 2], g.high);
      if (!g.top.empty()) ops::accumulate(da[M], g.top);
    }
    if (l == 0) ops::accumulate(stem(da), g.low);
    else u = std::move(g.low);
  }

  // gamma <- sign(gamma) * max(|gamma|, 1e-3), zero counted as positive.
  void clamp_gamma() {
    for (auto& g : gamma_)
      for (value_type& v : g.value)
        if (std::abs(v) < min_gamma) v = static_cast<value_type>(v < 0 ? -min_gamma : min_gamma);
  }

  // gamma_l * a (channel-wise)
  tensor_type scale(std::size_t l, const tensor_type& t, bool inverse) const {
    const auto& g = gamma_[l].value;
    check<shape_error>(t.rank() == 4 && t.size(1) == static_cast<index_t>(g.numel()), "rev::Column: level ", l,
                       " has extents ", t.shape(), ", expected [N, ", g.numel(), ", H, W]");
    tensor_type out = tensor_type::uninitialized(t.shape());
    const index_t C = t.size(1), hw = t.size(2) * t.size(3);
    for (index_t n = 0; n < t.size(0); ++n)
      for (index_t ch = 0; ch < C; ++ch) {
        const value_type s = inverse ? value_type(1) / g.data()[ch] : g.data()[ch];
        const value_type* src = t.data() + (n * C + ch) * hw;
        value_type* dst = out.data() + (n * C + ch) * hw;
        for (index_t i = 0; i < hw; ++i) dst[i] = src[i] * s;
      }
    return out;
  }
  // a_l = (b_l - f) / gamma_l, with the reciprocal of gamma as in the reference
  tensor_type unscale(std::size_t l, const tensor_type& b, const tensor_type& f) const {
    return scale(l, ops::sub(b, f), true);
  }

  // The gradient of b_l = ... + gamma_l * a_l with respect to gamma_l and a_l.
  void level_backward(std::size_t l, const tensor_type& ul, const tensor_type& al, input_type& da) {
    auto& g = gamma_[l];
    const index_t C = ul.size(1), hw = ul.size(2) * ul.size(3);
    for (index_t n = 0; n < ul.size(0); ++n)
      for (index_t ch = 0; ch < C; ++ch) {
        const value_type* pu = ul.data() + (n * C + ch) * hw;
        const value_type* pa = al.data() + (n * C + ch) * hw;
        double s = 0;
        for (index_t i = 0; i < hw; ++i) s += static_cast<double>(pu[i]) * pa[i];
        g.grad.data()[ch] += static_cast<value_type>(s);
      }
    ops::accumulate(da[l + 1], scale(l, ul, false));
  }

  static tensor_type accumulated(const tensor_type& a, const tensor_type& b) { return b.empty() ? a : ops::add(a, b); }

  output_type run(const input_type& a, context& ctx, cache* c) {
    if (ctx.mode != phase::recompute) clamp_gamma();
    output_type b;
    b[0] = stem(a);
    each_level([&](auto& fuse, auto l) {
      const std::size_t L = l;
      tensor_type f =
          c ? fuse_forward(fuse, b[L], a, L, ctx, std::get<L>(c->fuse)) : fuse_forward(fuse, b[L], a, L, ctx);
      if constexpr (first) {
        b[L + 1] = std::move(f);  // + gamma_l * 0
      } else {
        tensor_type s = scale(L, a[L + 1], false);
        check<shape_error>(f.shape() == s.shape(), "rev::Column: level ", L, " computes extents ", f.shape(),
                           " but the previous column's level has extents ", s.shape());
        ops::add_(s, f);
        b[L + 1] = std::move(s);
      }
    });
    if constexpr (!first) {
      if (c) c->a = a;
    }
    return b;
  }

  template <class Fn>
  void each_level(Fn&& fn) {
    [&]<std::size_t... L>(std::index_sequence<L...>) {
      (fn(std::get<L>(fuses_), std::integral_constant<std::size_t, L>{}), ...);
    }
    (std::make_index_sequence<M>{});
  }
  template <class Fn>
  void each_level_down(Fn&& fn) {
    [&]<std::size_t... L>(std::index_sequence<L...>) {
      (fn(std::get<M - 1 - L>(fuses_), std::integral_constant<std::size_t, M - 1 - L>{}), ...);
    }
    (std::make_index_sequence<M>{});
  }

  fuses fuses_;
  std::array<param_type, M> gamma_;
};

}  // namespace rev
