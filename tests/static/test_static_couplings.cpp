// Compile-time rules of the couplings and containers, proven without hard errors: every
// static_assert below must hold for this translation unit to compile (mp-units style).
#include "rev/additive.hpp"
#include "rev/column.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/attention.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/flatten.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/nn/space_to_depth.hpp"
#include "rev/silo.hpp"

namespace {

using namespace rev;

template <int In, int Out>
using Conv = nn::Conv2d<In, Out, nn::conv_opts{.kernel = 3}>;

// Additive: F maps x2 -> x1 and G maps y1 -> x2.
static_assert(AdditiveCompatible<Conv<4, 4>, Conv<4, 4>>);
static_assert(AdditiveCompatible<Conv<4, 6>, Conv<6, 4>>);  // possible in the two-stream layout
static_assert(!AdditiveCompatible<Conv<4, 4>, Conv<6, 4>>);
static_assert(!AdditiveCompatible<Conv<4, 8>, Conv<4, 4>>);
static_assert(AdditiveCompatible<nn::ReLU<float>, Conv<4, 4>>);  // channel-agnostic layers match anything
static_assert(MapsHalfToHalf<Conv<4, 4>> && !MapsHalfToHalf<Conv<4, 6>>);
static_assert(Additive<Conv<4, 4>, Conv<4, 4>>::in_channels == 8);

// Couplings and ordinary layers.
static_assert(Coupling<Additive<Conv<4, 4>, Conv<4, 4>>>);
static_assert(!Coupling<Conv<4, 4>>);
static_assert(Layer<Conv<4, 4>>);
static_assert(Coupling<Chain<Additive<Conv<2, 2>, Conv<2, 2>>, Repeat<3, Additive<Conv<2, 2>, Conv<2, 2>>>>>);
// A chain with an ordinary layer runs in both modes but is not invertible.
using Mixed = Chain<Additive<Conv<2, 2>, Conv<2, 2>>, Conv<4, 4>>;
static_assert(!Coupling<Mixed>);
template <class C>
concept Invertible = requires(C& c, const output_t<C>& y, context& ctx) {
  c.inverse(y, ctx);
};
static_assert(!Invertible<Mixed>);
static_assert(Invertible<Chain<Additive<Conv<2, 2>, Conv<2, 2>>>>);

// Sequences check adjacent channels.
static_assert(nn::ChainableLayers<Conv<3, 8>, nn::ReLU<float>, Conv<8, 2>>);
static_assert(!nn::ChainableLayers<Conv<3, 8>, Conv<6, 2>>);
static_assert(nn::Sequential<nn::ReLU<float>, Conv<3, 8>, nn::ReLU<float>>::in_channels == 3);
static_assert(nn::Sequential<nn::ReLU<float>, Conv<3, 8>, nn::ReLU<float>>::out_channels == 8);
static_assert(ChainableBlocks<Conv<3, 8>, Additive<Conv<4, 4>, Conv<4, 4>>>);
static_assert(!ChainableBlocks<Conv<3, 6>, Additive<Conv<4, 4>, Conv<4, 4>>>);
static_assert(
    !Chainable<Additive<Conv<4, 4>, Conv<4, 4>, coupling_layout::streams>, Conv<4, 4>>);  // two tensors vs one

// Silo: F<i,j> maps level i to level j.
using L3 = levels<4, 6, 8>;
template <int I, int J>
using Good = Conv<L3::channels[I], L3::channels[J]>;
template <int I, int J>
using Bad = Conv<L3::channels[I], 5>;
template <int I, int J>
using Twice = Conv<L3::channels[I], 2 * L3::channels[J]>;
static_assert(SiloDownCompatible<L3, Good> && SiloUpCompatible<L3, Good>);
static_assert(!SiloDownCompatible<L3, Bad> && !SiloUpCompatible<L3, Bad>);
static_assert(!SiloDownCompatible<L3, Twice> && SiloDownCompatible<L3, Twice, affine_merge<>>);

// Column: level l reads level l-1 (low) and level l+1 (high).
constexpr int widths[] = {4, 6, 8};
template <int High>
struct fuse_with_high {
  template <int L>
  struct F : layer_types<float, cpu> {
    static constexpr int low_channels = L == 0 ? 4 : widths[L - 1];
    static constexpr int high_channels = L < 2 ? High : any_channels;
    static constexpr int out_channels = widths[L];
    struct cache {};
  };
};
static_assert(ColumnCompatible<1, fuse_with_high<any_channels>::F>);
static_assert(ColumnCompatible<3, fuse_with_high<any_channels>::F>);
static_assert(!ColumnCompatible<3, fuse_with_high<7>::F>);
// A level reading the top level too (RevCol-H's level 0) must take the top level's channels.
template <int Top>
struct fuse_with_top {
  template <int L>
  struct F : fuse_with_high<any_channels>::F<L> {
    static constexpr int top_channels = Top;
  };
};
static_assert(ReadsTop<fuse_with_top<8>::F<0>> && !ReadsTop<fuse_with_high<7>::F<0>>);
static_assert(ColumnCompatible<3, fuse_with_top<8>::F> && !ColumnCompatible<3, fuse_with_top<6>::F>);
static_assert(std::same_as<decltype(detail::column_check<3, fuse_with_top<6>::F>())::type,
                           Column_level<0>::reads_top<6>::but_top_level_returns<8>>);

// Signatures: layouts and widths of every layer, features of Linear and attention included.
using Mlp = nn::Sequential<nn::LayerNorm<384>, nn::Linear<384, 1536>>;
static_assert(Mlp::in_channels == 384 && Mlp::out_channels == 1536);
static_assert(!AdditiveCompatible<Mlp, Mlp>);
static_assert(in_signature_of<Mlp>()[0].layouts == layout::features);
static_assert(!ChainableBlocks<Conv<3, 8>, nn::Linear<8, 4>>);              // a map is not features
static_assert(!ChainableBlocks<nn::MultiHeadAttention<8, 2>, Conv<8, 8>>);  // tokens are not a map
static_assert(ChainableBlocks<Conv<3, 8>, nn::GlobalAvgPool<float>, nn::Flatten<float>, nn::Linear<8, 4>>);
static_assert(ChainableBlocks<nn::Linear<8, 16>, nn::GELU<float>, nn::Linear<16, 8>, nn::MultiHeadAttention<8, 2>>);
static_assert(!ChainableBlocks<nn::Linear<8, 16>, nn::GELU<float>, nn::Linear<8, 8>>);  // 16 reach the second Linear
// A leading layer without a signature takes what the first one with a signature takes.
static_assert(sequence_in_signature<nn::ReLU<float>, Conv<3, 8>>()[0].width == 3);
static_assert(sequence_in_signature<nn::ReLU<float>, Conv<3, 8>>()[0].layouts == layout::map);
// Space-to-depth multiplies the channels reaching it: 2 -> 8 -> a Conv2d<8, _>.
static_assert(ChainableBlocks<Conv<3, 2>, nn::SpaceToDepth<2, ops::s2d_order::revbifpn, float>, Conv<8, 4>>);
static_assert(!ChainableBlocks<Conv<3, 2>, nn::SpaceToDepth<2, ops::s2d_order::revbifpn, float>, Conv<2, 4>>);
// A two-stream Additive of token MLPs takes two token streams of the MLP's width.
using Proj = nn::Sequential<nn::LayerNorm<8>, nn::Linear<8, 32>, nn::GELU<float>, nn::Linear<32, 8>>;
using Streams = Additive<Proj, Proj, coupling_layout::streams>;
static_assert(in_signature_of<Streams>().size() == 2 && in_signature_of<Streams>()[1].width == 8);
static_assert(ChainableBlocks<Streams, Streams> && !ChainableBlocks<Streams, Conv<8, 8>>);

// Declared couplings and containers.
static_assert(DeclaresCoupling<Additive<Conv<4, 4>, Conv<4, 4>>> && !DeclaresCoupling<Conv<4, 4>>);
static_assert(Container<Chain<Conv<4, 4>>> && Container<Repeat<2, Conv<4, 4>>> && !Container<Conv<4, 4>>);
static_assert(!Coupling<Repeat<2, Conv<4, 4>>>);

}  // namespace
