// RevNet-38/110/164 for CIFAR (Gomez, Ren, Urtasun, Grosse, NeurIPS 2017), as specified in
// ../shared/specs/revup-revnet.md §2. Each stage opens with a downsampling unit that is not
// reversible (a checkpoint in reversible mode, its input kept) followed by additive couplings
// y1 = x1 + F(x2), y2 = x2 + G(y1) whose inputs are reconstructed in backward (§2.5).
//
//   rev::models::RevNet<rev::models::revnet::R38> net;          // 464,890 parameters
//   decltype(net)::cache tape{rev::mode::reversible};
//   auto logits = net.forward(images, train_ctx, tape);         // images [B, 3, 32, 32]
//   auto dimages = net.backward(tape, dlogits);
//
// The official code is TensorFlow 1 and published no PyTorch state_dict; keys here follow the
// structure: init.*, stage<s>.transition.{f,g,shortcut}.*, stage<s>.units.<i>.{f,g}.*, head.*.
// Convolutions pad symmetrically as PyTorch does (TF's "SAME" pads a stride-2 3x3 conv on an even
// size by 0 before and 1 after).
#pragma once

#include <array>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/coupling/additive.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/flatten.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"
#include "rev/ops/pool.hpp"

namespace rev::models {

namespace revnet {

enum class block { basic, bottleneck };

// The CIFAR configurations (§2.3): residual function, units per stage, stem width, stage output
// widths, stage strides, classes, and the parameter count of the official topology (§4). A
// user's own configuration has the same members (deriving from `cifar` gives the CIFAR ones).
struct cifar {
  static constexpr int stem = 32;
  static constexpr std::array<int, 3> stride{1, 2, 2};
  static constexpr int classes = 10;
};
struct R38 : cifar {
  static constexpr const char* name = "revnet-38";
  static constexpr block kind = block::basic;
  static constexpr int units = 3;
  static constexpr std::array<int, 3> c{32, 64, 112};
  static constexpr long long reference_parameters = 464890;
};
struct R110 : cifar {
  static constexpr const char* name = "revnet-110";
  static constexpr block kind = block::basic;
  static constexpr int units = 9;
  static constexpr std::array<int, 3> c{32, 64, 128};
  static constexpr long long reference_parameters = 1729194;
};
struct R164 : cifar {
  static constexpr const char* name = "revnet-164";
  static constexpr block kind = block::bottleneck;
  static constexpr int units = 9;
  static constexpr std::array<int, 3> c{128, 256, 512};
  static constexpr long long reference_parameters = 1748778;
};

// BatchNorm of the official code: eps 1e-3, moving-average decay 0.99 (§2.1).
inline constexpr nn::bn_opts bn{.eps = 1e-3, .momentum = 0.01};
template <int C, Scalar T>
using BN = nn::BatchNorm2d<C, bn, T>;
template <int In, int Out, int K, int S, Scalar T>
using Conv = nn::Conv2d<In, Out, nn::conv_opts{.kernel = K, .stride = S}, T>;

// The residual functions (§2.1), pre-activation: [BN -> ReLU ->] conv ... The leading BN-ReLU
// is left out (Preact = false) in F of the network's first unit, whose input the stem has
// already normalised.
template <int In, int Out, int S, bool Preact, Scalar T>
struct basic_fn {
  using body = nn::Sequential<Conv<In, Out, 3, S, T>, BN<Out, T>, nn::ReLU<T>, Conv<Out, Out, 3, 1, T>>;
  using type = std::conditional_t<
      Preact,
      nn::Sequential<BN<In, T>, nn::ReLU<T>, Conv<In, Out, 3, S, T>, BN<Out, T>, nn::ReLU<T>, Conv<Out, Out, 3, 1, T>>,
      body>;
};
template <int In, int Out, int S, bool Preact, Scalar T>
struct bottleneck_fn {
  static constexpr int w = Out / 4;  // the bottleneck width; the stride sits on the first 1x1 conv
  using body = nn::Sequential<Conv<In, w, 1, S, T>, BN<w, T>, nn::ReLU<T>, Conv<w, w, 3, 1, T>, BN<w, T>, nn::ReLU<T>,
                              Conv<w, Out, 1, 1, T>>;
  using type = std::conditional_t<Preact,
                                  nn::Sequential<BN<In, T>, nn::ReLU<T>, Conv<In, w, 1, S, T>, BN<w, T>, nn::ReLU<T>,
                                                 Conv<w, w, 3, 1, T>, BN<w, T>, nn::ReLU<T>, Conv<w, Out, 1, 1, T>>,
                                  body>;
};
/// The residual function of a half: In -> Out channels at stride S.
template <block K, int In, int Out, int S, bool Preact, Scalar T>
using residual = typename std::conditional_t<K == block::basic, basic_fn<In, Out, S, Preact, T>,
                                             bottleneck_fn<In, Out, S, Preact, T>>::type;

/// The reversible unit of a stage with C channels: Additive over the channel halves.
template <block K, int C, Scalar T>
using Unit =
    Additive<residual<K, C / 2, C / 2, 1, true, T>, residual<K, C / 2, C / 2, 1, true, T>, additive_layout::halves>;

/// The first unit of a stage (§2.2), In -> Out channels at stride S, not invertible:
///   y1 = sc(x1) + F(x2),  y2 = sc(x2) + G(y1).
/// Shortcut sc: basic — average pooling k = s, then (Out - In) / 4 zero channels before and after
/// each half; bottleneck — a 1x1 conv at stride S per half (no bias) when S > 1 or In != Out.
/// Identity otherwise.
template <block K, int In, int Out, int S, bool Preact, Scalar T>
class Transition : public layer_types<T, cpu> {
  static constexpr int a = In / 2, b = Out / 2;
  static constexpr bool projection = K == block::bottleneck && (S > 1 || In != Out);
  static constexpr int pad = K == block::basic ? (Out - In) / 4 : 0;
  static_assert(In % 2 == 0 && Out % 2 == 0, "rev::models::revnet::Transition: channel counts must be even");
  static_assert(K != block::basic || (Out >= In && (Out - In) % 4 == 0),
                "rev::models::revnet::Transition: a basic unit pads each half with (Out - In) / 4 zero channels on "
                "both sides, so Out - In must be a non-negative multiple of 4");
  using F = residual<K, a, b, S, Preact, T>;
  using G = residual<K, b, b, 1, true, T>;
  using P = Conv<a, b, 1, S, T>;

 public:
  using tensor_type = Tensor<T>;
  static constexpr int in_channels = In, out_channels = Out;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  struct cache {
    typename F::cache f;
    typename G::cache g;
    std::array<typename P::cache, 2> shortcut;
    Shape half_shape;
  };

  static std::string name() {
    return "rev::models::revnet::Transition<" + std::to_string(In) + "," + std::to_string(Out) + ">";
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    cache c;
    return run(x, ctx, c, false);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) { return run(x, ctx, c, true); }

  tensor_type backward(cache& c, const tensor_type& dy) {
    auto dys = ops::split_channels(dy, {b, b});
    const tensor_type dz1 = ops::add(dys[0], g_.backward(c.g, dys[1]));  // total gradient reaching y1
    tensor_type dx2 = f_.backward(c.f, dz1);
    ops::accumulate(dx2, shortcut_backward(c, 1, dys[1]));
    const tensor_type dx1 = shortcut_backward(c, 0, dz1);
    c = cache{};
    return ops::concat_channels({dx1, dx2});
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    f_.for_each_parameter(v, join_name(prefix, "f"));
    g_.for_each_parameter(v, join_name(prefix, "g"));
    if constexpr (projection)
      for (int h = 0; h < 2; ++h) sc_[h].for_each_parameter(v, join_name(prefix, "shortcut." + std::to_string(h)));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    f_.for_each_buffer(v, join_name(prefix, "f"));
    g_.for_each_buffer(v, join_name(prefix, "g"));
  }

 private:
  tensor_type run(const tensor_type& x, context& ctx, cache& c, bool keep) {
    check<shape_error>(x.rank() == 4 && x.size(1) == In, name(), ": input has extents ", x.shape(), ", expected [N, ",
                       In, ", H, W]");
    auto xs = ops::split_channels(x, {a, a});
    c.half_shape = xs[0].shape();
    const tensor_type y1 =
        ops::add(shortcut(c, 0, xs[0], ctx, keep), keep ? f_.forward(xs[1], ctx, c.f) : f_.forward(xs[1], ctx));
    const tensor_type y2 =
        ops::add(shortcut(c, 1, xs[1], ctx, keep), keep ? g_.forward(y1, ctx, c.g) : g_.forward(y1, ctx));
    return ops::concat_channels({y1, y2});
  }

  tensor_type shortcut(cache& c, int h, const tensor_type& x, context& ctx, bool keep) {
    if constexpr (projection) {
      return keep ? sc_[h].forward(x, ctx, c.shortcut[h]) : sc_[h].forward(x, ctx);
    } else {
      const tensor_type p = S > 1 ? ops::avg_pool2d(x, S) : x;
      if constexpr (pad == 0) return p;
      else {
        const tensor_type zeros({p.size(0), pad, p.size(2), p.size(3)});
        return ops::concat_channels({zeros, p, zeros});
      }
    }
  }
  tensor_type shortcut_backward(cache& c, int h, const tensor_type& dy) {
    if constexpr (projection) {
      return sc_[h].backward(c.shortcut[h], dy);
    } else {
      const tensor_type dp = pad == 0 ? dy : ops::split_channels(dy, {pad, a, pad})[1];
      return S > 1 ? ops::avg_pool2d_backward(c.half_shape, dp, S) : dp;
    }
  }

  F f_;
  G g_;
  std::array<P, projection ? 2 : 0> sc_;
};

/// Stem (§2.2, CIFAR): 3x3 conv (no bias) -> BN -> ReLU.
template <int C, Scalar T>
using Stem = nn::Sequential<Conv<3, C, 3, 1, T>, BN<C, T>, nn::ReLU<T>>;
/// Head: BN -> ReLU -> global average pooling -> fully connected.
template <int C, int Classes, Scalar T>
using Head =
    nn::Sequential<BN<C, T>, nn::ReLU<T>, nn::GlobalAvgPool<T>, nn::Flatten<T>, nn::Linear<C, Classes, true, T>>;

template <class Cfg, int S>
inline constexpr int stage_in = S == 0 ? Cfg::stem : Cfg::c[S - 1];

template <class Cfg, Scalar T>
using Network = Chain<Stem<Cfg::stem, T>,  //
                      Transition<Cfg::kind, stage_in<Cfg, 0>, Cfg::c[0], Cfg::stride[0], false, T>,
                      Repeat<Cfg::units - 1, Unit<Cfg::kind, Cfg::c[0], T>>,
                      Transition<Cfg::kind, stage_in<Cfg, 1>, Cfg::c[1], Cfg::stride[1], true, T>,
                      Repeat<Cfg::units - 1, Unit<Cfg::kind, Cfg::c[1], T>>,
                      Transition<Cfg::kind, stage_in<Cfg, 2>, Cfg::c[2], Cfg::stride[2], true, T>,
                      Repeat<Cfg::units - 1, Unit<Cfg::kind, Cfg::c[2], T>>, Head<Cfg::c[2], Cfg::classes, T>>;

/// The block names of Network, in order.
inline const std::array<std::string, 8> part_names{
    "init",         "stage1.transition", "stage1.units", "stage2.transition",
    "stage2.units", "stage3.transition", "stage3.units", "head"};

}  // namespace revnet

/// RevNet of configuration Cfg (revnet::R38, R110, R164, or a user's own with the same members)
/// over element type T on the CPU.
template <class Cfg, Scalar T = float>
class RevNet {
  static_assert(Cfg::units >= 2, "rev::models::RevNet: a stage needs its transition and at least one reversible unit");

 public:
  using value_type = T;
  using backend = cpu;
  using tensor_type = Tensor<T>;
  using network_type = revnet::Network<Cfg, T>;
  static constexpr int image_channels = 3;
  /// H and W must be multiples of this: the product of the stage strides.
  static constexpr int size_multiple = Cfg::stride[0] * Cfg::stride[1] * Cfg::stride[2];

  /// The tape of one training step; its mode (stored or reversible) is the network's.
  struct cache {
    cache(mode m = mode::stored) : net(m) {}
    typename network_type::cache net;
  };

  /// Conv weights truncated normal with std sqrt(2 / (k^2 C_out)), the FC weight uniform unit
  /// scaling U(+-sqrt(3 / fan_in)) with zero bias, BN gamma 1 and beta 0 (§2.1); drawn from g.
  explicit RevNet(Generator& g = default_generator()) {
    for_each_parameter([&](const std::string&, Param<T>& p) {
      const Shape& s = p.shape();
      if (s.rank() == 4)
        nn::init::trunc_normal(p.value, 0.0, std::sqrt(2.0 / static_cast<double>(s[0] * s[2] * s[3])), g);
      if (s.rank() == 2) {
        const double bound = std::sqrt(3.0 / static_cast<double>(s[1]));
        nn::init::uniform(p.value, -bound, bound, g);
      }
    });
    head().template get<4>().bias.value.fill(T(0));
  }

  static std::string name() { return std::string("rev::models::RevNet<") + Cfg::name + ">"; }

  /// Logits [B, classes] of images [B, 3, H, W], keeping nothing.
  tensor_type forward(const tensor_type& image, context& ctx) {
    check_input(image);
    return net_.forward(image, ctx);
  }
  /// Logits, keeping in `tape` what backward needs (stored) or only the checkpoints (reversible).
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    check_input(image);
    check<value_error>(tape.net.m == mode::stored || ctx.mode == phase::train, name(),
                       ": a reversible tape needs a train-phase forward (use mode::stored for eval-phase gradients)");
    return net_.forward(image, ctx, tape.net);
  }
  /// d loss / d image from d loss / d logits; adds every parameter's gradient.
  tensor_type backward(cache& tape, const tensor_type& dlogits) {
    check<shape_error>(dlogits.rank() == 2 && dlogits.size(1) == Cfg::classes, name(), ": dlogits has extents ",
                       dlogits.shape(), ", expected [B, ", Cfg::classes, "]");
    return net_.backward(tape.net, dlogits);
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    each_part(
        [&](auto& part, const std::string& part_name) { part.for_each_parameter(v, join_name(prefix, part_name)); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each_part([&](auto& part, const std::string& part_name) { part.for_each_buffer(v, join_name(prefix, part_name)); });
  }

  /// Loads parameters and BN running statistics by key; see io::load_state.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }
  io::file state_dict() { return io::state_dict(*this); }

  network_type& network() { return net_; }
  auto& head() { return net_.template get<7>(); }

 private:
  void check_input(const tensor_type& x) const {
    check<shape_error>(x.rank() == 4 && x.size(1) == image_channels, name(), ": image has extents ", x.shape(),
                       ", expected [B, 3, H, W]");
    check<shape_error>(
        x.size(2) > 0 && x.size(3) > 0 && x.size(2) % size_multiple == 0 && x.size(3) % size_multiple == 0, name(),
        ": image has extents ", x.shape(), ", H and W must be positive multiples of ", size_multiple);
  }
  template <class F>
  void each_part(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(net_.template get<I>(), revnet::part_names[I]), ...); }
    (std::make_index_sequence<8>{});
  }

  network_type net_;
};

}  // namespace rev::models
