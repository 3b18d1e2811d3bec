// RevCol-T/S/B/L/XL/H (Cai et al., "Reversible Column Networks", ICLR 2023) for image
// classification, as a composition of rev's combinators: the stem is an ordinary block; the
// columns are rev::Column couplings over the stem map and four levels, one reversible Chain, so
// that in a reversible tape no column keeps anything and activation memory does not grow with
// the number of columns; the classifier reads the top level of the last column. With
// intermediate supervision (Sec. 2.3) a rev::Tap after some columns runs a classifier and an
// image decoder on that column's top level; their loss gradients join the walk back where they
// attach. Parameters carry the official state_dict keys, so the released weights load by name.
//
//   rev::models::RevCol<rev::models::revcol::T> net;
//   net.load(rev::io::load("revcol_tiny.safetensors"));
//   auto logits = net.forward(image, ctx);                    // image [N, 3, H, W], H, W % 32 == 0
//   decltype(net)::cache tape{rev::mode::reversible};
//   auto y = net.forward(image, train_ctx, tape);
//   auto dimage = net.backward(tape, dlogits);
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/named.hpp"
#include "rev/coupling/column.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/fusion.hpp"
#include "rev/graph/per_level.hpp"
#include "rev/graph/residual.hpp"
#include "rev/graph/streams.hpp"
#include "rev/graph/tap.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/flatten.hpp"
#include "rev/nn/identity.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/resample.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/nn/space_to_depth.hpp"
#include "rev/ops/loss.hpp"

namespace rev::models {

namespace revcol {

inline constexpr int levels = 4;

// The variants: widths c, ConvNeXt blocks per level and column b, the number of columns, the
// official factories' stochastic-depth rate, and the official parameter counts without and
// with the intermediate heads (1000 classes). Every variant is built with intermediate
// supervision, as the official factories build them (their ImageNet-1k checkpoints hold the
// heads); revcol::no_aux<Cfg> is the same network with one classifier. H (`huge`) differs in
// one place: level 0 of every column after the first also reads the previous column's top level
// (RevCol-H's second up path, "up2"). A user's own configuration has the same members, and may
// add `kernel` (default 3), `classes` (default 1000), `inter_supv` (default true; needs a
// multiple of 4 columns) and `huge` (default false):
//   struct Mine { static constexpr const char* name = "mine"; static constexpr std::array<int, 4>
//     c{16, 32, 64, 128}, b{1, 1, 2, 1}; static constexpr int columns = 4, classes = 10;
//     static constexpr double drop_path = 0; };
#define REV_REVCOL_VARIANT(Name, C0, B0, B1, B2, B3, COLUMNS, DROP_PATH, HUGE, PARAMS, PARAMS_AUX) \
  struct Name {                                                                                    \
    static constexpr const char* name = #Name;                                                     \
    static constexpr std::array<int, 4> c{C0, 2 * C0, 4 * C0, 8 * C0};                             \
    static constexpr std::array<int, 4> b{B0, B1, B2, B3};                                         \
    static constexpr int columns = COLUMNS;                                                        \
    static constexpr double drop_path = DROP_PATH;                                                 \
    static constexpr bool huge = HUGE;                                                             \
    static constexpr long long reference_parameters = PARAMS;         /* no aux heads */           \
    static constexpr long long reference_parameters_aux = PARAMS_AUX; /* with them */              \
  };
REV_REVCOL_VARIANT(T, 64, 2, 2, 4, 2, 4, 0.1, false, 30456168LL, 33063984LL)
REV_REVCOL_VARIANT(S, 64, 2, 2, 4, 2, 8, 0.3, false, 60568424LL, 63176240LL)
REV_REVCOL_VARIANT(B, 72, 1, 1, 3, 2, 16, 0.4, false, 138616408LL, 141694960LL)
REV_REVCOL_VARIANT(L, 128, 1, 2, 6, 2, 8, 0.5, false, 273095400LL, 280372272LL)
REV_REVCOL_VARIANT(XL, 224, 1, 2, 6, 2, 8, 0.5, false, 833807400LL, 851958576LL)
REV_REVCOL_VARIANT(H, 360, 1, 2, 6, 2, 8, 0.5, true, 2157600160LL, 2199107704LL)  // spec: the aux count by formula
#undef REV_REVCOL_VARIANT

/// Cfg with one classifier ("cls.*") and no intermediate heads: what inference and fine-tuning
/// run.
template <class Cfg>
struct no_aux : Cfg {
  static constexpr bool inter_supv = false;
};

template <class Cfg>
constexpr int kernel_of() {
  if constexpr (requires { Cfg::kernel; }) return Cfg::kernel;
  else return 3;
}
template <class Cfg>
constexpr int classes_of() {
  if constexpr (requires { Cfg::classes; }) return Cfg::classes;
  else return 1000;
}
template <class Cfg>
constexpr bool inter_supv_of() {
  if constexpr (requires { Cfg::inter_supv; }) return Cfg::inter_supv;
  else return true;
}
template <class Cfg>
constexpr bool huge_of() {
  if constexpr (requires { Cfg::huge; }) return Cfg::huge;
  else return false;
}
template <class Cfg>
inline constexpr int kernel = kernel_of<Cfg>();
template <class Cfg>
inline constexpr int classes = classes_of<Cfg>();
template <class Cfg>
inline constexpr bool inter_supv = inter_supv_of<Cfg>();
template <class Cfg>
inline constexpr bool huge = huge_of<Cfg>();

/// The columns after which an intermediate head reads the top level: (i + 1) a multiple of
/// columns / 4, the last column excepted (its classifier is the final one). Head k = 0, 1, 2
/// follows column (k + 1) * columns / 4 - 1.
template <class Cfg>
constexpr int head_after(int column) {
  const int interval = Cfg::columns / 4;
  if (!inter_supv<Cfg> || column == Cfg::columns - 1 || (column + 1) % interval != 0) return -1;
  return column / interval;
}

/// The parameter count of a configuration from its widths alone (the official model's).
template <class Cfg>
constexpr long long parameter_count() {
  const auto& c = Cfg::c;
  const long long k2 = static_cast<long long>(kernel<Cfg>) * kernel<Cfg>;
  auto block = [](long long w, long long ratio, long long kk) {  // dwconv, norm, pwconv1/2, gamma
    return kk * w + w + 2 * w + ratio * w * w + ratio * w + ratio * w * w + w + w;
  };
  long long n = 48LL * c[0] + 3LL * c[0];  // stem conv 4x4 and its LayerNorm
  for (int i = 0; i < Cfg::columns; ++i)
    for (int l = 0; l < levels; ++l) {
      n += c[l] + Cfg::b[l] * block(c[l], 4, k2);                             // alpha_l, the blocks
      if (l > 0) n += 4LL * c[l - 1] * c[l] + 3LL * c[l];                     // down: conv 2x2, LayerNorm
      if (i > 0 && l < 3) n += 1LL * c[l + 1] * c[l] + 3LL * c[l];            // up: Linear, LayerNorm
      if (i > 0 && l == 0 && huge<Cfg>) n += 1LL * c[3] * c[0] + 3LL * c[0];  // H's up2
    }
  const long long head = 2LL * c[3] + 1LL * c[3] * classes<Cfg> + classes<Cfg>;
  if (!inter_supv<Cfg>) return n + head;
  n += 4 * head;
  long long decoder = 0;
  if (classes < Cfg >> 1000) {
    decoder = 2LL * c[3] + 3072LL * c[3] + 3072;
  } else {
    for (int s = 1; s <= 3; ++s) {
      const long long in = c[4 - s], out = c[3 - s];
      decoder += in * out + 3 * out + block(out, 1, 9);
    }
    decoder += 48LL * c[0] + 48;
  }
  return n + 3 * decoder;
}

// ---- the column's pieces (Sec. 2.2 and Fig. 2c; Fig. 2 of ConvNeXt) ----

/// ConvNeXt block of width C: x + DropPath(gamma * pwconv2(GELU(pwconv1(LN(dwconv(x)))))),
/// dwconv K x K depthwise, the MLP Ratio * C wide, gamma initialised to 1e-6. DropPath declares
/// only whether the block drops paths; the rate is set at run time (RevCol::set_stochastic_depth).
template <int C, int K, int Ratio, bool Drop, Scalar T, class B>
using ConvNeXtBlock = Residual<
    nn::Sequential<Named<"dwconv", nn::Conv2d<C, C, nn::conv_opts{.kernel = K, .groups = C, .bias = true}, T, B>>,
                   Named<"norm", nn::LayerNorm2d<C, nn::eps_1e6, T, B>>,
                   Named<"pwconv1", nn::PointwiseLinear<C, Ratio * C, true, T, B>>, nn::GELU<T, B>,
                   Named<"pwconv2", nn::PointwiseLinear<Ratio * C, C, true, T, B>>>,
    residual_opts{.layer_scale = 1e-6, .drop_path = Drop ? 0.5 : 0.0}>;

/// Level l's down path: conv 2x2 stride 2 from the level below, then a channels-first
/// LayerNorm; level 0 reads the stem map unchanged.
template <class Cfg, int L, Scalar T, class B>
constexpr auto down_path() {
  if constexpr (L == 0) {
    return std::type_identity<nn::Identity<T, B>>{};
  } else {
    constexpr int in = Cfg::c[L - 1], out = Cfg::c[L];
    return std::type_identity<
        Named<"fusion",
              Named<"down",
                    nn::Sequential<
                        nn::Conv2d<in, out, nn::conv_opts{.kernel = 2, .stride = 2, .padding = 0, .bias = true}, T, B>,
                        nn::LayerNorm2d<out, nn::eps_1e6, T, B>>>>>{};
  }
}

/// An up path from width In to Out, up-sampling by Factor: a Linear over the channels and a
/// LayerNorm at the low resolution, then nearest up-sampling.
template <fixed_string Key, int In, int Out, int Factor, Scalar T, class B>
using UpPath = Named<
    "fusion",
    Named<Key, nn::Sequential<Named<"channel_reschedule", nn::Sequential<nn::PointwiseLinear<In, Out, true, T, B>,
                                                                         nn::LayerNorm2d<Out, nn::eps_1e6, T, B>>>,
                              nn::UpsampleNearest<Factor, T, B>>>>;

/// Level l's up path ("up") from the previous column's level l + 1, by 2. None in a first column
/// and at the top level.
template <class Cfg, int L, bool First, Scalar T, class B>
constexpr auto up_path() {
  if constexpr (First || L == levels - 1) return std::type_identity<no_input>{};
  else return std::type_identity<UpPath<"up", Cfg::c[L + 1], Cfg::c[L], 2, T, B>>{};
}

/// H's second up path ("up2") of level 0 from the previous column's top level, by 8 (spec §11).
/// None elsewhere.
template <class Cfg, int L, bool First, Scalar T, class B>
constexpr auto top_path() {
  if constexpr (First || L != 0 || !huge<Cfg>) return std::type_identity<no_input>{};
  else return std::type_identity<UpPath<"up2", Cfg::c[levels - 1], Cfg::c[0], 8, T, B>>{};
}

/// The levels of a column: Fuse<l>(low, high) = Blocks_l(Down_l(low) + Up_l(high)) (eq. 3 with
/// m = 4: the level below in this column and the level above in the previous one); H's level 0
/// adds Up2(top).
template <class Cfg, bool First, Scalar T, class B>
struct column_levels {
  template <int L>
  using Fuse =
      Fusion<typename decltype(down_path<Cfg, L, T, B>())::type,
             typename decltype(up_path<Cfg, L, First, T, B>())::type,
             Named<"blocks", Repeat<Cfg::b[L], ConvNeXtBlock<Cfg::c[L], kernel<Cfg>, 4, (Cfg::drop_path > 0), T, B>>>,
             typename decltype(top_path<Cfg, L, First, T, B>())::type>;
};

/// Column i: subnet<i>, its levels "level<l>" and reversible scalings "alpha<l>".
template <class Cfg, int I, Scalar T, class B>
using ColumnOf = NamedAt<
    "subnet", I,
    Column<levels, column_levels<Cfg, I == 0, T, B>::template Fuse, (I == 0 ? column_kind::first : column_kind::next)>>;

// ---- heads (Sec. 2.3) ----

/// Global average pooling of the top level, LayerNorm, Linear ("classifier.0", "classifier.1").
template <class Cfg, Scalar T, class B>
using Classifier = nn::Sequential<nn::GlobalAvgPool<T, B>, nn::Flatten<T, B>,
                                  Named<"classifier", nn::Sequential<nn::LayerNorm<Cfg::c[3], nn::eps_1e6, T, B>,
                                                                     nn::Linear<Cfg::c[3], classes<Cfg>, true, T, B>>>>;

/// Decoder stage s = 0, 1, 2 from width In to Out: conv 1x1, channels-first LayerNorm, GELU,
/// bilinear up-sampling by 2 with aligned corners ("proj_layers.<s>"), then one ConvNeXt block
/// of MLP ratio 1 ("normal_layers.<s>.0").
template <int S, int In, int Out, Scalar T, class B>
using DecoderStage = Unnamed<nn::Sequential<
    Named<"proj_layers", NamedAt<"", S,
                                 nn::Sequential<nn::Conv2d<In, Out, nn::conv_opts{.kernel = 1, .bias = true}, T, B>,
                                                nn::LayerNorm2d<Out, nn::eps_1e6, T, B>, nn::GELU<T, B>,
                                                nn::UpsampleBilinearAligned<2, T, B>>>>,
    Named<"normal_layers", NamedAt<"", S, nn::Sequential<ConvNeXtBlock<Out, 3, 1, false, T, B>>>>>>;

/// The image decoder of a 1000-class model: three stages from the top level's stride 32 to the
/// stride 4 of level 0, then conv 1x1 to 48 channels and PixelShuffle(4) ("projback"): logits of
/// the image [N, 3, H, W]. With more classes (ImageNet-22k) the single-layer decoder:
/// channels-first LayerNorm, conv 1x1 to 3 * 32 * 32, PixelShuffle(32).
template <class Cfg, Scalar T, class B>
constexpr auto decoder() {
  constexpr auto& c = Cfg::c;
  if constexpr (classes < Cfg >> 1000) {
    return std::type_identity<
        Named<"projback", nn::Sequential<nn::LayerNorm2d<c[3], nn::eps_1e6, T, B>,
                                         nn::Conv2d<c[3], 3 * 32 * 32, nn::conv_opts{.kernel = 1, .bias = true}, T, B>,
                                         nn::PixelShuffle<32, T, B>>>>{};
  } else {
    return std::type_identity<nn::Sequential<
        DecoderStage<0, c[3], c[2], T, B>, DecoderStage<1, c[2], c[1], T, B>, DecoderStage<2, c[1], c[0], T, B>,
        Named<"projback", nn::Sequential<nn::Conv2d<c[0], 48, nn::conv_opts{.kernel = 1, .bias = true}, T, B>,
                                         nn::PixelShuffle<4, T, B>>>>>{};
  }
}
template <class Cfg, Scalar T, class B>
using Decoder = typename decltype(decoder<Cfg, T, B>())::type;

/// Intermediate head k on a column's top level: {logits, image logits}, the classifier
/// "cls_blocks.<k>" and the decoder "decoder_blocks.<k>".
template <class Cfg, int K, Scalar T, class B>
using AuxHead = Chain<Fork<2, T, B>, Unnamed<PerLevel<Named<"cls_blocks", NamedAt<"", K, Classifier<Cfg, T, B>>>,
                                                      Named<"decoder_blocks", NamedAt<"", K, Decoder<Cfg, T, B>>>>>>;

/// The tap after column i, reading level 3 (stream 4 of {x, b_0, ..., b_3}).
template <class Cfg, int K, Scalar T, class B>
using HeadTap = Unnamed<Tap<AuxHead<Cfg, K, T, B>, stream<4, levels + 1>>>;

/// The final head: the last column's top level classified ("cls", or "cls_blocks.3" beside the
/// intermediate heads).
template <class Cfg, Scalar T, class B>
constexpr auto final_head() {
  using select = Select<levels, levels + 1, T, B>;
  if constexpr (inter_supv<Cfg>)
    return std::type_identity<Chain<select, Named<"cls_blocks", NamedAt<"", 3, Classifier<Cfg, T, B>>>>>{};
  else return std::type_identity<Chain<select, Named<"cls", Classifier<Cfg, T, B>>>>{};
}
template <class Cfg, Scalar T, class B>
using Head = typename decltype(final_head<Cfg, T, B>())::type;

// ---- the network ----

/// The stem: conv 4x4 stride 4 and a channels-first LayerNorm ("stem.0", "stem.1").
template <class Cfg, Scalar T, class B>
using Stem =
    nn::Sequential<nn::Conv2d<3, Cfg::c[0], nn::conv_opts{.kernel = 4, .stride = 4, .padding = 0, .bias = true}, T, B>,
                   nn::LayerNorm2d<Cfg::c[0], nn::eps_1e6, T, B>>;

template <class Cfg, int I, Scalar T, class B>
constexpr auto column_blocks() {
  if constexpr (head_after<Cfg>(I) >= 0)
    return std::tuple<ColumnOf<Cfg, I, T, B>, HeadTap<Cfg, head_after<Cfg>(I), T, B>>{};
  else return std::tuple<ColumnOf<Cfg, I, T, B>>{};
}
template <class Tuple>
struct chain_of;
template <class... S>
struct chain_of<std::tuple<S...>> {
  using type = Chain<S...>;
};
template <class Cfg, Scalar T, class B, class Seq>
struct columns_of;
template <class Cfg, Scalar T, class B, std::size_t... I>
struct columns_of<Cfg, T, B, std::index_sequence<I...>> {
  using type = typename chain_of<decltype(std::tuple_cat(column_blocks<Cfg, static_cast<int>(I), T, B>()...))>::type;
};

/// The columns: {x} -> {x, b_0, ..., b_3} of the last column, one reversible Chain of couplings
/// (the taps of the intermediate heads are couplings too).
template <class Cfg, Scalar T, class B>
using Columns = typename columns_of<Cfg, T, B, std::make_index_sequence<Cfg::columns>>::type;

template <class Cfg, Scalar T, class B>
using Network = Chain<Named<"stem", Stem<Cfg, T, B>>, Unnamed<Columns<Cfg, T, B>>, Unnamed<Head<Cfg, T, B>>>;

}  // namespace revcol

/// RevCol classifier of variant Cfg (revcol::T .. XL, H, revcol::no_aux<...>) over element type T
/// on backend B: the Chain revcol::Network, with the image checks, the official names and
/// initialisation. Its tape is that chain's cache; its backward that chain's.
template <class Cfg, Scalar T = float, class B = cpu>
class RevCol : public revcol::Network<Cfg, T, B> {
  static_assert(Cfg::columns >= 1, "rev::models::RevCol: needs at least one column");
  static_assert(!revcol::inter_supv<Cfg> || Cfg::columns % 4 == 0,
                "rev::models::RevCol: intermediate supervision needs a multiple of 4 columns (its heads follow "
                "every columns/4-th column); use revcol::no_aux<Cfg> or inter_supv = false");
  using network_type = revcol::Network<Cfg, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = RevCol<Cfg, T2, B2>;
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using pyramid = Tensors<T, revcol::levels, B>;
  using cache = typename network_type::cache;
  using columns_type = Unnamed<revcol::Columns<Cfg, T, B>>;
  static constexpr int classes = revcol::classes<Cfg>;
  static constexpr int column_count = Cfg::columns;
  static constexpr bool inter_supv = revcol::inter_supv<Cfg>;

  /// Weights initialised as the official code does (Conv and Linear weights normal with std
  /// 0.02, their biases 0; LayerNorms 1 and 0; alpha 0.5; layer scales 1e-6), drawn from g; the
  /// variant's stochastic-depth rate.
  explicit RevCol(Generator& g = default_generator()) {
    this->for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      if (p.value.rank() >= 2 && name.ends_with(".weight")) nn::init::normal(p.value, 0.0, 0.02, g);
      else if (name.ends_with(".bias")) p.value.fill(T(0));
    });
    set_stochastic_depth(Cfg::drop_path);
  }

  /// Sets the stochastic-depth rate: the j-th block of level l in every column drops paths
  /// with rate p * k / (K - 1), k = b_0 + ... + b_{l-1} + j, K = b_0 + ... + b_3 (the
  /// schedule restarts in each column). A configuration declared with rate 0 has none to set.
  void set_stochastic_depth(double p) {
    int total = 0;
    for (int count : Cfg::b) total += count;
    for_each_index<Cfg::columns>([&](auto i) {
      auto& column = column_at<i>();
      for_each_index<revcol::levels>([&](auto l) {
        int start = 0;  // the schedule index of the level's first block
        for (std::size_t k = 0; k < l; ++k) start += Cfg::b[k];
        auto& blocks = column.template level<l>().body();
        for (int j = 0; j < Cfg::b[l]; ++j) {
          const double rate = total > 1 ? p * (start + j) / (total - 1) : 0.0;
          apply(blocks[static_cast<std::size_t>(j)], [&](nn::DropPath<T, B>& d) { d.set_p(rate); });
        }
      });
    });
  }

  static std::string name() { return std::string("rev::models::RevCol<") + Cfg::name + ">"; }

  /// Logits [N, classes] of image [N, 3, H, W], keeping nothing. The intermediate heads run
  /// only where a loss is attached to them (CompoundLoss).
  tensor_type forward(const tensor_type& image, context& ctx) {
    check_image(image);
    return network_type::forward(image, ctx);
  }
  /// Logits, keeping in `tape` what backward needs (stored) or only the stem's input, the
  /// head's record and the intermediate heads' output gradients (reversible).
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    check_image(image);
    return network_type::forward(image, ctx, tape);
  }

  /// The last column's levels b_0..b_3, [N, c_l, H / 2^(l+2), W / 2^(l+2)]: the feature pyramid
  /// RevCol's detection and segmentation backbones return.
  pyramid features(const tensor_type& image, context& ctx) {
    check_image(image);
    auto state = columns().forward(stem().forward(image, ctx), ctx);
    return {state[1], state[2], state[3], state[4]};
  }

  /// Loads parameters by their official keys. strict: a missing, unexpected or mis-shaped key
  /// throws io_error; otherwise the matching keys are loaded and the rest reported.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }
  /// Parameters under the official keys.
  io::file state_dict() { return io::state_dict(*this); }

  auto& stem() { return this->template get<0>(); }
  columns_type& columns() { return this->template get<1>(); }
  auto& head() { return this->template get<2>(); }

  /// Column I (its Column coupling: levels, gammas).
  template <int I>
  auto& column_at() {
    return columns().template get<position<I>()>();
  }
  /// The tap of intermediate head K = 0, 1, 2 (set its on_output, or use CompoundLoss).
  template <int K>
  auto& head_tap() requires inter_supv {
    return columns().template get<position<(K + 1) * (Cfg::columns / 4) - 1>() + 1>();
  }

 private:
  // The position of column I in the Columns chain: after the earlier columns and taps.
  template <int I>
  static constexpr std::size_t position() {
    std::size_t p = 0;
    for (int i = 0; i < I; ++i) p += revcol::head_after<Cfg>(i) >= 0 ? 2 : 1;
    return p;
  }

  void check_image(const tensor_type& image) const {
    check<shape_error>(image.rank() == 4 && image.size(1) == 3, name(), ": image has extents ", image.shape(),
                       ", expected [N, 3, H, W]");
    check<shape_error>(image.size(2) % 32 == 0 && image.size(3) % 32 == 0 && image.size(2) > 0 && image.size(3) > 0,
                       name(), ": image has extents ", image.shape(),
                       ", H and W must be positive multiples of 32 (the up paths double the level above, which is "
                       "the level below halved four times)");
  }
};

namespace revcol {

/// The options of CompoundLoss: the weights of the image and class terms of the intermediate
/// heads (every official training configuration: 3.0 and 0.7), the normalisation the image
/// was given (ImageNet's mean and std), the classification loss's label smoothing.
struct compound_opts {
  double fcoe = 3.0, ccoe = 0.7;
  std::array<double, 3> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  double label_smoothing = 0;
};

/// RevCol's training loss with intermediate supervision (Sec. 2.3): with heads k = 0, 1, 2 after
/// columns and the final classifier,
///   L = sum_k [ fcoe (1 - k/3) BCE(img_k, I) + ccoe (k + 1)/4 CE(logits_k, y) ] + CE(logits, y),
/// BCE with logits (mean) against I = image * std + mean clamped to [0.01, 0.99], CE the
/// cross-entropy. It hangs the head terms on the network's taps: each head's gradient enters the
/// backward where it attaches, and in a reversible tape only that gradient is kept.
///
///   revcol::CompoundLoss loss(net);
///   loss.set_batch(image, labels);              // before the forward
///   auto logits = net.forward(image, ctx, tape);
///   double l = loss.finish(logits);             // the total; loss.parts() the four terms
///   net.backward(tape, loss.gradient(logits));
template <class Net>
class CompoundLoss {
  static_assert(Net::inter_supv, "rev::models::revcol::CompoundLoss: the network has no intermediate heads");
  using T = typename Net::value_type;
  using B = typename Net::backend;
  using tensor_type = Tensor<T, B>;

 public:
  explicit CompoundLoss(Net& net, compound_opts o = {}) : net_(net), o_(o) {
    for_each_index<3>([&](auto k) {
      net_.template head_tap<k>().on_output = [this, k](const Tensors<T, 2, B>& out) { return head(k, out); };
    });
  }
  ~CompoundLoss() {
    for_each_index<3>([&](auto k) { net_.template head_tap<k>().on_output = nullptr; });
  }
  CompoundLoss(const CompoundLoss&) = delete;
  CompoundLoss& operator=(const CompoundLoss&) = delete;

  /// The batch of the next forward: the normalised image [N, 3, H, W] the network reads (not
  /// modified) and the class of each sample.
  void set_batch(const tensor_type& image, std::span<const int> targets) {
    check<shape_error>(image.rank() == 4 && image.size(1) == 3, "rev::models::revcol::CompoundLoss: image has extents ",
                       image.shape(), ", expected [N, 3, H, W]");
    target_ = image.clone();
    const index_t N = image.size(0), hw = image.size(2) * image.size(3);
    for (index_t n = 0; n < N; ++n)
      for (index_t ch = 0; ch < 3; ++ch) {
        const auto c = static_cast<std::size_t>(ch);
        T* p = target_.data() + (n * 3 + ch) * hw;
        for (index_t i = 0; i < hw; ++i)
          p[i] = static_cast<T>(std::clamp(static_cast<double>(p[i]) * o_.std[c] + o_.mean[c], 0.01, 0.99));
      }
    targets_.assign(targets.begin(), targets.end());
    parts_ = {};
  }

  /// The total loss, given the final logits of the forward that ran the heads.
  double finish(const tensor_type& logits) {
    parts_[3] = ops::cross_entropy(logits, std::span<const int>(targets_), o_.label_smoothing);
    return parts_[0] + parts_[1] + parts_[2] + parts_[3];
  }
  /// d L / d logits of the final classifier.
  tensor_type gradient(const tensor_type& logits) const {
    return ops::cross_entropy_backward(logits, std::span<const int>(targets_), o_.label_smoothing);
  }
  /// The terms of the last finish(): heads 0, 1, 2 (image and class terms), the final classifier.
  const std::array<double, 4>& parts() const { return parts_; }
  /// The clamped, de-normalised image the decoders are compared with.
  const tensor_type& image_target() const { return target_; }

 private:
  Tensors<T, 2, B> head(int k, const Tensors<T, 2, B>& out) {
    check<value_error>(!targets_.empty(), "rev::models::revcol::CompoundLoss: set_batch before the forward");
    const double wi = o_.fcoe * (1 - k / 3.0), wc = o_.ccoe * (k + 1) / 4.0;
    const std::span<const int> y(targets_);
    parts_[static_cast<std::size_t>(k)] =
        wi * ops::bce_with_logits(out[1], target_) + wc * ops::cross_entropy(out[0], y, o_.label_smoothing);
    return {ops::cross_entropy_backward(out[0], y, o_.label_smoothing, wc),
            ops::bce_with_logits_backward(out[1], target_, wi)};
  }

  Net& net_;
  compound_opts o_;
  tensor_type target_;
  std::vector<int> targets_;
  std::array<double, 4> parts_{};
};

}  // namespace revcol

}  // namespace rev::models
