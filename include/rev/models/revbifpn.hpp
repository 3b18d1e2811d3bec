// RevBiFPN-S0..S6 (Chiley et al., MLSys 2023) for image classification, as a composition of
// rev's combinators: the backbone (stem, RevBlock groups, RevSilos) is one reversible rev::Chain
// of couplings; the neck (a PerLevel of MBConvs) and the head (a Cascade of pyramid heads, then
// the classifier) are ordinary blocks of the outer Chain, so that in a reversible tape the neck
// is a checkpoint and the head keeps its record. Parameters and buffers carry the official
// state_dict keys, so the released weights load by name.
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
#include "rev/core/named.hpp"
#include "rev/coupling/additive.hpp"
#include "rev/coupling/silo.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/cascade.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/per_level.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/flatten.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/mbconv.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/resample.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/nn/space_to_depth.hpp"
#include "rev/nn/tile_channels.hpp"

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

// Per-scale constants, the same for every variant.
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

// The variants: backbone channels c, neck/head channels h, FC width, extension depth
// d, head dropout and stochastic-depth rate. The stem input has c_0 / 16 channels.
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
    static constexpr long long reference_parameters = PARAMS; /* the official model */                \
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

constexpr int pow2(int k) { return 1 << k; }
constexpr int se_width(int in, double ratio) {
  if (ratio <= 0) return 0;
  const int q = static_cast<int>(in * ratio);
  return q < 1 ? 1 : q;
}

// Parameters of one MBConv, for counting without building.
constexpr long long mbconv_parameters(long long a, long long o, double e, long long k, long long q) {
  const long long w = static_cast<int>(static_cast<double>(a) * e);
  long long n = w * k * k + 2 * w + w * o + 2 * o;
  if (e != 1) n += a * w + 2 * w;
  if (q > 0) n += 2 * q * w + q + w;
  return n;
}

/// The parameter count of a variant from its configuration alone.
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

// Stochastic depth: a transform that drops paths is declared with the variant's rate and the
// constructor sets layer l's rate p * l / L (set_stochastic_depth). The rate being a run-time
// value, the blocks of the layers past the third are one type, compiled once.

/// The RevBlock of scale S: y1 = x1 + f(x0), y0 = x0 + g(y1), with f and g named
/// "xform_0_1" as in the official code.
template <class Cfg, int S, Scalar T, class B>
using rev_mbconv = Named<
    "xform_0_1",
    nn::MBConv<Cfg::c[S] / 2, Cfg::c[S] / 2,
               nn::mbconv_opts{
                   .expand = expand[S], .kernel = rev_kernel[S], .se_ratio = se_ratio[S], .drop_path = Cfg::drop_path},
               T, B>>;
template <class Cfg, int S, Scalar T, class B>
using RevBlock = Additive<rev_mbconv<Cfg, S, T, B>, rev_mbconv<Cfg, S, T, B>, coupling_layout::halves_swapped>;

/// The stem: SpaceToDepth(4) in RevBiFPN's channel order, as a one-level pyramid.
template <Scalar T, class B>
using Stem = Chain<nn::SpaceToDepth<4, ops::s2d_order::revbifpn, T, B>, Fork<1, T, B>>;

/// The fusion transforms of a silo: F_{i->j} downsamples with a strided depthwise kernel
/// 2*2^(j-i) - 1; G_{i->j} runs at scale i with the destination's expansion and SE ratio (SE
/// width from the source channels), then upsamples bilinearly by 2^(i-j). A growing silo's F into
/// the level it creates (`created`; -1: none) drops no path: it is that level's whole input.
template <class Cfg, int created, Scalar T, class B>
struct fusions {
  template <int I, int J>
  using F = nn::MBConv<Cfg::c[I], Cfg::c[J],
                       nn::mbconv_opts{.expand = expand[I],
                                       .kernel = 2 * pow2(J - I) - 1 + kernel_extra[I],
                                       .stride = pow2(J - I),
                                       .se_ratio = se_ratio[I],
                                       .drop_path = J == created ? 0.0 : Cfg::drop_path},
                       T, B>;
  template <int I, int J>
  using G = nn::Sequential<nn::MBConv<Cfg::c[I], Cfg::c[J],
                                      nn::mbconv_opts{.expand = expand[J],
                                                      .kernel = 3 + kernel_extra[I],
                                                      .se_channels = se_width(Cfg::c[I], se_ratio[J]),
                                                      .drop_path = Cfg::drop_path},
                                      T, B>,
                           nn::UpsampleBilinear<pow2(I - J), T, B>>;
};

template <class Cfg, class Seq>
struct levels_of;
template <class Cfg, std::size_t... S>
struct levels_of<Cfg, std::index_sequence<S...>> {
  using type = levels<Cfg::c[S]...>;
};

/// A RevBlock group of layer L: one RevBlock per existing scale s, named
/// "rev_transform_<s>".
template <class Cfg, Scalar T, class B, class Seq>
struct group_of;
template <class Cfg, Scalar T, class B, std::size_t... S>
struct group_of<Cfg, T, B, std::index_sequence<S...>> {
  using type = PerLevel<NamedAt<"rev_transform_", S, RevBlock<Cfg, static_cast<int>(S), T, B>>...>;
};

/// Layer L = 1..3+d: two RevBlock groups on the existing scales, then the silo.
template <class Cfg, int L, Scalar T, class B>
struct layer_blocks {
  static constexpr int existing = std::min(L, scales), after = std::min(L + 1, scales);
  static constexpr int created = L < scales ? L : -1;
  using group = typename group_of<Cfg, T, B, std::make_index_sequence<existing>>::type;
  using silo =
      Silo<typename levels_of<Cfg, std::make_index_sequence<after>>::type, fusions<Cfg, created, T, B>::template F,
           fusions<Cfg, created, T, B>::template G, (created >= 0 ? silo_kind::grows : silo_kind::same)>;
  using type = std::tuple<group, group, silo>;
};

template <class Tuple>
struct chain_of;
template <class... S>
struct chain_of<std::tuple<S...>> {
  using type = Chain<S...>;
};
template <class Cfg, Scalar T, class B, class Seq>
struct backbone_of;
template <class Cfg, Scalar T, class B, std::size_t... L>
struct backbone_of<Cfg, T, B, std::index_sequence<L...>> {
  using type = typename chain_of<decltype(std::tuple_cat(
      std::declval<std::tuple<Stem<T, B>>>(),
      std::declval<typename layer_blocks<Cfg, static_cast<int>(L) + 1, T, B>::type>()...))>::type;
};

/// The whole reversible backbone: the stem and 3L blocks, rev_stack.0 .. rev_stack.<3L>.
template <class Cfg, Scalar T, class B>
using Backbone = typename backbone_of<Cfg, T, B, std::make_index_sequence<layers<Cfg>>>::type;

/// The neck: per scale an MBConv c_s -> h_s, named "recomp_transform_<s>".
template <class Cfg, int S, Scalar T, class B>
using neck_block =
    NamedAt<"recomp_transform_", S,
            nn::MBConv<Cfg::c[S], Cfg::h[S],
                       nn::mbconv_opts{.expand = neck_expand[S], .kernel = neck_kernel, .se_ratio = neck_se[S]}, T, B>>;
template <class Cfg, Scalar T, class B, class Seq>
struct neck_of;
template <class Cfg, Scalar T, class B, std::size_t... S>
struct neck_of<Cfg, T, B, std::index_sequence<S...>> {
  using type = PerLevel<neck_block<Cfg, static_cast<int>(S), T, B>...>;
};
template <class Cfg, Scalar T, class B>
using Neck = typename neck_of<Cfg, T, B, std::make_index_sequence<scales>>::type;

/// The classification head: t = N_0; t = N_{i+1} + PH_i(t) for i = 0, 1, 2 (a Cascade of
/// the pyramid heads PH_i, strided MBConvs h_i -> h_{i+1}); then hswish(BN(conv1x1)), global
/// average pooling, dropout and the linear classifier.
template <class Cfg, int I, Scalar T, class B>
using pyramid_head =
    nn::MBConv<Cfg::h[I], Cfg::h[I + 1],
               nn::mbconv_opts{.expand = head_expand[I], .kernel = head_kernel, .stride = 2, .se_ratio = head_se[I]}, T,
               B>;
template <class Cfg, Scalar T, class B>
using Head = Chain<
    Named<"pyramid_heads", Cascade<pyramid_head<Cfg, 0, T, B>, pyramid_head<Cfg, 1, T, B>, pyramid_head<Cfg, 2, T, B>>>,
    Named<"final_conv", nn::detail::conv_bn_act<Cfg::h[3], Cfg::fc, nn::conv_opts{.kernel = 1}, true, T, B>>,
    nn::GlobalAvgPool<T, B>, nn::Flatten<T, B>, nn::Dropout<T, B>,
    Named<"fc", nn::Linear<Cfg::fc, classes<Cfg>, true, T, B>>>;

/// The network: the image's channels tiled to the stem's, the reversible backbone
/// and the neck (both under the official "rev_stack"; the neck is its "recomp_op"), the head.
/// In a reversible tape the backbone keeps nothing, the neck keeps its input (a
/// checkpoint) and the head, the last block, what its backward needs.
template <class Cfg, Scalar T, class B>
using Network =
    Chain<nn::TileChannels<image_channels_of<Cfg>(), in_channels<Cfg>, T, B>, Named<"rev_stack", Backbone<Cfg, T, B>>,
          Named<"rev_stack", Named<"recomp_op", Neck<Cfg, T, B>>>, Named<"head", Head<Cfg, T, B>>>;

using io::load_report;

}  // namespace revbifpn

/// RevBiFPN classifier of variant Cfg (revbifpn::S0 .. S6) over element type T on backend B: the
/// Chain revbifpn::Network, with the image checks and the official names. Its tape is that
/// chain's cache; its backward that chain's.
template <class Cfg, Scalar T = float, class B = cpu>
class RevBiFPN : public revbifpn::Network<Cfg, T, B> {
  static_assert(revbifpn::in_channels<Cfg> >= revbifpn::image_channels_of<Cfg>(),
                "rev::models::RevBiFPN: c_0 / 16 (the stem's input channels) must be at least the image's channels");
  using network_type = revbifpn::Network<Cfg, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = RevBiFPN<Cfg, T2, B2>;
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using pyramid = Tensors<T, 4, B>;
  using cache = typename network_type::cache;
  using backbone_type = Named<"rev_stack", revbifpn::Backbone<Cfg, T, B>>;
  static constexpr int image_channels = revbifpn::image_channels_of<Cfg>();
  static constexpr int classes = revbifpn::classes<Cfg>;
  static constexpr int stem_channels = revbifpn::in_channels<Cfg>;

  /// Weights initialised as the official code does, from rev::default_generator(); head_dropout defaults to the
  /// variant's rate.
  explicit RevBiFPN(double head_dropout = Cfg::head_dropout) {
    head().template get<4>().set_p(head_dropout);
    set_stochastic_depth(Cfg::drop_path);
  }

  /// Sets the stochastic-depth rate: layer l = 1..L of the backbone drops paths with rate
  /// p * l / L; p = 0 turns it off. A variant declared without drop-path has none to set.
  void set_stochastic_depth(double p) {
    for_each_index<3 * revbifpn::layers<Cfg>>([&](auto k) {
      const double rate = p * static_cast<double>(k / 3 + 1) / revbifpn::layers<Cfg>;
      apply(backbone().template get<k + 1>(), [&](nn::DropPath<T, B>& d) { d.set_p(rate); });
    });
  }

  static std::string name() { return std::string("rev::models::RevBiFPN<") + Cfg::name + ">"; }

  /// Logits [B, classes] of image [B, image_channels, H, W], keeping nothing.
  tensor_type forward(const tensor_type& image, context& ctx) {
    check_image(image);
    return network_type::forward(image, ctx);
  }
  /// Logits, keeping in `tape` what backward needs (stored) or only the neck's input and the
  /// head's record (reversible). backward(tape, dlogits) returns d loss / d image and adds every
  /// parameter's gradient.
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    check_image(image);
    return network_type::forward(image, ctx, tape);
  }

  /// The backbone pyramid P_0..P_3 (before the neck), [B, c_s, H / 2^(s+2), W / 2^(s+2)].
  pyramid features(const tensor_type& image, context& ctx) {
    check_image(image);
    return backbone().forward(this->template get<0>().forward(image, ctx), ctx);
  }

  /// Loads parameters and BN running statistics by their official keys; the files'
  /// num_batches_tracked entries are ignored. strict: a missing, unexpected or mis-shaped key
  /// throws io_error; otherwise the matching keys are loaded and the rest reported.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }

  /// Parameters and BN running statistics under the official keys.
  io::file state_dict() { return io::state_dict(*this); }

  backbone_type& backbone() { return this->template get<1>(); }
  auto& neck() { return this->template get<2>(); }
  auto& head() { return this->template get<3>(); }

 private:
  void check_image(const tensor_type& image) const {
    check<shape_error>(image.rank() == 4 && image.size(1) == image_channels, name(), ": image has extents ",
                       image.shape(), ", expected [B, ", image_channels, ", H, W]");
    check<shape_error>(image.size(2) % 32 == 0 && image.size(3) % 32 == 0 && image.size(2) > 0 && image.size(3) > 0,
                       name(), ": image has extents ", image.shape(),
                       ", H and W must be positive multiples of 32 (the backbone halves them five times)");
  }
};

}  // namespace rev::models
