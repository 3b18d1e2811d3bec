#include "coupling_helpers.hpp"
#include "rev/additive.hpp"
#include "rev/affine.hpp"
#include "rev/nn/space_to_depth.hpp"

using namespace rev;
using test::ConvBlock;

namespace {

using CB = ConvBlock<4, 4, float>;
// Couplings of every kind mixed with an ordinary (checkpointed) block.
template <int Depth>
using Mixed = Chain<nn::SpaceToDepth<2, ops::s2d_order::revbifpn, float>,  // coupling, 2 -> 8 channels
                    ConvBlock<8, 8, float>,                                // ordinary: keeps its input
                    Additive<CB, CB>, Affine<CB, CB>, Repeat<Depth, Additive<CB, CB, additive_layout::halves_swapped>>,
                    Affine<CB, CB, affine_scale::exp_clamped, affine_layout::halves_swapped>>;

template <int K>
std::size_t step_peak(mode m) {
  Chain<Repeat<K, Additive<CB, CB>>> net;
  auto x = test::random<float>({4, 8, 16, 16}, 1);
  context ctx{phase::train};
  peak_scope<cpu> scope;
  {
    typename decltype(net)::cache tape{m};
    auto y = net.forward(x, ctx, tape);
    net.backward(tape, Tensor<float>(y.shape()));
  }
  return scope.peak_above_start();
}

// A chain of K distinct stages (not a Repeat): the recursion over its blocks must not keep
// every intermediate state alive.
template <class B, std::size_t... I>
auto flat_chain(std::index_sequence<I...>) -> Chain<std::conditional_t<(I >= 0), B, void>...>;

template <std::size_t K>
std::size_t chain_peak(mode m) {
  decltype(flat_chain<Additive<CB, CB>>(std::make_index_sequence<K>{})) net;
  auto x = test::random<float>({4, 8, 16, 16}, 1);
  context ctx{phase::train};
  peak_scope<cpu> scope;
  {
    typename decltype(net)::cache tape{m};
    auto y = net.forward(x, ctx, tape);
    net.backward(tape, Tensor<float>(y.shape()));
  }
  return scope.peak_above_start();
}

}  // namespace

TEST_CASE("Chain: Stored and Reversible gradients agree for a chain mixing couplings and ordinary blocks") {
  // Odd and even depths: a wrong pairing of recomputed and stored blocks shows at one of them.
  auto x = test::random<float>({2, 2, 8, 8}, 2);
  Mixed<1> d1;
  auto r1 = testing::check_reversible_gradients(d1, x);
  CHECK_MESSAGE(r1.ok(1e-5), r1.str());
  Mixed<2> d2;
  auto r2 = testing::check_reversible_gradients(d2, x);
  CHECK_MESSAGE(r2.ok(1e-5), r2.str());
  Mixed<3> d3;
  auto r3 = testing::check_reversible_gradients(d3, x);
  CHECK_MESSAGE(r3.ok(1e-5), r3.str());
}

TEST_CASE("Chain: a chain of couplings is a coupling, and inverts") {
  Chain<nn::SpaceToDepth<2, ops::s2d_order::revbifpn, double>,
        Additive<ConvBlock<4, 4, double>, ConvBlock<4, 4, double>>,
        Repeat<2, Affine<ConvBlock<4, 4, double>, ConvBlock<4, 4, double>>>>
      net;
  static_assert(Coupling<decltype(net)>);
  auto r = testing::check_invertible(net, test::random({2, 2, 6, 6}, 3));
  CHECK_MESSAGE(r.ok(1e-12), r.str());
}

TEST_CASE("Chain: Reversible-mode activation memory does not grow with depth; Stored mode does") {
  // One thread: the scratch buffers of concurrently running tasks would add a timing-dependent term.
  const int threads = num_threads();
  set_num_threads(1);
  const std::size_t rev2 = step_peak<2>(mode::reversible), rev8 = step_peak<8>(mode::reversible);
  const std::size_t st2 = step_peak<2>(mode::stored), st8 = step_peak<8>(mode::stored);
  INFO("reversible ", rev2, " -> ", rev8, " bytes; stored ", st2, " -> ", st8, " bytes");
  CHECK(rev8 <= rev2 + rev2 / 20);  // flat within 5 %
  CHECK(st8 > 2 * st2);             // grows with depth: six more blocks' activations
  CHECK(rev8 < st8 / 3);
  // The same with K distinct blocks in a Chain instead of a Repeat.
  const std::size_t chain2 = chain_peak<2>(mode::reversible), chain8 = chain_peak<8>(mode::reversible);
  INFO("chain of distinct blocks, reversible: ", chain2, " -> ", chain8, " bytes");
  CHECK(chain8 <= chain2 + chain2 / 20);
  set_num_threads(threads);
}

TEST_CASE("Chain: a runtime mismatch inside a chain names the block") {
  Chain<ConvBlock<3, 4, float>, Additive<ConvBlock<2, 2, float>, ConvBlock<2, 2, float>>> net;
  context ctx{phase::eval};
  CHECK_THROWS_AS(net.forward(Tensor<float>({1, 5, 4, 4}), ctx), shape_error);
}
