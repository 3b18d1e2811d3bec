// Rev-ViT (Mangalam et al., "Reversible Vision Transformers", CVPR 2022) as a composition of
// rev's combinators: a patch embedding (conv p x p, stride p) to tokens plus a learned position
// embedding; the tokens duplicated into two streams (Sec. 3.2.1: X_1 = X_2 = x, not split); a
// reversible stack of two-stream Additive couplings
//
//   Y_1 = X_1 + F(X_2),  F = LayerNorm -> multi-head self-attention -> drop-path
//   Y_2 = X_2 + G(Y_1),  G = LayerNorm -> MLP (Linear, exact GELU, Linear) -> drop-path
//
// (eq. 1 in the code's naming: stream 1 takes the attention), with no residual inside F or G;
// then a termination of the two streams and a linear head. The official codes differ in that
// end and in details, so the layout is part of the type:
//
//   revvit::slowfast  facebookresearch/SlowFast, the official checkpoints: separate q, k, v
//                     projections, LayerNorm eps 1e-6 throughout, [Y_1 | Y_2] -> LayerNorm(2C) ->
//                     mean over tokens -> Linear; keys "rev_backbone.layers.<i>...", "head.projection".
//   revvit::minrev    karttikeya/minREV rev.py (the golden data's): packed projections with
//                     torch.nn.MultiheadAttention's keys, eps 1e-5 in G's norm and the final norm,
//                     [Y_1 | Y_2] -> mean over tokens -> LayerNorm(2C) -> Linear; keys "layers.<i>...".
//
//   rev::models::RevViT<rev::models::revvit::B> net;                 // SlowFast's layout
//   net.load(rev::io::load("REV_VIT_B.safetensors"));
//   auto logits = net.forward(image, ctx);                          // image [N, 3, 224, 224]
//
// Drop-path runs on F's and G's outputs with the rate rising linearly over the blocks from 0 to
// Cfg::drop_path (set_stochastic_depth); the reversible backward replays each mask. SlowFast
// draws one mask per block for both; rev draws one per function (the same distribution).
#pragma once

#include <string>
#include <type_traits>

#include "rev/core/layer.hpp"
#include "rev/core/named.hpp"
#include "rev/coupling/additive.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/streams.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/attention.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/position_embedding.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/nn/tokens.hpp"

namespace rev::models {

namespace revvit {

// A configuration states: name, patch (p), image (square side, a multiple of p), width (C),
// depth, heads (C % heads == 0), mlp_ratio, classes, drop_path (the last block's rate). The
// paper's sizes (Table 7; SlowFast's REV_VIT_S/B configs for the drop-path rates) at 224 x 224.
#define REV_REVVIT_SIZE(Name, WIDTH, DEPTH, HEADS, DROP_PATH, PARAMS) \
  struct Name {                                                       \
    static constexpr const char* name = #Name;                        \
    static constexpr int patch = 16, image = 224;                     \
    static constexpr int width = WIDTH, depth = DEPTH;                \
    static constexpr int heads = HEADS, mlp_ratio = 4;                \
    static constexpr int classes = 1000;                              \
    static constexpr double drop_path = DROP_PATH;                    \
    static constexpr long long reference_parameters = PARAMS;         \
  };
REV_REVVIT_SIZE(S, 384, 12, 6, 0.1, 22434664LL)
REV_REVVIT_SIZE(B, 768, 12, 12, 0.2, 87335656LL)
REV_REVVIT_SIZE(L, 1024, 24, 16, 0.2, 305350632LL)
#undef REV_REVVIT_SIZE

/// The official checkpoints' layout (facebookresearch/SlowFast, MViT with MVIT.REV.ENABLE).
struct slowfast {
  static constexpr const char* name = "slowfast";
};
/// minREV's layout (karttikeya/minREV rev.py).
struct minrev {
  static constexpr const char* name = "minrev";
};
template <class L>
concept Layout = std::same_as<L, slowfast> || std::same_as<L, minrev>;

template <class Cfg>
inline constexpr int tokens = (Cfg::image / Cfg::patch) * (Cfg::image / Cfg::patch);

/// The image check of Rev-ViT and Rev-MViT: [N, 3, side, side], the size the position embedding
/// was made for. rev refuses another resolution rather than interpolating the embedding: the
/// error names both token grids (the patch embedding's stride is `stride`).
template <class X>
void check_image(const std::string& who, const X& image, int side, int grid, int stride) {
  const bool rgb = image.rank() == 4 && image.size(1) == 3;
  if (rgb && image.size(2) == side && image.size(3) == side) return;
  const std::string expected = ", expected [N, 3, " + std::to_string(side) + ", " + std::to_string(side) + "]";
  const std::string made_for =
      "the position embedding is made for a " + std::to_string(grid) + " x " + std::to_string(grid) + " token grid";
  check<shape_error>(rgb, who, ": image has extents ", image.shape(), expected);
  const index_t h = image.size(2), w = image.size(3);
  check<shape_error>(h % stride == 0 && w % stride == 0, who, ": image has extents ", image.shape(), expected, " (", h,
                     " x ", w, " is not a multiple of the patch stride ", stride, "; ", made_for, ")");
  check<shape_error>(false, who, ": image has extents ", image.shape(), expected, " (it gives a ", h / stride, " x ",
                     w / stride, " token grid, ", made_for,
                     "; another resolution needs a configuration of that image size: rev does not interpolate the "
                     "position embedding)");
}

/// The parameter count of a configuration (either layout: no class token; the head reads 2C).
template <class Cfg>
constexpr long long parameter_count() {
  const long long c = Cfg::width, h = static_cast<long long>(Cfg::mlp_ratio) * Cfg::width;
  const long long f = 2 * c + 3 * c * c + 3 * c + c * c + c;  // norm, q/k/v, output projection
  const long long g = 2 * c + h * c + h + c * h + c;          // norm, MLP
  const long long stem = 3LL * Cfg::patch * Cfg::patch * c + c + tokens<Cfg> * c;
  const long long head = 2 * 2 * c + 2 * c * Cfg::classes + Cfg::classes;
  return stem + Cfg::depth * (f + g) + head;
}

template <class L>
using g_eps = std::conditional_t<std::same_as<L, minrev>, nn::eps_1e5, nn::eps_1e6>;

/// F: LayerNorm (eps 1e-6) "norm", attention "attn", drop-path, keyed "F" (Unnamed: not under
/// the coupling's "f").
template <class Cfg, class L, Scalar T, class B>
using F = Unnamed<Named<
    "F", nn::Sequential<Named<"norm", nn::LayerNorm<Cfg::width, nn::eps_1e6, T, B>>,
                        Named<"attn", nn::MultiHeadAttention<Cfg::width, Cfg::heads, T, B,
                                                             std::same_as<L, minrev> ? nn::attention_keys::torch
                                                                                     : nn::attention_keys::separate>>,
                        nn::DropPath<T, B>>>>;

/// The MLP of G: "fc1", GELU, "fc2" (SlowFast) or "0", GELU, "2" (minREV's nn.Sequential).
template <class Cfg, class L, Scalar T, class B>
constexpr auto mlp() {
  using fc1 = nn::Linear<Cfg::width, Cfg::mlp_ratio * Cfg::width, true, T, B>;
  using fc2 = nn::Linear<Cfg::mlp_ratio * Cfg::width, Cfg::width, true, T, B>;
  if constexpr (std::same_as<L, minrev>)
    return std::type_identity<Named<"mlp", nn::Sequential<fc1, nn::GELU<T, B>, fc2>>>{};
  else return std::type_identity<Named<"mlp", nn::Sequential<Named<"fc1", fc1>, nn::GELU<T, B>, Named<"fc2", fc2>>>>{};
}
/// G: LayerNorm "norm" (eps 1e-6; minREV 1e-5), the MLP, drop-path, keyed "G".
template <class Cfg, class L, Scalar T, class B>
using G = Unnamed<Named<"G", nn::Sequential<Named<"norm", nn::LayerNorm<Cfg::width, g_eps<L>, T, B>>,
                                            typename decltype(mlp<Cfg, L, T, B>())::type, nn::DropPath<T, B>>>>;

/// One reversible block on the two streams.
template <class Cfg, class L, Scalar T, class B>
using Block = Additive<F<Cfg, L, T, B>, G<Cfg, L, T, B>, coupling_layout::streams>;

/// The blocks: "rev_backbone.layers.<i>" (SlowFast) or "layers.<i>" (minREV).
template <class Cfg, class L, Scalar T, class B>
constexpr auto blocks() {
  using stack = Named<"layers", Repeat<Cfg::depth, Block<Cfg, L, T, B>>>;
  if constexpr (std::same_as<L, minrev>) return std::type_identity<stack>{};
  else return std::type_identity<Named<"rev_backbone", stack>>{};
}
template <class Cfg, class L, Scalar T, class B>
using Blocks = typename decltype(blocks<Cfg, L, T, B>())::type;

/// The stem: the patch embedding ("patch_embed.proj"; minREV "patch_embed"), tokens, the
/// position embedding ("pos_embed"; minREV "pos_embeddings").
template <class Cfg, class L, Scalar T, class B>
constexpr auto stem() {
  using conv = nn::Conv2d<3, Cfg::width,
                          nn::conv_opts{.kernel = Cfg::patch, .stride = Cfg::patch, .padding = 0, .bias = true}, T, B>;
  using pos = nn::PositionEmbedding<tokens<Cfg>, Cfg::width, T, B>;
  if constexpr (std::same_as<L, minrev>)
    return std::type_identity<Chain<Named<"patch_embed", conv>, nn::MapToTokens<T, B>, Named<"pos_embeddings", pos>>>{};
  else
    return std::type_identity<
        Chain<Named<"patch_embed", Named<"proj", conv>>, nn::MapToTokens<T, B>, Named<"pos_embed", pos>>>{};
}
template <class Cfg, class L, Scalar T, class B>
using Stem = typename decltype(stem<Cfg, L, T, B>())::type;

/// The termination and head: [Y_1 | Y_2], then LayerNorm(2C) "norm" and the mean over tokens
/// (SlowFast: norm first; minREV: mean first), then Linear "head.projection" (minREV "head").
template <class Cfg, class L, Scalar T, class B>
constexpr auto head() {
  using linear = nn::Linear<2 * Cfg::width, Cfg::classes, true, T, B>;
  if constexpr (std::same_as<L, minrev>)
    return std::type_identity<
        Chain<ConcatStreams<2, T, B>, nn::MeanTokens<T, B>,
              Named<"norm", nn::LayerNorm<2 * Cfg::width, nn::eps_1e5, T, B>>, Named<"head", linear>>>{};
  else
    return std::type_identity<
        Chain<ConcatStreams<2, T, B>, Named<"norm", nn::LayerNorm<2 * Cfg::width, nn::eps_1e6, T, B>>,
              nn::MeanTokens<T, B>, Named<"head", Named<"projection", linear>>>>{};
}
template <class Cfg, class L, Scalar T, class B>
using Head = typename decltype(head<Cfg, L, T, B>())::type;

/// Rev-ViT: stem, two streams, the reversible blocks, termination and head.
template <class Cfg, class L, Scalar T, class B>
using Network =
    Chain<Unnamed<Stem<Cfg, L, T, B>>, Fork<2, T, B>, Unnamed<Blocks<Cfg, L, T, B>>, Unnamed<Head<Cfg, L, T, B>>>;

}  // namespace revvit

/// Rev-ViT classifier of configuration Cfg (revvit::S, B, L or one's own) in layout L
/// (revvit::slowfast, the official checkpoints', or revvit::minrev) over element type T on
/// backend B: the Chain revvit::Network with the image checks, the layout's keys and
/// initialisation. Its tape is that chain's cache; its backward that chain's. The output is
/// logits in train and eval (SlowFast's head adds a softmax in eval; apply ops::softmax for it).
template <class Cfg, revvit::Layout L = revvit::slowfast, Scalar T = float, class B = cpu>
class RevViT : public revvit::Network<Cfg, L, T, B> {
  static_assert(Cfg::image % Cfg::patch == 0, "rev::models::RevViT: the image side must be a multiple of the patch");
  static_assert(Cfg::width % Cfg::heads == 0, "rev::models::RevViT: the width must be a multiple of the heads");
  using network_type = revvit::Network<Cfg, L, T, B>;

 public:
  template <Scalar T2, class B2>
  using rebind = RevViT<Cfg, L, T2, B2>;
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using streams_type = Tensors<T, 2, B>;
  using cache = typename network_type::cache;
  static constexpr int classes = Cfg::classes;

  /// The layout's initialisation, drawn from g. SlowFast: conv and Linear weights and the
  /// position embedding normal(0, 0.02) (its truncation at +-2 is never reached), Linear and
  /// LayerNorm biases 0.02, LayerNorm weights 1. minREV: PyTorch's defaults (Xavier-uniform packed
  /// projection with zero biases), position embedding 0. Drop-path at the configuration's rate.
  explicit RevViT(Generator& g = default_generator()) {
    this->for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      const bool norm = name.find("norm.") != std::string::npos;
      if constexpr (std::same_as<L, revvit::slowfast>) {
        if (norm) p.value.fill(T(name.ends_with(".weight") ? 1 : 0.02));
        else if (name.ends_with(".weight") || name == "pos_embed") nn::init::normal(p.value, 0.0, 0.02, g);
        else if (!name.starts_with("patch_embed")) p.value.fill(T(0.02));
      } else {
        if (name.ends_with("in_proj_weight")) nn::init::xavier_uniform(p.value, g);
        else if (name.ends_with("in_proj_bias") || name.ends_with("out_proj.bias")) p.value.fill(T(0));
      }
    });
    set_stochastic_depth(drop_path_of());
  }

  static std::string name() { return std::string("rev::models::RevViT<") + Cfg::name + ", " + L::name + ">"; }

  /// Drop-path in block i at rate p * i / (depth - 1), on F's and G's outputs.
  void set_stochastic_depth(double p) {
    auto& stack = layers();
    for (int i = 0; i < Cfg::depth; ++i) {
      const double rate = Cfg::depth > 1 ? p * i / (Cfg::depth - 1) : 0.0;
      apply(stack[static_cast<std::size_t>(i)], [&](nn::DropPath<T, B>& d) { d.set_p(rate); });
    }
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

  /// The tokens both streams start from: patches plus position embedding, [N, tokens, C].
  tensor_type tokens(const tensor_type& image, context& ctx) {
    check_image(image);
    return stem().forward(image, ctx);
  }
  /// The two streams {Y_1, Y_2} [N, tokens, C] after the last block, before the termination.
  streams_type streams(const tensor_type& image, context& ctx) {
    return blocks().forward(this->template get<1>().forward(tokens(image, ctx), ctx), ctx);
  }

  /// Loads parameters by the layout's keys. strict: a missing, unexpected or mis-shaped key
  /// throws io_error; otherwise the matching keys are loaded and the rest reported.
  io::load_report load(const io::file& f, bool strict = true) {
    return io::load_state(*this, f, {.strict = strict, .who = name()});
  }
  io::file state_dict() { return io::state_dict(*this); }

  auto& stem() { return this->template get<0>(); }
  /// The reversible blocks (a Repeat of Additive couplings on the two streams).
  auto& layers() {
    if constexpr (std::same_as<L, revvit::minrev>) return blocks();
    else return static_cast<Named<"layers", Repeat<Cfg::depth, revvit::Block<Cfg, L, T, B>>>&>(blocks());
  }
  auto& head() { return this->template get<3>(); }

 private:
  auto& blocks() { return this->template get<2>(); }
  static constexpr double drop_path_of() {
    if constexpr (requires { Cfg::drop_path; }) return Cfg::drop_path;
    else return 0.0;
  }
  void check_image(const tensor_type& image) const {
    revvit::check_image(name(), image, Cfg::image, Cfg::image / Cfg::patch, Cfg::patch);
  }
};

}  // namespace rev::models
