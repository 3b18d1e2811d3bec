#include "coupling_helpers.hpp"
#include "rev/additive.hpp"

using namespace rev;
using test::ConvBlock;

TEST_CASE("Additive: y1 = x1 + F(x2), y2 = x2 + G(y1) on channel halves") {
  using F = ConvBlock<4, 4, double>;
  Additive<F, F> block;
  auto x = test::random({2, 8, 5, 5}, 1);
  context ctx{phase::eval};
  auto y = block.forward(x, ctx);
  // The definition, evaluated by hand on the halves.
  const index_t halves[] = {4, 4};
  auto xs = ops::split_channels(x, halves);
  auto y1 = ops::add(xs[0], block.f().forward(xs[1], ctx));
  auto y2 = ops::add(xs[1], block.g().forward(y1, ctx));
  const Tensor<double> parts[] = {y1, y2};
  CHECK(test::max_abs_error(y, ops::concat_channels(parts)) < 1e-14);
}

TEST_CASE("Additive: log-det is zero (volume preserving)") {
  Additive<ConvBlock<2, 2, double>, ConvBlock<2, 2, double>> block;
  context ctx{phase::eval};
  Tensor<double> log_det;
  block.forward(test::random({3, 4, 4, 4}, 12), ctx, log_det);
  CHECK(log_det.shape() == Shape{3});
  CHECK(std::all_of(log_det.begin(), log_det.end(), [](double v) { return v == 0; }));
}

TEST_CASE("Additive: RevBiFPN's swapped halves update the second half first") {
  using F = ConvBlock<4, 4, double>;
  Additive<F, F, coupling_layout::halves_swapped> block;
  auto x = test::random({1, 8, 4, 4}, 2);
  context ctx{phase::eval};
  auto y = block.forward(x, ctx);
  const index_t halves[] = {4, 4};
  auto xs = ops::split_channels(x, halves);  // spec §4.4: x0 = first half, x1 = second half
  auto y1 = ops::add(xs[1], block.f().forward(xs[0], ctx));
  auto y0 = ops::add(xs[0], block.g().forward(y1, ctx));
  const Tensor<double> parts[] = {y0, y1};
  CHECK(test::max_abs_error(y, ops::concat_channels(parts)) < 1e-14);
}

TEST_CASE("Additive: invertible in float32 and float64, all layouts") {
  {
    Additive<ConvBlock<6, 6, double>, ConvBlock<6, 6, double>> d;
    auto r = testing::check_invertible(d, test::random({2, 12, 7, 7}, 3));
    CHECK_MESSAGE(r.ok(1e-12), r.str());
  }
  {
    Additive<ConvBlock<6, 6, float>, ConvBlock<6, 6, float>, coupling_layout::halves_swapped> f;
    auto r = testing::check_invertible(f, test::random<float>({2, 12, 7, 7}, 4));
    CHECK_MESSAGE(r.ok(1e-5), r.str());
  }
  {
    Additive<ConvBlock<5, 5, float>, ConvBlock<5, 5, float>, coupling_layout::streams> s;
    Tensors<float, 2> x{test::random<float>({3, 5, 6, 6}, 5), test::random<float>({3, 5, 6, 6}, 6)};
    auto r = testing::check_invertible(s, x);
    CHECK_MESSAGE(r.ok(1e-5), r.str());
  }
}

TEST_CASE("Additive: Stored and Reversible gradients agree (BatchNorm in train mode)") {
  Additive<ConvBlock<4, 4, float>, ConvBlock<4, 4, float>> f;
  auto r = testing::check_reversible_gradients(f, test::random<float>({4, 8, 6, 6}, 7));
  CHECK_MESSAGE(r.ok(1e-5), r.str());
  Additive<ConvBlock<4, 4, double>, ConvBlock<4, 4, double>, coupling_layout::streams> d;
  auto rd = testing::check_reversible_gradients(
      d, Tensors<double, 2>{test::random({2, 4, 5, 5}, 8), test::random({2, 4, 5, 5}, 9)});
  CHECK_MESSAGE(rd.ok(1e-12), rd.str());
}

TEST_CASE("Additive: backward equals finite differences (float64)") {
  Additive<ConvBlock<2, 2, double>, ConvBlock<2, 2, double>> block;
  // Stored-mode backward through the layer protocol; train phase (batch statistics).
  auto r = testing::check_gradients(block, test::random({2, 4, 3, 3}, 10), {.rtol = 1e-5});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("Additive: each inner function is evaluated once in forward and once in backward") {
  using F = test::Counted<ConvBlock<4, 4, float>>;
  using G = test::Counted<nn::Sequential<nn::Conv2d<4, 4, nn::conv_opts{.kernel = 3}, float>, nn::ReLU<float>>>;
  Chain<Repeat<3, Additive<F, G>>> net;
  typename decltype(net)::cache tape{mode::reversible};
  context ctx{phase::train};
  F::evaluations = G::evaluations = 0;
  auto y = net.forward(test::random<float>({2, 8, 5, 5}, 11), ctx, tape);
  CHECK(F::evaluations == 3);
  CHECK(G::evaluations == 3);
  net.backward(tape, Tensor<float>(y.shape()));
  CHECK(F::evaluations == 6);
  CHECK(G::evaluations == 6);
}

TEST_CASE("Additive: runtime shape errors name the block") {
  Additive<ConvBlock<4, 4, float>, ConvBlock<4, 4, float>> block;
  context ctx{phase::eval};
  CHECK_THROWS_WITH_AS(block.forward(Tensor<float>({1, 6, 4, 4}), ctx),
                       "rev::Additive<F,G>: input has extents [1, 6, 4, 4], expected [N, 8, H, W]", shape_error);
  CHECK_THROWS_AS(block.forward(Tensor<float>({8, 4, 4}), ctx), shape_error);
  Additive<ConvBlock<4, 4, float>, ConvBlock<4, 4, float>, coupling_layout::streams> streams;
  CHECK_THROWS_AS(streams.forward({Tensor<float>({1, 4, 4, 4}), Tensor<float>({1, 3, 4, 4})}, ctx), shape_error);
}
