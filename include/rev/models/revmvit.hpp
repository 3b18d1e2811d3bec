// Rev-MViT (Mangalam et al., "Reversible Vision Transformers", CVPR 2022, Sec. 3.3) in the
// official layout (facebookresearch/SlowFast, REV_MVIT_B_16_CONV), as a composition of rev's
// combinators. Four stages of widths C, 2C, 4C, 8C on token grids s, s/2, s/4, s/8; each stage is
// a reversible stack of stage-preserving blocks (Sec. 3.3.2)
//
//   Y_1 = X_1 + F(X_2),  F = LayerNorm -> pooling attention (K, V pooled, Q not) -> drop-path
//   Y_2 = X_2 + G(Y_1),  G = LayerNorm -> MLP (4x, exact GELU) -> drop-path
//
// on two streams that start equal (Sec. 3.2.1), and the stages are joined by non-reversible
// stage-transition blocks (Sec. 3.3.1) on the concatenation [Y_1 | Y_2] of width 2C:
//
//   z  = x + MLP_2x(x)                        the lateral fusion ("pre_q_fuse", Table 6's 2x-MLP)
//   x' = P_q(z) + MHPA(LayerNorm(z))          Q pooled with stride 2; the residual pooled by the
//                                             attention's own Q pooling ("F.attn.pool_q", norm_q)
//   x''= DropPath(x' + G(x'))                 SlowFast drops the whole output
//
// In a reversible tape a transition is checkpointed (its input kept, re-run in the backward): as
// in the official code, only the reversible stacks keep nothing. The end is Rev-ViT's SlowFast
// termination: [Y_1 | Y_2] -> LayerNorm(16C) -> mean over tokens -> Linear.
//
//   rev::models::RevMViT<rev::models::revmvit::B> net;
//   net.load(rev::io::load("REV_MVIT_B_16.safetensors"));     // SlowFast's keys
//   auto logits = net.forward(image, ctx);                     // image [N, 3, 224, 224]
//
// Keys follow SlowFast's one numbering of all blocks: "rev_backbone.layers.<i>" with the
// transitions at i = n_0, n_0 + n_1 + 1, n_0 + n_1 + n_2 + 2.
#pragma once

#include <array>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/core/named.hpp"
#include "rev/coupling/additive.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/residual.hpp"
#include "rev/graph/streams.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/models/revvit.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/pooling_attention.hpp"
#include "rev/nn/position_embedding.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/nn/tokens.hpp"

namespace rev::models {

namespace revmvit {

// A configuration states: name, image (square side), patch_kernel, patch_stride, patch_padding
// (the stem convolution), width (C) and heads of stage 0 (both double at each transition),
// blocks (the reversible blocks of each of the four stages, each >= 1), kv_stride (stage 0's
// K/V pooling stride, halved at each transition down to 1: MViT's adaptive rule), mlp_ratio,
// classes, drop_path (the last block's rate, rising linearly over all blocks).
/// Rev-MViT-B, 16 blocks (the paper's Table 8; SlowFast configs/ImageNet/REV_MVIT_B_16_CONV.yaml).
struct B {
  static constexpr const char* name = "B";
  static constexpr int image = 224, patch_kernel = 7, patch_stride = 4, patch_padding = 3;
  static constexpr int width = 96, heads = 1;
  static constexpr std::array<int, 4> blocks{1, 1, 10, 1};
  static constexpr int kv_stride = 4, mlp_ratio = 4, classes = 1000;
  static constexpr double drop_path = 0.1;
  static constexpr long long reference_parameters = 39689320LL;  // spec revvit.md §5
};

/// All blocks, transitions included (SlowFast's MVIT.DEPTH).
template <class Cfg>
inline constexpr int depth = Cfg::blocks[0] + Cfg::blocks[1] + Cfg::blocks[2] + Cfg::blocks[3] + 3;
/// The index of stage s's first reversible block; the transition into stage s is the one before.
template <class Cfg>
constexpr int first_block(int s) {
  int i = 0;
  for (int t = 0; t < s; ++t) i += Cfg::blocks[static_cast<std::size_t>(t)] + 1;
  return i;
}
/// The token grid side of stage 0 (the stem's output); stage s's is grid0 / 2^s.
template <class Cfg>
inline constexpr int grid0 = (Cfg::image + 2 * Cfg::patch_padding - Cfg::patch_kernel) / Cfg::patch_stride + 1;

/// A stage's width, heads, K/V stride and MLP ratio (and the classes), read by the blocks and by
/// revvit's G and head: configurations with equal stages share their block types.
template <int Width, int Heads, int KVStride, int MlpRatio, int Classes>
struct dims {
  static constexpr int width = Width, heads = Heads, kv_stride = KVStride, mlp_ratio = MlpRatio, classes = Classes;
};
/// Stage S's dims.
template <class Cfg, int S>
using stage = dims<(Cfg::width << S), (Cfg::heads << S), (Cfg::kv_stride >> S > 0 ? Cfg::kv_stride >> S : 1),
                   Cfg::mlp_ratio, Cfg::classes>;

/// The parameter count of a configuration.
template <class Cfg>
constexpr long long parameter_count() {
  long long n = 3LL * Cfg::patch_kernel * Cfg::patch_kernel * Cfg::width + Cfg::width +  // stem
                1LL * grid0<Cfg> * grid0<Cfg> * Cfg::width;                              // position embedding
  for (int s = 0; s < 4; ++s) {
    const long long c = static_cast<long long>(Cfg::width) << s, h = static_cast<long long>(Cfg::heads) << s,
                    m = static_cast<long long>(Cfg::mlp_ratio);
    const long long mlp = 2 * c + m * c * c + m * c + m * c * c + c;  // norm, fc1, fc2
    const long long attention = 2 * c + 4 * (c * c + c);              // norm, q, k, v, proj
    const long long pooled = 9 * (c / h) + 2 * (c / h);               // one pooling conv and its norm
    n += Cfg::blocks[static_cast<std::size_t>(s)] * (attention + 2 * pooled + mlp);
    if (s > 0) n += 4 * c * c + 3 * c + attention + 3 * pooled + mlp;  // the transition: fusion, F, G
  }
  const long long top = 16LL * Cfg::width;
  return n + 2 * top + top * Cfg::classes + Cfg::classes;  // norm, head
}

/// F of a stage-preserving block of a stage D: "F.norm", "F.attn" (K/V pooled), drop-path.
template <class D, Scalar T, class B>
using F = Unnamed<
    Named<"F", nn::Sequential<Named<"norm", nn::LayerNorm<D::width, nn::eps_1e6, T, B>>,
                              Named<"attn", nn::PoolingAttention<D::width, D::width, D::heads, 0, D::kv_stride, T, B>>,
                              nn::DropPath<T, B>>>>;

/// A stage-preserving block: Rev-ViT's coupling with pooled K and V; G is Rev-ViT's (SlowFast).
template <class D, Scalar T, class B>
using Block = Additive<F<D, T, B>, revvit::G<D, revvit::slowfast, T, B>, coupling_layout::streams>;

/// Stage S's reversible stack: the input duplicated into two streams, then its blocks.
template <class Cfg, int S, Scalar T, class B>
using Stack =
    Unnamed<Chain<Fork<2, T, B>, Unnamed<Repeat<Cfg::blocks[S], Block<stage<Cfg, S>, T, B>, first_block<Cfg>(S)>>>>;

/// SlowFast's Mlp of a given width and hidden width: "fc1", exact GELU, "fc2".
template <int W, int Hidden, Scalar T, class B>
using Mlp = nn::Sequential<Named<"fc1", nn::Linear<W, Hidden, true, T, B>>, nn::GELU<T, B>,
                           Named<"fc2", nn::Linear<Hidden, W, true, T, B>>>;

/// A stage-transition block into a stage D, on the two streams of the stage before (its G has no
/// drop-path of its own: the block's output is dropped as a whole).
template <class D, Scalar T, class B>
using TransitionBlock =
    Chain<ConcatStreams<2, T, B>, Named<"pre_q_fuse", Residual<Named<"fuse_fn", Mlp<D::width, 2 * D::width, T, B>>>>,
          Named<"F", nn::PooledResidualAttention<D::width, D::heads, D::kv_stride, T, B>>,
          Unnamed<Residual<Named<"G", nn::Sequential<Named<"norm", nn::LayerNorm<D::width, nn::eps_1e6, T, B>>,
                                                     Named<"mlp", Mlp<D::width, D::mlp_ratio * D::width, T, B>>>>>>,
          nn::DropPath<T, B>>;
/// The transition into stage S (S >= 1), keyed by its index.
template <class Cfg, int S, Scalar T, class B>
using Transition = NamedAt<"", static_cast<std::size_t>(first_block<Cfg>(S) - 1), TransitionBlock<stage<Cfg, S>, T, B>>;

/// The stem: "patch_embed.proj" (Conv2d with bias), tokens, "pos_embed".
template <class Cfg, Scalar T, class B>
using Stem =
    Chain<Named<"patch_embed", Named<"proj", nn::Conv2d<3, Cfg::width,
                                                        nn::conv_opts{.kernel = Cfg::patch_kernel,
                                                                      .stride = Cfg::patch_stride,
                                                                      .padding = Cfg::patch_padding,
                                                                      .bias = true},
                                                        T, B>>>,
          nn::MapToTokens<T, B>, Named<"pos_embed", nn::PositionEmbedding<grid0<Cfg> * grid0<Cfg>, Cfg::width, T, B>>>;

/// "rev_backbone.layers": the four stacks and the three transitions between them.
template <class Cfg, Scalar T, class B>
using Backbone = Named<
    "rev_backbone",
    Named<"layers", Chain<Stack<Cfg, 0, T, B>, Transition<Cfg, 1, T, B>, Stack<Cfg, 1, T, B>, Transition<Cfg, 2, T, B>,
                          Stack<Cfg, 2, T, B>, Transition<Cfg, 3, T, B>, Stack<Cfg, 3, T, B>>>>;

template <class Cfg, Scalar T, class B>
using Network =
    Chain<Unnamed<Stem<Cfg, T, B>>, Backbone<Cfg, T, B>, Unnamed<revvit::Head<stage<Cfg, 3>, revvit::slowfast, T, B>>>;

}  // namespace revmvit

/// Rev-MViT classifier of configuration Cfg (revmvit::B or one's own) over element type T on
/// backend B: the Chain revmvit::Network with the image checks, SlowFast's keys and
/// initialisation. Its tape is that chain's cache, its backward that chain's. The output is
/// logits in train and eval (SlowFast's head adds a softmax in eval; apply ops::softmax for it).
template <class Cfg, Scalar T = float, class B = cpu>
class RevMViT : public revmvit::Network<Cfg, T, B> {
  static_assert(Cfg::blocks[0] >= 1 && Cfg::blocks[1] >= 1 && Cfg::blocks[2] >= 1 && Cfg::blocks[3] >= 1,
                "rev::models::RevMViT: every stage needs at least one reversible block");
  static_assert(revmvit::grid0<Cfg> % 8 == 0,
                "rev::models::RevMViT: the stem's token grid must halve three times (a multiple of 8)");
  static_assert(Cfg::heads >= 1 && Cfg::width % Cfg::heads == 0,
                "rev::models::RevMViT: the width must be a multiple of the heads");
  using network_type = revmvit::Network<Cfg, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = RevMViT<Cfg, T2, B2>;
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using cache = typename network_type::cache;
  static constexpr int classes = Cfg::classes;
  static constexpr int depth = revmvit::depth<Cfg>;

  /// SlowFast's initialisation, drawn from g: Linear and convolution weights (the stem's and the
  /// pooling convolutions) and the position embedding normal(0, 0.02) (the truncation at +-2 is
  /// never reached), Linear and LayerNorm biases 0.02, LayerNorm weights 1; the stem's bias keeps
  /// PyTorch's default. Drop-path at Cfg::drop_path.
  explicit RevMViT(Generator& g = default_generator()) {
    this->for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      if (name.find("norm") != std::string::npos) p.value.fill(T(name.ends_with(".weight") ? 1 : 0.02));
      else if (name.ends_with(".weight") || name == "pos_embed") nn::init::normal(p.value, 0.0, 0.02, g);
      else if (!name.starts_with("patch_embed")) p.value.fill(T(0.02));
    });
    set_stochastic_depth(Cfg::drop_path);
  }

  static std::string name() { return std::string("rev::models::RevMViT<") + Cfg::name + ">"; }

  /// Drop-path in block i (of all depth blocks, transitions included) at rate p * i / (depth - 1).
  void set_stochastic_depth(double p) {
    auto rate = [&](int i) { return p * i / (depth - 1); };
    auto& layers = backbone();
    for_each_index<4>([&](auto s) {
      auto& stack = layers.template get<2 * s>().template get<1>();
      for (int j = 0; j < Cfg::blocks[s]; ++j)
        apply(stack[static_cast<std::size_t>(j)],
              [&](nn::DropPath<T, B>& d) { d.set_p(rate(revmvit::first_block<Cfg>(s) + j)); });
      if constexpr (s > 0)
        apply(layers.template get<2 * s - 1>(),
              [&](nn::DropPath<T, B>& d) { d.set_p(rate(revmvit::first_block<Cfg>(s) - 1)); });
    });
  }

  /// Logits [N, classes] of image [N, 3, image, image].
  tensor_type forward(const tensor_type& image, context& ctx) {
    check_image(image);
    return network_type::forward(image, ctx);
  }
  tensor_type forward(const tensor_type& image, context& ctx, cache& tape) {
    check_image(image);
    return network_type::forward(image, ctx, tape);
  }

  /// Loads parameters by SlowFast's keys. strict: a missing, unexpected or mis-shaped key throws
  /// io_error; otherwise the matching keys are loaded and the rest reported.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }
  io::file state_dict() { return io::state_dict(*this); }

  auto& stem() { return this->template get<0>(); }
  /// The stacks and transitions in order: get<0>() is stage 0's stack, get<1>() the first
  /// transition, ..., get<6>() stage 3's stack.
  auto& backbone() { return this->template get<1>(); }
  auto& head() { return this->template get<2>(); }

 private:
  void check_image(const tensor_type& image) const {
    revvit::check_image(name(), image, Cfg::image, revmvit::grid0<Cfg>, Cfg::patch_stride);
  }
};

}  // namespace rev::models
