// RevBiFPN-S0..S6 (Chiley et al., MLSys 2023) for image classification, as specified in
// ../shared/specs/revbifpn.md. The backbone (stem, RevBlock groups, RevSilos) is ONE reversible
// rev::Chain; the neck and the classification head are ordinary layers (the neck is a
// checkpoint in reversible mode, §8.3). Parameters and buffers carry the official state_dict
// keys (§9), so the released weights load by name.
//
//   rev::models::RevBiFPN<rev::models::revbifpn::S0> net;
//   net.load(rev::io::load("revbifpn_s0.safetensors"));
//   auto logits = net.forward(image, ctx);                      // image [B, 3, H, W], H, W % 32 == 0
//   decltype(net)::cache tape{rev::mode::reversible};
//   auto y = net.forward(image, train_ctx, tape);
//   auto dimage = net.backward(tape, dlogits);
#pragma once

#include <algorithm>
#include <array>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/coupling/additive.hpp"
#include "rev/coupling/silo.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/mbconv.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/resample.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/ops/space_to_depth.hpp"

namespace rev::models {

namespace revbifpn {

inline constexpr int scales = 4;

/// The number of classes and of image channels of a configuration: Cfg::classes and
/// Cfg::image_channels where the configuration states them, else ImageNet's 1000 and RGB.
template <class Cfg>
constexpr int classes_of() {
  if constexpr (requires { Cfg::classes; }) return Cfg::classes;
  else return 1000;
}
template <class Cfg>
constexpr int image_channels_of() {
  if constexpr (requires { Cfg::image_channels; }) return Cfg::image_channels;
  else return 3;
}
template <class Cfg>
inline constexpr int classes = classes_of<Cfg>();

// Per-scale constants, the same for every variant (§2).
inline constexpr std::array<double, 4> expand{1, 1, 2, 2};
inline constexpr std::array<double, 4> se_ratio{0.25, 0.25, 0.125, 0};
inline constexpr std::array<int, 4> kernel_extra{0, 0, 0, 2};  // "dwkp"
inline constexpr std::array<int, 4> rev_kernel{3, 5, 5, 5};    // RevBlock dw kernel dwk_s + p_s
inline constexpr std::array<double, 4> neck_expand{1, 2, 2, 2};
inline constexpr std::array<double, 4> neck_se{0.25, 0.25, 0.125, 0.125};
inline constexpr int neck_kernel = 5;
inline constexpr std::array<double, 3> head_expand{1, 2, 2};
inline constexpr std::array<double, 3> head_se{0.25, 0.25, 0.125};
inline constexpr int head_kernel = 5;

// The variants (§2 table): backbone channels c, neck/head channels h, FC width, extension depth
// d, head dropout and stochastic-depth rate. The stem input has c_0 / 16 channels (§3.1).
// A user's own configuration has the same members, and may add `classes` (default 1000) and
// `image_channels` (default 3):
//   struct Mine { static constexpr const char* name = "mine"; static constexpr std::array<int, 4>
//     c{16, 32, 48, 64}, h{16, 32, 64, 128}; static constexpr int fc = 256, depth = 2, classes = 10,
//     image_channels = 1; static constexpr double head_dropout = 0.1, drop_path = 0; };
#define REV_REVBIFPN_VARIANT(Name, C0, C1, C2, C3, H0, H1, H2, H3, FC, D, DROPOUT, DROP_PATH, PARAMS) \
  struct Name {                                                                                       \
    static constexpr const char* name = #Name;                                                        \
    static constexpr std::array<int, 4> c{C0, C1, C2, C3};                                            \
    static constexpr std::array<int, 4> h{H0, H1, H2, H3};                                            \
    static constexpr int fc = FC;                                                                     \
    static constexpr int depth = D;                                                                   \
    static constexpr double head_dropout = DROPOUT;                                                   \
    static constexpr double drop_path = DROP_PATH;                                                    \
    static constexpr long long reference_parameters = PARAMS; /* §11 */                              \
  };
REV_REVBIFPN_VARIANT(S0, 48, 64, 80, 160, 48, 64, 128, 320, 1280, 2, 0.25, 0.0, 3419196LL)
REV_REVBIFPN_VARIANT(S1, 64, 80, 96, 208, 64, 80, 160, 416, 1696, 2, 0.25, 0.0, 5112300LL)
REV_REVBIFPN_VARIANT(S2, 96, 128, 160, 320, 96, 128, 256, 640, 2560, 2, 0.3, 0.0, 10576528LL)
REV_REVBIFPN_VARIANT(S3, 128, 160, 208, 416, 128, 160, 336, 848, 3408, 3, 0.3, 0.05, 19574184LL)
REV_REVBIFPN_VARIANT(S4, 192, 256, 320, 640, 192, 256, 512, 1280, 5120, 4, 0.4, 0.1, 48687336LL)
REV_REVBIFPN_VARIANT(S5, 256, 336, 416, 848, 256, 336, 672, 1696, 6816, 4, 0.4, 0.1, 81998976LL)
REV_REVBIFPN_VARIANT(S6, 320, 416, 528, 1056, 320, 416, 848, 2128, 8528, 5, 0.6, 0.3, 142307972LL)
#undef REV_REVBIFPN_VARIANT

template <class Cfg>
inline constexpr int in_channels = Cfg::c[0] / 16;
template <class Cfg>
inline constexpr int layers = 3 + Cfg::depth;

/// Stochastic depth of layer l = 1..L: p * l / L (§12).
template <class Cfg>
constexpr double layer_drop(int l) {
  return Cfg::drop_path * l / layers<Cfg>;
}

constexpr int pow2(int k) { return 1 << k; }
constexpr int se_width(int in, double ratio) {
  if (ratio <= 0) return 0;
  const int q = static_cast<int>(in * ratio);
  return q < 1 ? 1 : q;
}

// Parameters of one MBConv (§4.3, §9), for counting without building.
constexpr long long mbconv_parameters(long long a, long long o, double e, long long k, long long q) {
  const long long w = static_cast<int>(static_cast<double>(a) * e);
  long long n = w * k * k + 2 * w + w * o + 2 * o;
  if (e != 1) n += a * w + 2 * w;
  if (q > 0) n += 2 * q * w + q + w;
  return n;
}

/// The parameter count of a variant from its configuration alone (§11).
template <class Cfg>
constexpr long long parameter_count() {
  const auto& c = Cfg::c;
  const auto& h = Cfg::h;
  long long n = 0;
  for (int l = 1; l <= layers<Cfg>; ++l) {
    const int existing = std::min(l, scales), after = std::min(l + 1, scales);
    for (int s = 0; s < existing; ++s)  // two groups, f and g each
      n += 4 * mbconv_parameters(c[s] / 2, c[s] / 2, expand[s], rev_kernel[s], se_width(c[s] / 2, se_ratio[s]));
    for (int j = 1; j < after; ++j)
      for (int i = 0; i < j; ++i) {
        n += mbconv_parameters(c[i], c[j], expand[i], 2 * pow2(j - i) - 1 + kernel_extra[i],
                               se_width(c[i], se_ratio[i]));
        n += mbconv_parameters(c[j], c[i], expand[i], 3 + kernel_extra[j], se_width(c[j], se_ratio[i]));
      }
  }
  for (int s = 0; s < scales; ++s)
    n += mbconv_parameters(c[s], h[s], neck_expand[s], neck_kernel, se_width(c[s], neck_se[s]));
  for (int i = 0; i < 3; ++i)
    n += mbconv_parameters(h[i], h[i + 1], head_expand[i], head_kernel, se_width(h[i], head_se[i]));
  n += static_cast<long long>(h[3]) * Cfg::fc + 2LL * Cfg::fc;
  n += static_cast<long long>(Cfg::fc) * classes<Cfg> + classes<Cfg>;
  return n;
}

/// Names its wrapped layer's parameters "xform_0_1.<...>", the official RevBlock naming (§9).
template <class L>
struct xform01 : L {
  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    L::for_each_parameter(v, join_name(prefix, "xform_0_1"));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    L::for_each_buffer(v, join_name(prefix, "xform_0_1"));
  }
};

/// The RevBlock of scale S in layer l (§4.4): y1 = x1 + f(x0), y0 = x0 + g(y1).
template <class Cfg, int S, int L, Scalar T, class B>
using rev_mbconv = xform01<nn::MBConv<
    Cfg::c[S] / 2, Cfg::c[S] / 2,
    nn::mbconv_opts{
        .expand = expand[S], .kernel = rev_kernel[S], .se_ratio = se_ratio[S], .drop_path = layer_drop<Cfg>(L)},
    T, B>>;
template <class Cfg, int S, int L, Scalar T, class B>
using RevBlock = Additive<rev_mbconv<Cfg, S, L, T, B>, rev_mbconv<Cfg, S, L, T, B>, additive_layout::halves_swapped>;

/// A coupling over an N-level pyramid applying Blocks[s] to level s ("RevBlock group", §4.4),
/// with the official names "rev_transform_<s>".
template <class... Blocks>
class RevBlockGroup {
  static constexpr std::size_t n = sizeof...(Blocks);
  using first = std::tuple_element_t<0, std::tuple<Blocks...>>;

 public:
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = Tensors<value_type, static_cast<int>(n), backend>;
  using output_type = input_type;
  struct cache {
    std::tuple<typename Blocks::cache...> blocks;
  };

  output_type forward(const input_type& x, context& ctx) {
    output_type y;
    each([&](auto& b, auto s) { y[s] = b.forward(x[s], ctx); });
    return y;
  }
  output_type forward(const input_type& x, context& ctx, cache& c) {
    output_type y;
    each([&](auto& b, auto s) { y[s] = b.forward(x[s], ctx, std::get<s>(c.blocks)); });
    return y;
  }
  input_type backward(cache& c, const output_type& dy) {
    input_type dx;
    each([&](auto& b, auto s) { dx[s] = b.backward(std::get<s>(c.blocks), dy[s]); });
    c = cache{};
    return dx;
  }
  input_type inverse(const output_type& y, context& ctx) {
    input_type x;
    each([&](auto& b, auto s) { x[s] = b.inverse(y[s], ctx); });
    return x;
  }
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) {
    reconstructed<input_type> r;
    each([&](auto& b, auto s) {
      auto rs = b.backward_reversible(y[s], dy[s]);
      r.x[s] = std::move(rs.x);
      r.dx[s] = std::move(rs.dx);
    });
    return r;
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    each([&](auto& b, auto s) { b.for_each_parameter(v, join_name(prefix, "rev_transform_" + std::to_string(s))); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each([&](auto& b, auto s) { b.for_each_buffer(v, join_name(prefix, "rev_transform_" + std::to_string(s))); });
  }

 private:
  template <class F>
  void each(F&& f) {
    [&]<std::size_t... S>(std::index_sequence<S...>) {
      (f(std::get<S>(blocks_), std::integral_constant<std::size_t, S>{}), ...);
    }
    (std::make_index_sequence<n>{});
  }
  std::tuple<Blocks...> blocks_;
};

/// The stem (§3.2): SpaceToDepth(4) in RevBiFPN's channel order, producing a 1-level pyramid.
template <int Cin, Scalar T, class B>
class Stem : public layer_types<T, B>, public no_parameters {
 public:
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  using input_type = tensor_type;
  using output_type = Tensors<T, 1, B>;
  static constexpr int in_channels = Cin;
  static constexpr int out_channels = 16 * Cin;
  struct cache {};

  output_type forward(const input_type& x, context&) { return {ops::space_to_depth(x, 4, ops::s2d_order::revbifpn)}; }
  output_type forward(const input_type& x, context& ctx, cache&) { return forward(x, ctx); }
  input_type backward(cache&, const output_type& dy) { return ops::depth_to_space(dy[0], 4, ops::s2d_order::revbifpn); }
  input_type inverse(const output_type& y, context&) { return ops::depth_to_space(y[0], 4, ops::s2d_order::revbifpn); }
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) {
    return {ops::depth_to_space(y[0], 4, ops::s2d_order::revbifpn),
            ops::depth_to_space(dy[0], 4, ops::s2d_order::revbifpn)};
  }
};

/// The fusion transforms of the silo of layer L (§5): F_{i->j} downsamples with a strided
/// depthwise kernel 2*2^(j-i) - 1; G_{i->j} runs at scale i with the destination's expansion and
/// SE ratio (SE width from the source channels), then upsamples bilinearly by 2^(i-j).
template <class Cfg, int L, Scalar T, class B>
struct fusions {
  static constexpr int created = L < scales ? L : -1;  // the level a growing silo creates
  template <int I, int J>
  using F = nn::MBConv<Cfg::c[I], Cfg::c[J],
                       nn::mbconv_opts{.expand = expand[I],
                                       .kernel = 2 * pow2(J - I) - 1 + kernel_extra[I],
                                       .stride = pow2(J - I),
                                       .se_ratio = se_ratio[I],
                                       .drop_path = J == created ? 0.0 : layer_drop<Cfg>(L)},
                       T, B>;
  template <int I, int J>
  using G = nn::Sequential<nn::MBConv<Cfg::c[I], Cfg::c[J],
                                      nn::mbconv_opts{.expand = expand[J],
                                                      .kernel = 3 + kernel_extra[I],
                                                      .se_channels = se_width(Cfg::c[I], se_ratio[J]),
                                                      .drop_path = layer_drop<Cfg>(L)},
                                      T, B>,
                           nn::UpsampleBilinear<pow2(I - J), T, B>>;
};

template <class Cfg, class Seq>
struct levels_of;
template <class Cfg, std::size_t... S>
struct levels_of<Cfg, std::index_sequence<S...>> {
  using type = levels<Cfg::c[S]...>;
};
template <class Cfg, int L, Scalar T, class B, class Seq>
struct group_of;
template <class Cfg, int L, Scalar T, class B, std::size_t... S>
struct group_of<Cfg, L, T, B, std::index_sequence<S...>> {
  using type = RevBlockGroup<RevBlock<Cfg, static_cast<int>(S), L, T, B>...>;
};

/// Layer L = 1..3+d (§6): two RevBlock groups on the existing scales, then the silo.
template <class Cfg, int L, Scalar T, class B>
struct layer_blocks {
  static constexpr int existing = std::min(L, scales), after = std::min(L + 1, scales);
  using group = typename group_of<Cfg, L, T, B, std::make_index_sequence<existing>>::type;
  using silo = Silo < typename levels_of<Cfg, std::make_index_sequence<after>>::type, fusions<Cfg, L, T, B>::template F,
        fusions<Cfg, L, T, B>::template G, L<scales ? silo_kind::grows : silo_kind::same>;
  using type = std::tuple<group, group, silo>;
};

template <class Tuple>
struct chain_of;
template <class... S>
struct chain_of<std::tuple<S...>> {
  using type = Chain<S...>;
};
template <class Cfg, Scalar T, class B, std::size_t... L>
auto backbone_of(std::index_sequence<L...>) -> typename chain_of<
    decltype(std::tuple_cat(std::declval<std::tuple<Stem<in_channels<Cfg>, T, B>>>(),
                            std::declval<typename layer_blocks<Cfg, static_cast<int>(L) + 1, T, B>::type>()...))>::type;

/// The whole reversible backbone: rev_stack.0 .. rev_stack.<3L> (§6).
template <class Cfg, Scalar T, class B>
using Backbone = decltype(backbone_of<Cfg, T, B>(std::make_index_sequence<layers<Cfg>>{}));

/// The neck (§7): per scale an MBConv c_s -> h_s, named "recomp_transform_<s>".
template <class Cfg, Scalar T, class B>
class Neck {
  template <int S>
  using block =
      nn::MBConv<Cfg::c[S], Cfg::h[S],
                 nn::mbconv_opts{.expand = neck_expand[S], .kernel = neck_kernel, .se_ratio = neck_se[S]}, T, B>;
  using blocks = std::tuple<block<0>, block<1>, block<2>, block<3>>;

 public:
  using pyramid = Tensors<T, 4, B>;
  struct cache {
    std::tuple<typename block<0>::cache, typename block<1>::cache, typename block<2>::cache, typename block<3>::cache>
        c;
  };

  pyramid forward(const pyramid& x, context& ctx) {
    pyramid y;
    each([&](auto& b, auto s) { y[s] = b.forward(x[s], ctx); });
    return y;
  }
  pyramid forward(const pyramid& x, context& ctx, cache& c) {
    pyramid y;
    each([&](auto& b, auto s) { y[s] = b.forward(x[s], ctx, std::get<s>(c.c)); });
    return y;
  }
  pyramid backward(cache& c, const pyramid& dy) {
    pyramid dx;
    each([&](auto& b, auto s) { dx[s] = b.backward(std::get<s>(c.c), dy[s]); });
    c = cache{};
    return dx;
  }
  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix) {
    each([&](auto& b, auto s) { b.for_each_parameter(v, join_name(prefix, "recomp_transform_" + std::to_string(s))); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix) {
    each([&](auto& b, auto s) { b.for_each_buffer(v, join_name(prefix, "recomp_transform_" + std::to_string(s))); });
  }

 private:
  template <class F>
  void each(F&& f) {
    [&]<std::size_t... S>(std::index_sequence<S...>) {
      (f(std::get<S>(blocks_), std::integral_constant<std::size_t, S>{}), ...);
    }
    (std::make_index_sequence<4>{});
  }
  blocks blocks_;
};

/// The classification head (§7): t = N_0; t = N_{i+1} + PH_i(t) for i = 0, 1, 2; then
/// hswish(BN(conv1x1)), global average pooling, dropout and the linear classifier.
template <class Cfg, Scalar T, class B>
class Head {
  template <int I>
  using pyramid_head =
      nn::MBConv<Cfg::h[I], Cfg::h[I + 1],
                 nn::mbconv_opts{.expand = head_expand[I], .kernel = head_kernel, .stride = 2, .se_ratio = head_se[I]},
                 T, B>;
  using final_type = nn::detail::conv_bn_act<Cfg::h[3], Cfg::fc, nn::conv_opts{.kernel = 1}, true, T, B>;
  using fc_type = nn::Linear<Cfg::fc, classes<Cfg>, true, T, B>;

 public:
  using tensor_type = Tensor<T, B>;
  using pyramid = Tensors<T, 4, B>;
  struct cache {
    std::tuple<typename pyramid_head<0>::cache, typename pyramid_head<1>::cache, typename pyramid_head<2>::cache> heads;
    typename final_type::cache final_conv;
    typename nn::GlobalAvgPool<T, B>::cache pool;
    typename nn::Dropout<T, B>::cache drop;
    typename fc_type::cache fc;
  };

  explicit Head(double dropout) : final_conv(default_generator()), drop(dropout) {}

  tensor_type forward(const pyramid& x, context& ctx) {
    tensor_type t = x[0];
    each([&](auto& ph, auto i) { t = ops::add(x[i + 1], ph.forward(t, ctx)); });
    t = pool.forward(final_conv.forward(t, ctx), ctx);
    t = drop.forward(t.reshape({t.size(0), Cfg::fc}), ctx);
    return fc.forward(t, ctx);
  }
  tensor_type forward(const pyramid& x, context& ctx, cache& c) {
    tensor_type t = x[0];
    each([&](auto& ph, auto i) { t = ops::add(x[i + 1], ph.forward(t, ctx, std::get<i>(c.heads))); });
    t = pool.forward(final_conv.forward(t, ctx, c.final_conv), ctx, c.pool);
    t = drop.forward(t.reshape({t.size(0), Cfg::fc}), ctx, c.drop);
    return fc.forward(t, ctx, c.fc);
  }
  pyramid backward(cache& c, const tensor_type& dy) {
    tensor_type d = drop.backward(c.drop, fc.backward(c.fc, dy));
    d = final_conv.backward(c.final_conv, pool.backward(c.pool, d.reshape({d.size(0), Cfg::fc, 1, 1})));
    pyramid dx;
    dx[3] = d;
    dx[2] = pyramid_heads_backward<2>(c, d);
    dx[1] = pyramid_heads_backward<1>(c, dx[2]);
    dx[0] = pyramid_heads_backward<0>(c, dx[1]);
    c = cache{};
    return dx;
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix) {
    each([&](auto& ph, auto i) { ph.for_each_parameter(v, join_name(prefix, "pyramid_heads." + std::to_string(i))); });
    final_conv.for_each_parameter(v, join_name(prefix, "final_conv"));
    fc.for_each_parameter(v, join_name(prefix, "fc"));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix) {
    each([&](auto& ph, auto i) { ph.for_each_buffer(v, join_name(prefix, "pyramid_heads." + std::to_string(i))); });
    final_conv.for_each_buffer(v, join_name(prefix, "final_conv"));
  }

 private:
  template <std::size_t I>
  tensor_type pyramid_heads_backward(cache& c, const tensor_type& d) {
    return std::get<I>(heads_).backward(std::get<I>(c.heads), d);
  }
  template <class F>
  void each(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(std::get<I>(heads_), std::integral_constant<std::size_t, I>{}), ...);
    }
    (std::make_index_sequence<3>{});
  }

  std::tuple<pyramid_head<0>, pyramid_head<1>, pyramid_head<2>> heads_;
  final_type final_conv;
  nn::GlobalAvgPool<T, B> pool;
  nn::Dropout<T, B> drop;
  fc_type fc;
};

using io::load_report;

}  // namespace revbifpn

/// RevBiFPN classifier of variant Cfg (revbifpn::S0 .. S6) over element type T on backend B.
template <class Cfg, Scalar T = float, class B = cpu>
class RevBiFPN {
 public:
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using pyramid = Tensors<T, 4, B>;
  using backbone_type = revbifpn::Backbone<Cfg, T, B>;
  static constexpr int image_channels = revbifpn::image_channels_of<Cfg>();
  static constexpr int classes = revbifpn::classes<Cfg>;
  static constexpr int stem_channels = revbifpn::in_channels<Cfg>;
  static_assert(stem_channels >= image_channels,
                "rev::models::RevBiFPN: c_0 / 16 must be at least the number of image channels (spec §3.1)");

  /// The tape of one training step; its mode (stored or reversible) is the backbone's.
  struct cache {
    cache(mode m = mode::stored) : backbone(m) {}
    typename backbone_type::cache backbone;
    pyramid checkpoint;  // reversible mode: the neck's input, recomputed from in backward (§8.3)
    typename revbifpn::Neck<Cfg, T, B>::cache neck;
    typename revbifpn::Head<Cfg, T, B>::cache head;
  };

  /// Weights initialised as in §12 from rev::default_generator(); head_dropout defaults to the
  /// variant's rate (§2).
  explicit RevBiFPN(double head_dropout = Cfg::head_dropout) : head_(head_dropout) {}

  static std::string name() { return std::string("rev::models::RevBiFPN<") + Cfg::name + ">"; }

  /// Logits [B, classes] of image [B, image_channels, H, W], keeping nothing.
  tensor_type forward(const tensor_type& image, context& ctx) {
    return head_.forward(neck_.forward(features(image, ctx), ctx), ctx);
  }

  /// Logits, keeping in `tape` what backward needs (stored) or only the pyramid (reversible).
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    // The reversible backward re-evaluates in the recompute phase, which replays train-phase
    // batch statistics (core/layer.hpp).
    check<value_error>(tape.backbone.m == mode::stored || ctx.mode == phase::train, name(),
                       ": a reversible tape needs a train-phase forward (use mode::stored for eval-phase gradients)");
    pyramid p = backbone_.forward(stack(image), ctx, tape.backbone);
    pyramid n;
    if (tape.backbone.m == mode::reversible) {
      tape.checkpoint = p;
      n = neck_.forward(p, ctx);
    } else {
      n = neck_.forward(p, ctx, tape.neck);
    }
    return head_.forward(n, ctx, tape.head);
  }

  /// d loss / d image from d loss / d logits; adds every parameter's gradient.
  tensor_type backward(cache& tape, const tensor_type& dlogits) {
    check<shape_error>(dlogits.rank() == 2 && dlogits.size(1) == classes, name(), ": dlogits has extents ",
                       dlogits.shape(), ", expected [B, ", classes, "]");
    pyramid dn = head_.backward(tape.head, dlogits);
    if (tape.backbone.m == mode::reversible) {
      context ctx = recompute_context();
      neck_.forward(std::exchange(tape.checkpoint, pyramid{}), ctx, tape.neck);
    }
    return fold(backbone_.backward(tape.backbone, neck_.backward(tape.neck, dn)));
  }

  /// The backbone pyramid P_0..P_3 (before the neck), [B, c_s, H / 2^(s+2), W / 2^(s+2)].
  pyramid features(const tensor_type& image, context& ctx) { return backbone_.forward(stack(image), ctx); }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    backbone_.for_each_parameter(v, join_name(prefix, "rev_stack"));
    neck_.for_each_parameter(v, join_name(prefix, "rev_stack.recomp_op"));
    head_.for_each_parameter(v, join_name(prefix, "head"));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    backbone_.for_each_buffer(v, join_name(prefix, "rev_stack"));
    neck_.for_each_buffer(v, join_name(prefix, "rev_stack.recomp_op"));
    head_.for_each_buffer(v, join_name(prefix, "head"));
  }

  /// Loads parameters and BN running statistics by their official keys (§9); the files'
  /// num_batches_tracked entries are ignored. strict: a missing, unexpected or mis-shaped key
  /// throws io_error; otherwise the matching keys are loaded and the rest reported.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }

  /// Parameters and BN running statistics under the official keys.
  io::file state_dict() { return io::state_dict(*this); }

  backbone_type& backbone() { return backbone_; }
  revbifpn::Neck<Cfg, T, B>& neck() { return neck_; }
  revbifpn::Head<Cfg, T, B>& head() { return head_; }

 private:
  // Channel stacking (§3.1): stacked channel k is image channel k mod 3.
  tensor_type stack(const tensor_type& image) const {
    check<shape_error>(image.rank() == 4 && image.size(1) == image_channels, name(), ": image has extents ",
                       image.shape(), ", expected [B, ", image_channels, ", H, W]");
    check<shape_error>(image.size(2) % 32 == 0 && image.size(3) % 32 == 0 && image.size(2) > 0 && image.size(3) > 0,
                       name(), ": image has extents ", image.shape(),
                       ", H and W must be positive multiples of 32 (spec §10)");
    if constexpr (stem_channels == image_channels) {
      return image;
    } else {
      constexpr int copies = stem_channels / image_channels;
      std::array<tensor_type, copies + (remainder > 0 ? 1 : 0)> parts;
      for (int k = 0; k < copies; ++k) parts[static_cast<std::size_t>(k)] = image;
      if constexpr (remainder > 0)
        parts[copies] = ops::split_channels(image, {remainder, image_channels - remainder})[0];
      return ops::concat_channels(parts);
    }
  }
  // The image gradient: the stacked channels' gradients summed per image channel (§3.1).
  tensor_type fold(const tensor_type& dx) const {
    if constexpr (stem_channels == image_channels) {
      return dx;
    } else {
      std::vector<index_t> sizes(stem_channels / image_channels, image_channels);
      if constexpr (remainder > 0) sizes.push_back(remainder);
      std::vector<tensor_type> parts = ops::split_channels(dx, std::span<const index_t>(sizes));
      tensor_type d = parts[0];
      for (std::size_t i = 1; i < stem_channels / image_channels; ++i) ops::add_(d, parts[i]);
      if constexpr (remainder > 0) {
        std::vector<tensor_type> head = ops::split_channels(d, {remainder, image_channels - remainder});
        ops::add_(head[0], parts.back());
        d = ops::concat_channels(head);
      }
      return d;
    }
  }
  static constexpr int remainder = stem_channels % image_channels;

  backbone_type backbone_;
  revbifpn::Neck<Cfg, T, B> neck_;
  revbifpn::Head<Cfg, T, B> head_;
};

}  // namespace rev::models
