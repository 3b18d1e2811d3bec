#include <algorithm>
#include <string>
#include <vector>

#include "coupling_helpers.hpp"
#include "rev/additive.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/residual.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"

using namespace rev;
using test::ConvBlock;

namespace {
// Dropout-free MLP over features, as in a transformer or ConvNeXt block (channels last).
using Mlp = nn::Sequential<nn::LayerNorm<6, nn::eps_1e6, double>, nn::Linear<6, 12, true, double>, nn::GELU<double>,
                           nn::Linear<12, 6, true, double>>;
}  // namespace

TEST_CASE("ops::layer_scale: the definition along a map's channels and along the last extent") {
  const auto x = test::random({2, 3, 4, 5}, 1);
  const auto g3 = test::random({3}, 2), g5 = test::random({5}, 3);
  const auto y1 = ops::layer_scale(x, g3, 1), ylast = ops::layer_scale(x, g5, -1);
  for (index_t n = 0; n < 2; ++n)
    for (index_t c = 0; c < 3; ++c)
      for (index_t h = 0; h < 4; ++h)
        for (index_t w = 0; w < 5; ++w) {
          CHECK(y1(n, c, h, w) == g3(c) * x(n, c, h, w));
          CHECK(ylast(n, c, h, w) == g5(w) * x(n, c, h, w));
        }
}

TEST_CASE("ops::layer_scale_backward: finite differences in float64, axis 1 and -1") {
  for (int axis : {1, -1, 2}) {
    CAPTURE(axis);
    const auto x = test::random({2, 3, 4, 5}, 4);
    const Shape gs{x.size(axis < 0 ? axis + 4 : axis)};
    auto r = testing::check_gradients(
        [&](const std::vector<Tensor<double>>& in) { return ops::layer_scale(in[0], in[1], axis); },
        [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
          Tensor<double> dg(in[1].shape());
          Tensor<double> dx = ops::layer_scale_backward(in[0], in[1], dy, axis, &dg);
          return std::vector<Tensor<double>>{dx, dg};
        },
        {x, test::random(gs, 5)});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("ops::layer_scale: PyTorch 1.13 (gamma viewed along the axis times x), float64 and float32") {
  auto ref = test::torch_reference("layer_scale");
  for (int k = 0; k < 5; ++k) {
    const std::string key = std::to_string(k) + ".";
    const int axis = static_cast<int>(ref.tensor<double>(key + "axis").data()[0]);
    INFO("case ", k, " axis ", axis);
    const auto x = ref.tensor<double>(key + "x"), gamma = ref.tensor<double>(key + "gamma");
    const auto dout = ref.tensor<double>(key + "dout");
    CHECK(test::max_rel_error(ops::layer_scale(x, gamma, axis), ref.tensor<double>(key + "y")) < 1e-15);
    Tensor<double> dgamma(gamma.shape());
    CHECK(test::max_rel_error(ops::layer_scale_backward(x, gamma, dout, axis, &dgamma),
                              ref.tensor<double>(key + "dx")) < 1e-15);
    CHECK(test::max_rel_error(dgamma, ref.tensor<double>(key + "dgamma")) < 1e-13);
    const auto xf = ref.tensor<float>(key + "x"), gf = ref.tensor<float>(key + "gamma");
    Tensor<float> dgf(gf.shape());
    CHECK(test::max_rel_error(ops::layer_scale(xf, gf, axis), ref.tensor<double>(key + "y")) < 1e-6);
    ops::layer_scale_backward(xf, gf, ref.tensor<float>(key + "dout"), axis, &dgf);
    CHECK(test::max_rel_error(dgf, ref.tensor<double>(key + "dgamma")) < 1e-5);
  }
}

TEST_CASE("ops::layer_scale: a gamma of the wrong length or an axis out of range is refused") {
  const auto x = test::random({2, 3, 4}, 6);
  CHECK_THROWS_WITH_AS(ops::layer_scale(x, test::random({4}, 7), 1),
                       doctest::Contains("gamma has extents [4], expected [3]"), shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_scale(x, test::random({3}, 7), 3), doctest::Contains("axis 3 is out of range"),
                       shape_error);
  Tensor<double> dg({2});
  CHECK_THROWS_AS(ops::layer_scale_backward(x, test::random({4}, 7), x, -1, &dg), shape_error);
}

TEST_CASE("Residual: y = x + gamma * L(x), gamma named \"gamma\" after L's parameters") {
  Residual<Mlp, residual_opts{.layer_scale = 0.5}> block;
  const auto x = test::random({2, 7, 6}, 8);
  context ctx{phase::eval};
  const auto y = block.forward(x, ctx);
  const auto expected = ops::add(x, ops::layer_scale(block.inner().forward(x, ctx), block.gamma.value, -1));
  CHECK(test::max_abs_error(y, expected) == 0);
  CHECK(std::all_of(block.gamma.value.begin(), block.gamma.value.end(), [](double g) { return g == 0.5; }));
  std::vector<std::string> names;
  block.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); }, "block");
  CHECK(names.front() == "block.0.weight");
  CHECK(names.back() == "block.gamma");
}

TEST_CASE("Residual: gradients of x, L's parameters and gamma against finite differences") {
  SUBCASE("features, layer scale") {
    Residual<Mlp, residual_opts{.layer_scale = 0.7}> block;
    auto r = testing::check_gradients(block, test::random({2, 3, 6}, 9));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  SUBCASE("map, layer scale and drop-path") {
    Residual<ConvBlock<3, 3, double>, residual_opts{.layer_scale = 1.5, .drop_path = 0.5}> block;
    auto r = testing::check_gradients(block, test::random({4, 3, 4, 4}, 10));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  SUBCASE("map, plain") {
    Residual<ConvBlock<3, 3, double>> block;
    auto r = testing::check_gradients(block, test::random({2, 3, 4, 4}, 11));
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("Residual: drop-path drops whole samples' branches in the train phase and none in eval") {
  Residual<ConvBlock<2, 2, double>, residual_opts{.drop_path = 0.5}> block;
  const auto x = test::random({64, 2, 3, 3}, 12);
  Generator gen(3);
  context train{phase::train, &gen}, eval{phase::eval, &gen};
  const auto y = block.forward(x, train);
  int dropped = 0;
  for (index_t n = 0; n < 64; ++n) {
    bool same = true;
    for (index_t i = 0; i < 18; ++i) same = same && y.data()[n * 18 + i] == x.data()[n * 18 + i];
    dropped += same;
  }
  CHECK(dropped > 16);
  CHECK(dropped < 48);
  const auto ye = block.forward(x, eval);
  CHECK(test::max_abs_error(ye, ops::add(x, block.inner().forward(x, eval))) == 0);
}

TEST_CASE("Residual: in a reversible Chain it is checkpointed; gradients equal stored mode") {
  Chain<Additive<ConvBlock<2, 2, float>, ConvBlock<2, 2, float>>,
        Residual<ConvBlock<4, 4, float>, residual_opts{.layer_scale = 0.1, .drop_path = 0.2}>,
        Additive<ConvBlock<2, 2, float>, ConvBlock<2, 2, float>>>
      net;
  auto r = testing::check_reversible_gradients(net, test::random<float>({3, 4, 6, 6}, 13));
  CHECK_MESSAGE(r.ok(1e-5), r.str());
}
