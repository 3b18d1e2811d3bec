// RevNet-38/110/164 for CIFAR (Gomez, Ren, Urtasun, Grosse, NeurIPS 2017), a composition of
// rev's combinators. Each stage opens with an Additive unit with a shortcut, not reversible where
// it downsamples or widens (a checkpoint in reversible mode, its input kept), followed by additive
// couplings y1 = x1 + F(x2), y2 = x2 + G(y1) whose inputs are reconstructed in backward.
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
#include "rev/core/named.hpp"
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
#include "rev/nn/pad_channels.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"
#include "rev/ops/pool.hpp"

namespace rev::models {

namespace revnet {

enum class block { basic, bottleneck };

// The CIFAR configurations: residual function, units per stage, stem width, stage output
// widths, stage strides, classes, and the parameter count of the official topology. A
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

// BatchNorm of the official code: eps 1e-3, moving-average decay 0.99.
inline constexpr nn::bn_opts bn{.eps = 1e-3, .momentum = 0.01};
template <int C, Scalar T>
using BN = nn::BatchNorm2d<C, bn, T>;
template <int In, int Out, int K, int S, Scalar T>
using Conv = nn::Conv2d<In, Out, nn::conv_opts{.kernel = K, .stride = S}, T>;

// The residual functions, pre-activation: [BN -> ReLU ->] conv ... The leading BN-ReLU
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
    Additive<residual<K, C / 2, C / 2, 1, true, T>, residual<K, C / 2, C / 2, 1, true, T>, coupling_layout::halves>;

/// The shortcut of a half in the first unit of a stage, In / 2 -> Out / 2 channels at
/// stride S: basic, average pooling k = S then (Out - In) / 4 zero channels before and after;
/// bottleneck, a 1x1 conv at stride S (no bias) when S > 1 or In != Out. None otherwise.
template <block K, int In, int Out, int S, Scalar T>
struct shortcut_of {
  static_assert(In % 2 == 0 && Out % 2 == 0, "rev::models::revnet: channel counts must be even");
  static_assert(K != block::basic || (Out >= In && (Out - In) % 4 == 0),
                "rev::models::revnet: a basic unit pads each half with (Out - In) / 4 zero channels on both sides, so "
                "Out - In must be a non-negative multiple of 4");
  static constexpr int pad = (Out - In) / 4;
  using type = std::conditional_t<
      S == 1 && In == Out, no_shortcut,
      std::conditional_t<K == block::basic, nn::Sequential<nn::AvgPool2d<S, T>, nn::PadChannels<pad, pad, T>>,
                         Conv<In / 2, Out / 2, 1, S, T>>>;
};

/// The first unit of a stage, In -> Out channels at stride S:
///   y1 = sc(x1) + F(x2),  y2 = sc(x2) + G(y1),
/// an Additive with a shortcut: not invertible where sc is not the identity (a checkpoint in a
/// reversible tape), an Additive coupling where it is.
template <block K, int In, int Out, int S, bool Preact, Scalar T>
using Transition = Additive<residual<K, In / 2, Out / 2, S, Preact, T>, residual<K, Out / 2, Out / 2, 1, true, T>,
                            coupling_layout::halves, typename shortcut_of<K, In, Out, S, T>::type>;

/// Stem (CIFAR): 3x3 conv (no bias) -> BN -> ReLU.
template <int C, Scalar T>
using Stem = nn::Sequential<Conv<3, C, 3, 1, T>, BN<C, T>, nn::ReLU<T>>;
/// Head: BN -> ReLU -> global average pooling -> fully connected.
template <int C, int Classes, Scalar T>
using Head =
    nn::Sequential<BN<C, T>, nn::ReLU<T>, nn::GlobalAvgPool<T>, nn::Flatten<T>, nn::Linear<C, Classes, true, T>>;

template <class Cfg, int S>
inline constexpr int stage_in = S == 0 ? Cfg::stem : Cfg::c[S - 1];

/// Stage S (0-based): the transition, then units - 1 reversible units. F of the network's first
/// unit has no leading BN-ReLU: the stem has just applied them.
template <class Cfg, int S, Scalar T>
using Stage = Chain<Named<"transition", Transition<Cfg::kind, stage_in<Cfg, S>, Cfg::c[S], Cfg::stride[S], S != 0, T>>,
                    Named<"units", Repeat<Cfg::units - 1, Unit<Cfg::kind, Cfg::c[S], T>>>>;

/// The network, named init, stage1 .. stage3, head.
template <class Cfg, Scalar T>
using Network =
    Chain<Named<"init", Stem<Cfg::stem, T>>, Named<"stage1", Stage<Cfg, 0, T>>, Named<"stage2", Stage<Cfg, 1, T>>,
          Named<"stage3", Stage<Cfg, 2, T>>, Named<"head", Head<Cfg::c[2], Cfg::classes, T>>>;

}  // namespace revnet

/// RevNet of configuration Cfg (revnet::R38, R110, R164, or a user's own with the same members)
/// over element type T on the CPU: the Chain revnet::Network with the image checks. Its tape is
/// that chain's cache; its backward that chain's.
template <class Cfg, Scalar T = float>
class RevNet : public revnet::Network<Cfg, T> {
  static_assert(Cfg::units >= 2, "rev::models::RevNet: a stage needs its transition and at least one reversible unit");
  using network_type = revnet::Network<Cfg, T>;

 public:
  template <Scalar T2, class B2>
  using rebind = std::enable_if_t<std::same_as<B2, cpu>, RevNet<Cfg, T2>>;  // CPU only
  using value_type = T;
  using backend = cpu;
  using tensor_type = Tensor<T>;
  using cache = typename network_type::cache;
  static constexpr int image_channels = 3;
  /// H and W must be multiples of this: the product of the stage strides.
  static constexpr int size_multiple = Cfg::stride[0] * Cfg::stride[1] * Cfg::stride[2];

  /// Conv weights truncated normal with std sqrt(2 / (k^2 C_out)), the FC weight uniform unit
  /// scaling U(+-sqrt(3 / fan_in)) with zero bias, BN gamma 1 and beta 0; drawn from g.
  explicit RevNet(Generator& g = default_generator()) {
    this->for_each_parameter([&](const std::string&, Param<T>& p) {
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
    return network_type::forward(image, ctx);
  }
  /// Logits, keeping in `tape` what backward needs (stored) or only the checkpoints (reversible).
  /// backward(tape, dlogits) returns d loss / d images and adds every parameter's gradient.
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    check_input(image);
    return network_type::forward(image, ctx, tape);
  }

  /// Loads parameters and BN running statistics by key; see io::load_state.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }
  io::file state_dict() { return io::state_dict(*this); }

  network_type& network() { return *this; }
  auto& head() { return this->template get<4>(); }

 private:
  void check_input(const tensor_type& x) const {
    check<shape_error>(x.rank() == 4 && x.size(1) == image_channels, name(), ": image has extents ", x.shape(),
                       ", expected [B, 3, H, W]");
    check<shape_error>(
        x.size(2) > 0 && x.size(3) > 0 && x.size(2) % size_multiple == 0 && x.size(3) % size_multiple == 0, name(),
        ": image has extents ", x.shape(), ", H and W must be positive multiples of ", size_multiple);
  }
};

}  // namespace rev::models
