#include "coupling_helpers.hpp"
#include "rev/graph/chain.hpp"
#include "rev/nn/layernorm.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/tokens.hpp"

using namespace rev;

TEST_CASE("ops::map_to_tokens: token y*W + x holds pixel (y, x)'s channels; tokens_to_map inverts it") {
  const auto x = test::random({2, 3, 4, 5}, 1);
  const auto t = ops::map_to_tokens(x);
  REQUIRE(t.shape() == Shape{2, 20, 3});
  for (index_t b = 0; b < 2; ++b)
    for (index_t c = 0; c < 3; ++c)
      for (index_t y = 0; y < 4; ++y)
        for (index_t w = 0; w < 5; ++w) CHECK(t(b, y * 5 + w, c) == x(b, c, y, w));
  CHECK(test::max_abs_error(ops::tokens_to_map(t, 4, 5), x) == 0);
}

TEST_CASE("ops::map_to_tokens and tokens_to_map: PyTorch 1.13 (flatten(2).transpose(1, 2)), exact") {
  auto ref = test::torch_reference("tokens");
  for (int k = 0; k < 4; ++k) {
    const std::string key = std::to_string(k) + ".";
    INFO("case ", k);
    const auto x = ref.tensor<double>(key + "x");
    CHECK(test::max_abs_error(ops::map_to_tokens(x), ref.tensor<double>(key + "tokens")) == 0);
    CHECK(test::max_abs_error(ops::map_to_tokens(ops::cast<float>(x)), ref.tensor<float>(key + "tokens")) == 0);
    // The backward of map_to_tokens is tokens_to_map.
    nn::MapToTokens<double> layer;
    nn::MapToTokens<double>::cache c;
    context ctx;
    layer.forward(x, ctx, c);
    CHECK(test::max_abs_error(layer.backward(c, ref.tensor<double>(key + "dtokens")), ref.tensor<double>(key + "dx")) ==
          0);
  }
}

TEST_CASE("nn::MapToTokens, nn::TokensToMap: finite differences and shape errors") {
  nn::MapToTokens<double> to_tokens;
  auto r = testing::check_gradients(to_tokens, test::random({2, 3, 2, 4}, 2));
  CHECK_MESSAGE(r.ok(), r.str());
  nn::TokensToMap<double> square, rect(2, 3);
  auto r2 = testing::check_gradients(square, test::random({2, 9, 4}, 3));
  CHECK_MESSAGE(r2.ok(), r2.str());
  auto r3 = testing::check_gradients(rect, test::random({2, 6, 4}, 4));
  CHECK_MESSAGE(r3.ok(), r3.str());
  context ctx;
  CHECK_THROWS_WITH_AS(square.forward(test::random({1, 6, 4}, 5), ctx), doctest::Contains("6 tokens are not a square"),
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::tokens_to_map(test::random({1, 6, 4}, 5), 4, 2),
                       doctest::Contains("expected [B, 4 * 2 = 8, C] tokens"), shape_error);
  CHECK_THROWS_AS(ops::map_to_tokens(test::random({1, 6, 4}, 5)), shape_error);
}

TEST_CASE("tokens in a Chain: a conv stem, tokens, a Linear over features, back to a map") {
  using Net = Chain<nn::Conv2d<3, 8, nn::conv_opts{.kernel = 2, .stride = 2}, double>, nn::MapToTokens<double>,
                    nn::LayerNorm<8, nn::eps_1e6, double>, nn::Linear<8, 8, true, double>, nn::TokensToMap<double>,
                    nn::Conv2d<8, 4, nn::conv_opts{}, double>>;
  static_assert(Net::in_channels == 3 && Net::out_channels == 4);
  static_assert(!ChainableBlocks<nn::Conv2d<3, 8>, nn::MapToTokens<float>, nn::Conv2d<8, 8>>);  // tokens, not a map
  Net net;
  context ctx;
  const auto y = net.forward(test::random({2, 3, 8, 8}, 6), ctx);
  CHECK(y.shape() == Shape{2, 4, 4, 4});
}
