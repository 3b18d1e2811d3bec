// minREV's Rev-MViT (karttikeya/minREV revmvit.py, spec revvit.md §4.2): reversible stacks and
// stage transitions over MViTv2's blocks (Li et al., CVPR 2022) instead of MViTv1's, as a
// composition of rev's combinators. Tokens of a square grid throughout; the reversible blocks are
// Rev-ViT's two-stream coupling (Mangalam et al., CVPR 2022, eq. (1)–(2))
//
//   Y_1 = X_1 + F(X_2),  F = LayerNorm -> MViTv2 attention (rel-pos, residual pooling, windows)
//   Y_2 = X_2 + G(Y_1),  G = LayerNorm -> MLP (4x, exact GELU)
//
// with F reading X_2: minREV's forward reads X_1 while its backward reconstructs with X_2, which
// gives wrong gradients as soon as a stack has two blocks (spec §4.2); rev uses the corrected
// form, the one the paper states. A stage transition is MViTv2's pre-norm block on the
// concatenation [Y_1 | Y_2]:
//
//   x' = MaxPool_3,2,1(x) + attn(LayerNorm(x))      queries pooled at stride 2
//   x''= x' + MLP(LayerNorm(x'))
//
// checkpointed in a reversible tape. The schedule follows minREV's constructor from the
// "last block indexes" (LBI): after a block in LBI the width, the heads and (on the two streams'
// concatenation) the next block's input double and the K/V stride halves (floor 1); the block
// after one in LBI is a transition; the block at LBI[1] pools K/V at twice the stride; blocks in
// LBI[1:] attend globally, the others in windows that halve after each transition. The
// relative-position tables are sized for the grid the constructor assumes (image / patch stride,
// halved at each transition). The end: [Y_1 | Y_2] (after a final stack) -> mean over tokens ->
// LayerNorm -> Linear. All LayerNorms eps 1e-5. Keys are minREV's: "patch_embed.proj",
// "blocks.<i>.{norm1, attn, norm2, mlp.fc1, mlp.fc2}", "norm", "head".
//
//   rev::models::RevMViTv2<rev::models::revmvitv2::Default> net;   // minREV's ReversibleMViT()
//   auto logits = net.forward(image, ctx);                          // image [N, 3, 224, 224]
#pragma once

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/named.hpp"
#include "rev/coupling/additive.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/residual.hpp"
#include "rev/graph/shortcut.hpp"
#include "rev/graph/streams.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/models/revmvit.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/mvitv2_attention.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/nn/tokens.hpp"

namespace rev::models {

namespace revmvitv2 {

// A configuration states what minREV's ReversibleMViT constructor takes: name, image (square
// side), patch_kernel, patch_stride, patch_padding, width (embed_dim), depth, heads,
// last_block_indexes (a std::array), kv_stride (adaptive_kv_stride), window
// (adaptive_window_size; 0: global attention everywhere), mlp_ratio, classes, drop_path (the last
// block's rate, rising linearly over the blocks).
/// minREV's ReversibleMViT defaults at 224 x 224 (not a paper model; spec §5: 36,413,896 parameters).
struct Default {
  static constexpr const char* name = "minrev";
  static constexpr int image = 224, patch_kernel = 7, patch_stride = 4, patch_padding = 3;
  static constexpr int width = 96, depth = 16, heads = 1;
  static constexpr std::array<int, 4> last_block_indexes{0, 2, 13, 15};
  static constexpr int kv_stride = 4, window = 56, mlp_ratio = 4, classes = 1000;
  static constexpr double drop_path = 0.0;
  static constexpr long long reference_parameters = 36413896LL;
};

/// What the constructor's bookkeeping gives block i.
struct block_plan {
  bool transition = false;
  int width = 0, heads = 0, q_stride = 1, kv_stride = 1, window = 0, table = 0;
};

/// A run of reversible blocks [first, last], or a transition (first == last).
struct segment {
  bool transition = false;
  int first = 0, last = 0;
};

template <class Cfg>
constexpr bool in_lbi(int i, std::size_t from = 0) {
  for (std::size_t k = from; k < Cfg::last_block_indexes.size(); ++k)
    if (Cfg::last_block_indexes[k] == i) return true;
  return false;
}

/// The token grid side of the stem's output.
template <class Cfg>
inline constexpr int grid0 = (Cfg::image + 2 * Cfg::patch_padding - Cfg::patch_kernel) / Cfg::patch_stride + 1;

/// Why a configuration cannot be built, or nullptr.
template <class Cfg>
constexpr const char* invalid() {
  const auto& lbi = Cfg::last_block_indexes;
  if (lbi.empty()) return "last_block_indexes is empty";
  for (std::size_t k = 0; k < lbi.size(); ++k) {
    if (lbi[k] < 0 || lbi[k] >= Cfg::depth) return "a last block index is outside [0, depth)";
    if (k > 0 && lbi[k] <= lbi[k - 1]) return "last_block_indexes must increase";
    if (k > 0 && lbi[k] == lbi[k - 1] + 1)
      return "two consecutive last block indexes make a transition follow a transition";
  }
  if (!in_lbi<Cfg>(Cfg::depth - 1) && !in_lbi<Cfg>(Cfg::depth - 2))
    return "the last block must be a last block index or a transition (the head reads the width after it)";
  return nullptr;
}

/// Each block's plan, as minREV's constructor computes it.
template <class Cfg>
constexpr std::array<block_plan, Cfg::depth> plan() {
  std::array<block_plan, Cfg::depth> p{};
  int width = Cfg::width, heads = Cfg::heads, kv = Cfg::kv_stride, window = Cfg::window;
  int size = Cfg::image / Cfg::patch_stride;
  const int lbi1 = Cfg::last_block_indexes.size() > 1 ? Cfg::last_block_indexes[1] : -1;
  for (int i = 0; i < Cfg::depth; ++i) {
    block_plan& b = p[static_cast<std::size_t>(i)];
    b.transition = i > 0 && in_lbi<Cfg>(i - 1);
    b.width = width;
    b.heads = heads;
    b.q_stride = b.transition ? 2 : 1;
    b.kv_stride = i == lbi1 ? 2 * kv : kv;
    b.window = in_lbi<Cfg>(i, 1) ? 0 : window;
    b.table = 2 * std::max(size / b.q_stride, size / b.kv_stride) - 1;
    if (in_lbi<Cfg>(i)) {
      width *= 2;
      heads *= 2;
      kv = std::max(kv / 2, 1);
    }
    if (b.transition) {
      window /= 2;
      size /= 2;
    }
  }
  return p;
}
template <class Cfg>
inline constexpr auto blocks = plan<Cfg>();

/// The width the head reads: the last block's output.
template <class Cfg>
inline constexpr int head_width = in_lbi<Cfg>(Cfg::depth - 1) ? 2 * blocks<Cfg>[Cfg::depth - 1].width
                                                              : blocks<Cfg>[Cfg::depth - 1].width;

/// The blocks grouped into reversible stacks and transitions, in order.
template <class Cfg>
constexpr int segment_count() {
  int n = 0;
  for (int i = 0; i < Cfg::depth; ++i)
    if (blocks<Cfg>[static_cast<std::size_t>(i)].transition || i == 0 ||
        blocks<Cfg>[static_cast<std::size_t>(i - 1)].transition)
      ++n;
  return n;
}
template <class Cfg>
constexpr std::array<segment, segment_count<Cfg>()> segments() {
  std::array<segment, segment_count<Cfg>()> s{};
  int n = -1;
  for (int i = 0; i < Cfg::depth; ++i) {
    const bool t = blocks<Cfg>[static_cast<std::size_t>(i)].transition;
    if (t || i == 0 || blocks<Cfg>[static_cast<std::size_t>(i - 1)].transition)
      s[static_cast<std::size_t>(++n)] = {t, i, i};
    else s[static_cast<std::size_t>(n)].last = i;
  }
  return s;
}

/// The parameter count of a configuration.
template <class Cfg>
constexpr long long parameter_count() {
  long long n = 3LL * Cfg::patch_kernel * Cfg::patch_kernel * Cfg::width + Cfg::width;  // stem
  for (const block_plan& b : blocks<Cfg>) {
    const long long c = b.width, d = c / b.heads, m = Cfg::mlp_ratio;
    n += 2 * c + 3 * c * c + 3 * c + c * c + c + 3 * (9 * d + 2 * d) + 2 * b.table * d;  // norm1, attention
    n += 2 * c + m * c * c + m * c + m * c * c + c;                                      // norm2, MLP
  }
  return n + 2LL * head_width<Cfg> + 1LL * head_width<Cfg> * Cfg::classes + Cfg::classes;  // norm, head
}

template <int W, Scalar T, class B>
using Norm = nn::LayerNorm<W, nn::eps_1e5, T, B>;

/// Block I's attention.
template <class Cfg, int I, Scalar T, class B>
using Attention = nn::MViTv2Attention<blocks<Cfg>[I].width, blocks<Cfg>[I].heads, blocks<Cfg>[I].q_stride,
                                      blocks<Cfg>[I].kv_stride, blocks<Cfg>[I].window, blocks<Cfg>[I].table, T, B>;

/// "norm1", "attn", drop-path: F of a reversible block, the attention branch of a transition.
template <class Cfg, int I, Scalar T, class B>
using AttentionBranch = nn::Sequential<Named<"norm1", Norm<blocks<Cfg>[I].width, T, B>>,
                                       Named<"attn", Attention<Cfg, I, T, B>>, nn::DropPath<T, B>>;
/// "norm2", "mlp", drop-path: G of a reversible block, the MLP branch of a transition.
template <class Cfg, int I, Scalar T, class B>
using MlpBranch =
    nn::Sequential<Named<"norm2", Norm<blocks<Cfg>[I].width, T, B>>,
                   Named<"mlp", revmvit::Mlp<blocks<Cfg>[I].width, Cfg::mlp_ratio * blocks<Cfg>[I].width, T, B>>,
                   nn::DropPath<T, B>>;

/// Reversible block I (F reads X_2: the corrected forward).
template <class Cfg, int I, Scalar T, class B>
using Block = NamedAt<
    "", static_cast<std::size_t>(I),
    Additive<Unnamed<AttentionBranch<Cfg, I, T, B>>, Unnamed<MlpBranch<Cfg, I, T, B>>, coupling_layout::streams>>;

/// Transition block I on the streams of the stack before it.
template <class Cfg, int I, Scalar T, class B>
using Transition = NamedAt<
    "", static_cast<std::size_t>(I),
    Chain<ConcatStreams<2, T, B>,
          Unnamed<Shortcut<nn::Sequential<nn::TokensToMap<T, B>, nn::MaxPool2d<3, 2, 1, T, B>, nn::MapToTokens<T, B>>,
                           AttentionBranch<Cfg, I, T, B>>>,
          Unnamed<Residual<MlpBranch<Cfg, I, T, B>>>>>;

template <class Cfg, int First, Scalar T, class B, std::size_t... J>
auto stack_blocks(std::index_sequence<J...>) -> Chain<Block<Cfg, First + static_cast<int>(J), T, B>...>;

/// Reversible blocks First..Last: the input duplicated into two streams, then the blocks.
template <class Cfg, int First, int Last, Scalar T, class B>
using Stack =
    Unnamed<Chain<Fork<2, T, B>, Unnamed<decltype(stack_blocks<Cfg, First, T, B>(
                                     std::make_index_sequence<static_cast<std::size_t>(Last - First + 1)>()))>>>;

template <class Cfg, std::size_t K, Scalar T, class B>
using Segment = std::conditional_t<segments<Cfg>()[K].transition, Transition<Cfg, segments<Cfg>()[K].first, T, B>,
                                   Stack<Cfg, segments<Cfg>()[K].first, segments<Cfg>()[K].last, T, B>>;

template <class Cfg, Scalar T, class B, std::size_t... K>
auto all_segments(std::index_sequence<K...>) -> Chain<Segment<Cfg, K, T, B>...>;

/// "blocks": the stacks and transitions in order.
template <class Cfg, Scalar T, class B>
using Blocks = Named<"blocks", decltype(all_segments<Cfg, T, B>(std::make_index_sequence<segment_count<Cfg>()>()))>;

/// The stem: "patch_embed.proj" (Conv2d with bias), tokens (no position embedding).
template <class Cfg, Scalar T, class B>
using Stem = Chain<Named<"patch_embed", Named<"proj", nn::Conv2d<3, Cfg::width,
                                                                 nn::conv_opts{.kernel = Cfg::patch_kernel,
                                                                               .stride = Cfg::patch_stride,
                                                                               .padding = Cfg::patch_padding,
                                                                               .bias = true},
                                                                 T, B>>>,
                   nn::MapToTokens<T, B>>;

/// The end: the streams joined (after a final stack), mean over tokens, "norm", "head".
template <class Cfg, Scalar T, class B>
constexpr auto head() {
  using tail = Chain<nn::MeanTokens<T, B>, Named<"norm", Norm<head_width<Cfg>, T, B>>,
                     Named<"head", nn::Linear<head_width<Cfg>, Cfg::classes, true, T, B>>>;
  if constexpr (blocks<Cfg>[Cfg::depth - 1].transition) return std::type_identity<tail>{};
  else return std::type_identity<Chain<ConcatStreams<2, T, B>, Unnamed<tail>>>{};
}
template <class Cfg, Scalar T, class B>
using Head = typename decltype(head<Cfg, T, B>())::type;

template <class Cfg, Scalar T, class B>
using Network = Chain<Unnamed<Stem<Cfg, T, B>>, Blocks<Cfg, T, B>, Unnamed<Head<Cfg, T, B>>>;

}  // namespace revmvitv2

/// minREV's Rev-MViT of configuration Cfg (revmvitv2::Default or one's own) over element type T
/// on backend B: the Chain revmvitv2::Network with the image checks, minREV's keys and its
/// initialisation. Other image sizes than Cfg::image run (the relative-position tables are
/// resampled, as in the reference) as long as every windowed block's query and key grids give
/// the same number of windows.
template <class Cfg, Scalar T = float, class B = cpu>
class RevMViTv2 : public revmvitv2::Network<Cfg, T, B> {
  static_assert(revmvitv2::invalid<Cfg>() == nullptr, "rev::models::RevMViTv2: invalid last_block_indexes");
  static_assert(Cfg::heads >= 1 && Cfg::width % Cfg::heads == 0,
                "rev::models::RevMViTv2: the width must be a multiple of the heads");
  using network_type = revmvitv2::Network<Cfg, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = RevMViTv2<Cfg, T2, B2>;
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using cache = typename network_type::cache;
  static constexpr int classes = Cfg::classes;
  static constexpr int depth = Cfg::depth;

  /// minREV's initialisation, drawn from g: Linear weights truncated normal(0, 0.02) at +-2 (never
  /// reached), Linear biases 0, LayerNorm 1 and 0, the relative-position tables 0; convolutions
  /// keep PyTorch's default. Drop-path at Cfg::drop_path.
  explicit RevMViTv2(Generator& g = default_generator()) {
    this->for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      if (name.find("norm") != std::string::npos) p.value.fill(T(name.ends_with(".weight") ? 1 : 0));
      else if (name.find("rel_pos") != std::string::npos) p.value.fill(T(0));
      else if (p.value.rank() == 2 && name.ends_with(".weight")) nn::init::normal(p.value, 0.0, 0.02, g);
      else if (p.value.rank() == 1 && name.find("pool") == std::string::npos && !name.starts_with("patch_embed"))
        p.value.fill(T(0));
    });
    set_stochastic_depth(Cfg::drop_path);
  }

  static std::string name() { return std::string("rev::models::RevMViTv2<") + Cfg::name + ">"; }

  /// Drop-path in block i at rate p * i / (depth - 1).
  void set_stochastic_depth(double p) {
    auto& segs = this->template get<1>();
    for_each_index<revmvitv2::segment_count<Cfg>()>([&](auto k) {
      constexpr auto s = revmvitv2::segments<Cfg>()[k];
      auto& seg = segs.template get<k>();
      auto rate = [&](int i) { return Cfg::depth > 1 ? p * i / (Cfg::depth - 1) : 0.0; };
      if constexpr (s.transition) apply(seg, [&](nn::DropPath<T, B>& d) { d.set_p(rate(s.first)); });
      else
        for_each_index<s.last - s.first + 1>([&](auto j) {
          apply(seg.template get<1>().template get<j>(), [&](nn::DropPath<T, B>& d) { d.set_p(rate(s.first + j)); });
        });
    });
  }

  /// Logits [N, classes] of image [N, 3, H, H].
  tensor_type forward(const tensor_type& image, context& ctx) {
    check_image(image);
    return network_type::forward(image, ctx);
  }
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    check_image(image);
    return network_type::forward(image, ctx, tape);
  }

  /// Loads parameters by minREV's keys. strict: a missing, unexpected or mis-shaped key throws
  /// io_error; otherwise the matching keys are loaded and the rest reported.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }
  io::file state_dict() { return io::state_dict(*this); }

  auto& stem() { return this->template get<0>(); }
  /// The stacks and transitions in order (revmvitv2::segments<Cfg>()).
  auto& segments() { return this->template get<1>(); }
  auto& head() { return this->template get<2>(); }

 private:
  void check_image(const tensor_type& image) const {
    check<shape_error>(image.rank() == 4 && image.size(1) == 3 && image.size(2) == image.size(3) &&
                           image.size(2) + 2 * Cfg::patch_padding >= Cfg::patch_kernel,
                       name(), ": image has extents ", image.shape(),
                       ", expected a square RGB image [N, 3, S, S] with S >= ",
                       Cfg::patch_kernel - 2 * Cfg::patch_padding, " (configured for S = ", Cfg::image, ")");
  }
};

}  // namespace rev::models
