// rev::Silo: the RevSilo of RevBiFPN (Chiley et al., MLSys 2023, eqs. 1-18 and Appendix C), a
// reversible multi-input multi-output coupling over the levels x_0 (highest resolution) ..
// x_{n-1} of a feature pyramid. Two halves, applied in sequence:
//
//   down:  z_0 = x_0,   z_j = g_j(x_j, sum_{i<j} F_{i->j}(x_i))       (F reads the silo INPUT)
//   up:    y_{n-1} = z_{n-1},   y_j = g_j(z_j, sum_{i>j} G_{i->j}(z_i))   (G reads the DOWN output)
//
// with g_j an element-wise invertible merge (addition by default). Inverse: undo the up half
// from j = n-2 down to 0, then the down half from j = 1 upward. A growing silo takes n-1 levels
// and creates level n-1 as z_{n-1} = sum_{i<n-1} F_{i->n-1}(x_i); the inverse drops it.
#pragma once

#include <array>
#include <string>
#include <tuple>
#include <utility>

#include "rev/cpu.hpp"
#include "rev/ops/elementwise.hpp"

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/coupling/merge.hpp"

namespace rev {

/// The channel counts of the pyramid levels, highest resolution first.
template <int... C>
struct levels {
  static constexpr int size = sizeof...(C);
  static constexpr std::array<int, sizeof...(C)> channels{C...};
};

namespace detail {

// The (i, j) pairs of the transforms of an n-level silo, in evaluation order.
template <int N>
struct silo_pairs {
  static constexpr int count = N * (N - 1) / 2;
  // down F_{i->j}: j = 1..n-1, i = 0..j-1 (ascending: the official summation order)
  static constexpr std::array<std::pair<int, int>, count> down = [] {
    std::array<std::pair<int, int>, count> p{};
    int k = 0;
    for (int j = 1; j < N; ++j)
      for (int i = 0; i < j; ++i) p[static_cast<std::size_t>(k++)] = {i, j};
    return p;
  }();
  // up G_{i->j}: j = n-2..0, i = n-1..j+1 (lowest resolution first: the official order)
  static constexpr std::array<std::pair<int, int>, count> up = [] {
    std::array<std::pair<int, int>, count> p{};
    int k = 0;
    for (int j = N - 2; j >= 0; --j)
      for (int i = N - 1; i > j; --i) p[static_cast<std::size_t>(k++)] = {i, j};
    return p;
  }();
};

// Whether transform X (F<i, j> or G<i, j>) maps level i's channels to level j's (times the
// merge's factor).
template <class X, class Levels, class Merge, int I, int J>
constexpr bool transform_fits() {
  return channels_match(in_channels_of<X>(), Levels::channels[I]) &&
         channels_match(out_channels_of<X>(), Merge::transform_channels(Levels::channels[J]));
}

// The first pair index k of `pairs` whose transform does not fit, or -1.
template <class Levels, template <int, int> class X, class Merge, const auto& Pairs, std::size_t... K>
constexpr int first_unfit_transform(std::index_sequence<K...>) {
  int bad = -1;
  ((bad < 0 && !transform_fits<X<Pairs[K].first, Pairs[K].second>, Levels, Merge, Pairs[K].first, Pairs[K].second>()
        ? void(bad = static_cast<int>(K))
        : void()),
   ...);
  return bad;
}
template <class Levels, template <int, int> class F, class Merge, std::size_t... K>
constexpr bool down_transforms_fit(std::index_sequence<K...> k) {
  return first_unfit_transform<Levels, F, Merge, silo_pairs<Levels::size>::down>(k) < 0;
}
template <class Levels, template <int, int> class G, class Merge, std::size_t... K>
constexpr bool up_transforms_fit(std::index_sequence<K...> k) {
  return first_unfit_transform<Levels, G, Merge, silo_pairs<Levels::size>::up>(k) < 0;
}

}  // namespace detail

/// Every F_{i->j} maps level i's channels to level j's (times the merge's factor, e.g. 2 for affine).
template <class Levels, template <int, int> class F, class Merge = additive_merge>
concept SiloDownCompatible =
    detail::down_transforms_fit<Levels, F, Merge>(std::make_index_sequence<detail::silo_pairs<Levels::size>::count>{});
/// Every G_{i->j} maps level i's channels to level j's (times the merge's factor).
template <class Levels, template <int, int> class G, class Merge = additive_merge>
concept SiloUpCompatible =
    detail::up_transforms_fit<Levels, G, Merge>(std::make_index_sequence<detail::silo_pairs<Levels::size>::count>{});

/// Named in the compile error of a Silo whose transform F<I, J> or G<I, J> does not map level I's
/// channels to level J's (times the merge's factor): maps<in>::to<out>::but_levels_need<in, out>.
template <int I, int J>
struct Silo_F {
  template <int In>
  struct maps {
    template <int Out>
    struct to {
      template <int LevelI, int LevelJ>
      struct but_levels_need;
    };
  };
};
template <int I, int J>
struct Silo_G {
  template <int In>
  struct maps {
    template <int Out>
    struct to {
      template <int LevelI, int LevelJ>
      struct but_levels_need;
    };
  };
};

namespace detail {
// signatures_fit, or (an incomplete type) the first F or G of a Silo that does not fit.
template <class Levels, template <int, int> class F, template <int, int> class G, class Merge>
constexpr auto silo_check() {
  using P = silo_pairs<Levels::size>;
  constexpr auto k = std::make_index_sequence<P::count>{};
  constexpr int f = first_unfit_transform<Levels, F, Merge, P::down>(k);
  constexpr int g = first_unfit_transform<Levels, G, Merge, P::up>(k);
  if constexpr (f >= 0) {
    constexpr int i = P::down[f].first, j = P::down[f].second;
    using X = F<i, j>;
    return std::type_identity<typename Silo_F<i, j>::template maps<in_channels_of<X>()>::template to<out_channels_of<
        X>()>::template but_levels_need<Levels::channels[i], Merge::transform_channels(Levels::channels[j])>>{};
  } else if constexpr (g >= 0) {
    constexpr int i = P::up[g].first, j = P::up[g].second;
    using X = G<i, j>;
    return std::type_identity<typename Silo_G<i, j>::template maps<in_channels_of<X>()>::template to<out_channels_of<
        X>()>::template but_levels_need<Levels::channels[i], Merge::transform_channels(Levels::channels[j])>>{};
  } else {
    return std::type_identity<signatures_fit>{};
  }
}
}  // namespace detail

enum class silo_kind {
  same,  // n levels in, n levels out
  grows  // n-1 levels in, n out: the last level is created by the down half
};

/// Levels: rev::levels<c_0, ..., c_{n-1}>; F<i, j> and G<i, j>: the transform types.
/// Parameters are named as in the official RevBiFPN: F_{i->j} under "f.xform_<i>_<j>" and
/// G_{i->j} under "g.xform_<n-1-i>_<n-1-j>" (its up half runs the down code on reversed levels).
namespace detail {
// The transforms F<i, j> of a silo, rebound to element type T2 and backend B2.
template <template <int, int> class F, class T2, class B2>
struct rebound_transform {
  template <int I, int J>
  using type = rebind_t<F<I, J>, T2, B2>;
};
}  // namespace detail

template <class Levels, template <int, int> class F, template <int, int> class G, silo_kind Kind = silo_kind::same,
          class Merge = additive_merge>
class Silo {
  static constexpr int n = Levels::size;
  static constexpr int n_in = Kind == silo_kind::grows ? n - 1 : n;
  static_assert(n >= 2, "rev::Silo<Levels,F,G>: needs at least two levels");
  // A transform that does not fit makes this an error naming it and its levels (sizeof of an
  // incomplete type).
  static_assert(sizeof(typename decltype(detail::silo_check<Levels, F, G, Merge>())::type) > 0);
  static_assert(Kind == silo_kind::same || Merge::creates_levels,
                "rev::Silo<Levels,F,G>: a growing silo needs an additive merge (the new level has no input to scale)");

  using P = detail::silo_pairs<n>;
  template <std::size_t... K>
  static auto down_tuple(std::index_sequence<K...>) -> std::tuple<F<P::down[K].first, P::down[K].second>...>;
  template <std::size_t... K>
  static auto up_tuple(std::index_sequence<K...>) -> std::tuple<G<P::up[K].first, P::up[K].second>...>;
  template <class... Ts>
  static auto caches_of(std::tuple<Ts...>*) -> std::tuple<typename Ts::cache...>;
  using down_t = decltype(down_tuple(std::make_index_sequence<P::count>{}));
  using up_t = decltype(up_tuple(std::make_index_sequence<P::count>{}));
  using down_caches = decltype(caches_of(static_cast<down_t*>(nullptr)));
  using up_caches = decltype(caches_of(static_cast<up_t*>(nullptr)));
  using any_transform = std::tuple_element_t<0, down_t>;

 public:
  using value_type = typename any_transform::value_type;
  using backend = typename any_transform::backend;
  // Itself for its own element type and backend (an alias of F is another template than F).
  template <class T2, class B2>
  using rebind = std::conditional_t<std::same_as<T2, value_type> && std::same_as<B2, backend>, Silo,
                                    Silo<Levels, detail::rebound_transform<F, T2, B2>::template type,
                                         detail::rebound_transform<G, T2, B2>::template type, Kind, Merge>>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = Tensors<value_type, n_in, backend>;
  using output_type = Tensors<value_type, n, backend>;
  using levels_type = Levels;

  struct cache {
    down_caches down;
    up_caches up;
    // What a non-additive merge's backward reads: x_j, a_j = sum F, z_j, b_j = sum G.
    input_type x;
    output_type a, z, b;
  };

  output_type forward(const input_type& x, context& ctx) { return run(x, ctx, nullptr); }
  output_type forward(const input_type& x, context& ctx, cache& c) { return run(x, ctx, &c); }

  input_type backward(cache& c, const output_type& dy) {
    output_type dz = dy, db;
    for (int j = 0; j + 1 < n; ++j) std::tie(dz[j], db[j]) = Merge::backward(c.z[j], c.b[j], dy[j]);
    for_each_up([&](auto& g, auto k) {
      ops::accumulate(dz[P::up[k].first], g.backward(std::get<k>(c.up), db[P::up[k].second]));
    });
    input_type dx;
    output_type da = dz;
    for (int j = 1; j < n_in; ++j) std::tie(dx[j], da[j]) = Merge::backward(c.x[j], c.a[j], dz[j]);
    dx[0] = dz[0];
    for_each_down([&](auto& f, auto k) {
      ops::accumulate(dx[P::down[k].first], f.backward(std::get<k>(c.down), da[P::down[k].second]));
    });
    c = cache{};
    return dx;
  }

  input_type inverse(const output_type& y, context& ctx) {
    output_type z = y;
    for (int j = n - 2; j >= 0; --j) {  // eq. (4) undone top-down: z_i, i > j, are known
      tensor_type b;
      for_each_up_to(j, [&](auto& g, auto k) { ops::accumulate(b, g.forward(z[P::up[k].first], ctx)); });
      z[j] = Merge::separate(y[j], b);
    }
    input_type x;
    x[0] = z[0];
    for (int j = 1; j < n_in; ++j) {  // eq. (3) undone bottom-up: x_i, i < j, are known
      tensor_type a;
      for_each_down_to(j, [&](auto& f, auto k) { ops::accumulate(a, f.forward(x[P::down[k].first], ctx)); });
      x[j] = Merge::separate(z[j], a);
    }
    return x;
  }

  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) {
    context ctx = recompute_context();
    up_caches uc;
    down_caches dc;
    output_type z = y, dz = dy;
    for (int j = n - 2; j >= 0; --j) {  // up half: each G evaluated once, for z_j and for its gradient
      tensor_type b, db;
      for_each_up_to(j,
                     [&](auto& g, auto k) { ops::accumulate(b, g.forward(z[P::up[k].first], ctx, std::get<k>(uc))); });
      z[j] = Merge::separate(y[j], b);
      std::tie(dz[j], db) = Merge::backward(z[j], b, dy[j]);
      for_each_up_to(j, [&](auto& g, auto k) {
        ops::accumulate(dz[P::up[k].first], g.backward(std::get<k>(uc), db));
        std::get<k>(uc) = {};
      });
    }
    input_type x, dx;
    x[0] = z[0];
    dx[0] = dz[0];
    for (int j = 1; j < n; ++j) {  // down half: each F evaluated once, for x_j and for its gradient
      tensor_type a, da = dz[j];
      for_each_down_to(
          j, [&](auto& f, auto k) { ops::accumulate(a, f.forward(x[P::down[k].first], ctx, std::get<k>(dc))); });
      if (j < n_in) {
        x[j] = Merge::separate(z[j], a);
        tensor_type dxj;
        std::tie(dxj, da) = Merge::backward(x[j], a, dz[j]);
        ops::accumulate(dx[j], dxj);
      }
      for_each_down_to(j, [&](auto& f, auto k) {
        ops::accumulate(dx[P::down[k].first], f.backward(std::get<k>(dc), da));
        std::get<k>(dc) = {};
      });
    }
    return {std::move(x), std::move(dx)};
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    visit(prefix, [&](auto& t, const std::string& name) { t.for_each_parameter(v, name); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    visit(prefix, [&](auto& t, const std::string& name) { t.for_each_buffer(v, name); });
  }
  /// Calls v(transform) for each F_{i->j} and G_{i->j} (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    for_each_down([&](auto& f, auto) { v(f); });
    for_each_up([&](auto& g, auto) { v(g); });
  }

  /// The transform F_{i->j} (I < J) or G_{i->j} (I > J).
  template <int I, int J>
  auto& transform() {
    static_assert(I != J && I >= 0 && J >= 0 && I < n && J < n, "rev::Silo::transform<I,J>: no such transform");
    if constexpr (I < J) return std::get<index_of(P::down, I, J)>(down_);
    else return std::get<index_of(P::up, I, J)>(up_);
  }

 private:
  static constexpr std::size_t index_of(const std::array<std::pair<int, int>, P::count>& pairs, int i, int j) {
    for (std::size_t k = 0; k < pairs.size(); ++k)
      if (pairs[k].first == i && pairs[k].second == j) return k;
    return pairs.size();
  }

  template <class Fn>
  void for_each_down(Fn&& fn) {
    for_each_index<P::count>([&](auto k) { fn(std::get<k>(down_), k); });
  }
  template <class Fn>
  void for_each_up(Fn&& fn) {
    for_each_index<P::count>([&](auto k) { fn(std::get<k>(up_), k); });
  }
  // The transforms into one level j, in summation order.
  template <class Fn>
  void for_each_down_to(int j, Fn&& fn) {
    for_each_down([&](auto& f, auto k) {
      if (P::down[k].second == j) fn(f, k);
    });
  }
  template <class Fn>
  void for_each_up_to(int j, Fn&& fn) {
    for_each_up([&](auto& g, auto k) {
      if (P::up[k].second == j) fn(g, k);
    });
  }

  // The extents of a level whose transform sum has the given extents.
  static Shape level_shape(Shape s) {
    if (Merge::transform_channels(1) != 1) s[1] /= Merge::transform_channels(1);
    return s;
  }

  static void check_input(const input_type& x) {
    for (int j = 0; j < n_in; ++j) {
      const tensor_type& t = x[static_cast<std::size_t>(j)];
      const int c = Levels::channels[static_cast<std::size_t>(j)];
      check<shape_error>(t.rank() == 4 && channels_match(c, static_cast<int>(t.size(1))), "rev::Silo: level ", j,
                         " has extents ", t.shape(), ", expected [N, ", c, ", H, W]");
    }
  }
  static void check_transform(const char* half, int i, int j, const tensor_type& out, Shape expected) {
    if (expected.rank() == 4) expected[1] = Merge::transform_channels(static_cast<int>(expected[1]));
    check<shape_error>(out.shape() == expected, "rev::Silo: ", half, "_{", i, "->", j, "} maps level ", i,
                       " to extents ", out.shape(), " but level ", j, " has extents ", expected,
                       " (each level must be half the size of the one before: H and W divisible by 2^(levels-1))");
  }

  output_type run(const input_type& x, context& ctx, cache* c) {
    check_input(x);
    output_type a;
    for_each_down([&](auto& f, auto k) {  // a_j = sum_{i<j} F_{i->j}(x_i), eq. (3)
      constexpr int i = P::down[k].first, j = P::down[k].second;
      tensor_type out = c ? f.forward(x[i], ctx, std::get<k>(c->down)) : f.forward(x[i], ctx);
      if (j < n_in) check_transform("F", i, j, out, x[j].shape());
      else if (!a[j].empty()) check_transform("F", i, j, out, level_shape(a[j].shape()));
      ops::accumulate(a[j], out);
    });
    output_type z;
    z[0] = x[0];
    for (int j = 1; j < n; ++j) z[j] = j < n_in ? Merge::combine(x[j], a[j]) : a[j];
    output_type b;
    for_each_up([&](auto& g, auto k) {  // b_j = sum_{i>j} G_{i->j}(z_i), eq. (4)
      constexpr int i = P::up[k].first, j = P::up[k].second;
      tensor_type out = c ? g.forward(z[i], ctx, std::get<k>(c->up)) : g.forward(z[i], ctx);
      check_transform("G", i, j, out, z[j].shape());
      ops::accumulate(b[j], out);
    });
    output_type y;
    y[n - 1] = z[n - 1];
    for (int j = 0; j + 1 < n; ++j) y[j] = Merge::combine(z[j], b[j]);
    if (c && Merge::needs_inputs) {
      c->x = x;
      c->a = std::move(a);
      c->z = std::move(z);
      c->b = std::move(b);
    }
    return y;
  }

  template <class Fn>
  void visit(const std::string& prefix, Fn&& fn) {
    for_each_down([&](auto& f, auto k) {
      fn(f, join_name(prefix, "f.xform_" + std::to_string(P::down[k].first) + "_" + std::to_string(P::down[k].second)));
    });
    for_each_up([&](auto& g, auto k) {
      fn(g, join_name(prefix, "g.xform_" + std::to_string(n - 1 - P::up[k].first) + "_" +
                                  std::to_string(n - 1 - P::up[k].second)));
    });
  }

  down_t down_;
  up_t up_;
};

}  // namespace rev
