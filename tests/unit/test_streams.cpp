// The ends of two-stream networks (Rev-ViT): ConcatStreams, MeanStreams, nn::MeanTokens, and the
// two terminations composed from them.
#include "coupling_helpers.hpp"
#include "rev/additive.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/streams.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/tokens.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;

namespace {
std::vector<Tensor<double>> as_vector(const Tensors<double, 2>& t) { return {t[0], t[1]}; }
Tensors<double, 2> as_state(const std::vector<Tensor<double>>& v) { return {v[0], v[1]}; }
}  // namespace

TEST_CASE("ConcatStreams: streams side by side along the features; inverse and gradient split them") {
  ConcatStreams<2, double> cat;
  static_assert(Coupling<ConcatStreams<2, double>>);
  context eval{phase::eval};
  const Tensors<double, 2> x{test::random({2, 3, 4}, 1), test::random({2, 3, 4}, 2)};
  const Tensor<double> y = cat.forward(x, eval);
  REQUIRE(y.shape() == Shape{2, 3, 8});
  CHECK(y(1, 2, 1) == x[0](1, 2, 1));
  CHECK(y(1, 2, 5) == x[1](1, 2, 1));
  const auto back = cat.inverse(y, eval);
  CHECK(test::max_abs_error(back[0], x[0]) == 0);
  CHECK(test::max_abs_error(back[1], x[1]) == 0);
  auto fwd = [&](const std::vector<Tensor<double>>& in) { return cat.forward(as_state(in), eval); };
  auto bwd = [&](const std::vector<Tensor<double>>&, const Tensor<double>& w) {
    ConcatStreams<2, double>::cache c;
    return as_vector(cat.backward(c, w));
  };
  const auto r = testing::check_gradients(fwd, bwd, as_vector(x));
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK_THROWS_WITH_AS(cat.forward({Tensor<double>({2, 3, 4}), Tensor<double>({2, 3, 5})}, eval),
                       "rev::ConcatStreams: stream 1 has extents [2, 3, 5], stream 0 has [2, 3, 4]", shape_error);
}

TEST_CASE("MeanStreams and MeanTokens: values and gradients match finite differences") {
  MeanStreams<2, double> mean;
  context eval{phase::eval};
  const Tensors<double, 2> x{test::random({2, 3, 4}, 3), test::random({2, 3, 4}, 4)};
  const Tensor<double> y = mean.forward(x, eval);
  CHECK(y(1, 2, 3) == doctest::Approx((x[0](1, 2, 3) + x[1](1, 2, 3)) / 2));
  auto fwd = [&](const std::vector<Tensor<double>>& in) { return mean.forward(as_state(in), eval); };
  auto bwd = [&](const std::vector<Tensor<double>>&, const Tensor<double>& w) {
    MeanStreams<2, double>::cache c;
    return as_vector(mean.backward(c, w));
  };
  auto r = testing::check_gradients(fwd, bwd, as_vector(x));
  CHECK_MESSAGE(r.ok(), r.str());

  nn::MeanTokens<double> pool;
  const Tensor<double> t = test::random({2, 5, 3}, 5);
  const Tensor<double> p = pool.forward(t, eval);
  REQUIRE(p.shape() == Shape{2, 3});
  double s = 0;
  for (index_t i = 0; i < 5; ++i) s += t(1, i, 2);
  CHECK(p(1, 2) == doctest::Approx(s / 5));
  r = testing::check_gradients(pool, t);
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("Rev-ViT's two ends, composed: concat -> norm -> mean over tokens, and mean -> norm") {
  using Block = Additive<nn::Linear<4, 4, true, double>, nn::Linear<4, 4, true, double>, coupling_layout::streams>;
  using Body = Chain<Fork<2, double>, Repeat<2, Block>>;
  Chain<Body, ConcatStreams<2, double>, nn::LayerNorm<8, nn::eps_1e6, double>, nn::MeanTokens<double>> concat_end;
  Chain<Body, MeanStreams<2, double>, nn::LayerNorm<4, nn::eps_1e6, double>> mean_end;
  const Tensor<double> x = test::random({2, 6, 4}, 6);
  auto r = testing::check_gradients(concat_end, x);
  CHECK_MESSAGE(r.ok(), r.str());
  r = testing::check_gradients(mean_end, x);
  CHECK_MESSAGE(r.ok(), r.str());
  // Reversible and stored tapes agree (the streams are reconstructed from the ends' inputs).
  context train{phase::train};
  decltype(concat_end)::cache ts{mode::stored}, tr{mode::reversible};
  const Tensor<double> dy = test::random({2, 8}, 7);
  concat_end.forward(x, train, ts);
  const Tensor<double> ds = concat_end.backward(ts, dy);
  concat_end.forward(x, train, tr);
  CHECK(test::max_abs_error(concat_end.backward(tr, dy), ds) < 1e-12);
}
