#include <algorithm>

#include "coupling_helpers.hpp"
#include "rev/additive.hpp"
#include "rev/affine.hpp"
#include "rev/core/named.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/space_to_depth.hpp"

using namespace rev;
using test::ConvBlock;

namespace {

using CB = ConvBlock<4, 4, float>;
// Couplings of every kind mixed with an ordinary (checkpointed) block.
template <int Depth>
using Mixed = Chain<nn::SpaceToDepth<2, ops::s2d_order::revbifpn, float>,  // coupling, 2 -> 8 channels
                    ConvBlock<8, 8, float>,                                // ordinary: keeps its input
                    Additive<CB, CB>, Affine<CB, CB>, Repeat<Depth, Additive<CB, CB, coupling_layout::halves_swapped>>,
                    Affine<CB, CB, affine_scale::exp_clamped, coupling_layout::halves_swapped>>;

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

namespace {

// Dropout with a fixed probability, default-constructible for use inside a Sequential.
struct Drop : nn::Dropout<double> {
  Drop() : nn::Dropout<double>(0.3) {}
};
using DCB = ConvBlock<2, 2, double>;
// Batch-norm (in the checkpointed stem and in every F and G) and dropout: all replayed state.
using Replayed = Chain<ConvBlock<4, 4, double>, Repeat<2, Additive<nn::Sequential<DCB, Drop>, DCB>>>;

std::vector<Tensor<double>> gradients(Replayed& net) {
  std::vector<Tensor<double>> g;
  net.for_each_parameter([&](const std::string&, auto& p) { g.push_back(p.grad.clone()); });
  return g;
}

// Walks back `tape` with dy after zeroing the gradients; returns the parameter gradients.
template <class Tape>
std::vector<Tensor<double>> walk_back(Replayed& net, Tape& tape, const Tensor<double>& dy, Tensor<double>& dx) {
  zero_grad(net);
  dx = net.backward(tape, dy);
  return gradients(net);
}

}  // namespace

TEST_CASE("Chain: two train-phase forwards on two reversible tapes walk back independently, in either order") {
  // The second forward must not change what the first tape replays (batch statistics, dropout
  // masks): each walk back equals ordinary backprop of its own forward.
  Replayed net;
  const auto x1 = test::random({3, 4, 6, 6}, 11), x2 = test::random({3, 4, 6, 6}, 12, -2, 3);
  const auto dy1 = test::random({3, 4, 6, 6}, 13), dy2 = test::random({3, 4, 6, 6}, 14);
  Generator gen;
  context ctx{phase::train, &gen};

  gen.seed(7);
  Replayed::cache s1{mode::stored}, s2{mode::stored};
  const auto y1_ref = net.forward(x1, ctx, s1), y2_ref = net.forward(x2, ctx, s2);
  Tensor<double> dx1_ref, dx2_ref, dx1, dx2;
  const auto g1_ref = walk_back(net, s1, dy1, dx1_ref), g2_ref = walk_back(net, s2, dy2, dx2_ref);

  gen.seed(7);
  Replayed::cache t1{mode::reversible}, t2{mode::reversible};
  const auto y1 = net.forward(x1, ctx, t1), y2 = net.forward(x2, ctx, t2);
  CHECK(test::max_rel_error(y1, y1_ref) < 1e-12);
  CHECK(test::max_rel_error(y2, y2_ref) < 1e-12);
  const auto g2 = walk_back(net, t2, dy2, dx2);  // the last forward first, then the earlier one
  const auto g1 = walk_back(net, t1, dy1, dx1);
  CHECK(test::max_rel_error(dx1, dx1_ref) < 1e-9);
  CHECK(test::max_rel_error(dx2, dx2_ref) < 1e-9);
  REQUIRE(g1.size() == g1_ref.size());
  for (std::size_t i = 0; i < g1.size(); ++i) {
    CAPTURE(i);
    CHECK(test::max_rel_error(g1[i], g1_ref[i]) < 1e-9);
    CHECK(test::max_rel_error(g2[i], g2_ref[i]) < 1e-9);
  }
  // A walk back leaves its record empty: the tape keeps nothing afterwards.
  CHECK(t1.replay.empty());
  CHECK(t2.replay.empty());
}

TEST_CASE("Chain and Repeat: a reversible tape in an eval-phase context is refused") {
  Chain<CB, Additive<ConvBlock<2, 2, float>, ConvBlock<2, 2, float>>> chain;
  Repeat<2, Additive<ConvBlock<2, 2, float>, ConvBlock<2, 2, float>>> repeat;
  const auto x = test::random<float>({2, 4, 4, 4}, 3);
  context eval{phase::eval};
  typename decltype(chain)::cache chain_tape{mode::reversible};
  typename decltype(repeat)::cache repeat_tape{mode::reversible};
  CHECK_THROWS_WITH_AS(chain.forward(x, eval, chain_tape),
                       doctest::Contains("rev::Chain: a reversible tape needs a train-phase context"), value_error);
  CHECK_THROWS_WITH_AS(repeat.forward(x, eval, repeat_tape),
                       doctest::Contains("rev::Repeat: a reversible tape needs a train-phase context"), value_error);
  // Stored tapes serve eval-phase gradients.
  typename decltype(chain)::cache stored{mode::stored};
  const auto y = chain.forward(x, eval, stored);
  CHECK(chain.backward(stored, y).shape() == x.shape());
}

TEST_CASE("Named: a key replaces the child's index in the state_dict names of Chain, Repeat and Sequential") {
  using Conv = nn::Conv2d<4, 4, nn::conv_opts{.kernel = 3}>;
  Chain<Named<"stem", Conv>, Named<"layers", Repeat<2, Additive<ConvBlock<2, 2, float>, ConvBlock<2, 2, float>>>>,
        nn::Sequential<Named<"proj", Conv>, nn::ReLU<float>>>
      net;
  std::vector<std::string> names;
  net.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); });
  std::vector<std::string> buffers;
  net.for_each_buffer([&](const std::string& n, auto&) { buffers.push_back(n); });
  REQUIRE(names.size() >= 4);
  CHECK(names.front() == "stem.weight");
  CHECK(std::find(names.begin(), names.end(), "layers.1.g.0.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "2.proj.weight") != names.end());
  CHECK(std::find(buffers.begin(), buffers.end(), "layers.0.f.1.running_var") != buffers.end());
  // Standalone, the key prefixes the names; the block is otherwise the same (a coupling stays one).
  Named<"block", Additive<CB, CB>> block;
  static_assert(Coupling<decltype(block)> && Named<"block", Additive<CB, CB>>::in_channels == 8);
  std::vector<std::string> own;
  block.for_each_parameter([&](const std::string& n, auto&) { own.push_back(n); }, "net");
  CHECK(own.front() == "net.block.f.0.weight");
  auto r = testing::check_reversible_gradients(block, test::random<float>({2, 8, 6, 6}, 4));
  CHECK_MESSAGE(r.ok(1e-5), r.str());
}
