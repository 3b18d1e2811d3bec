#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/squeeze_excite.hpp"

using namespace rev;

namespace {

// y = x * Gate(W2 Inner(W1 mean_hw(x) + b1) + b2), in plain loops.
template <int W, int Q, class Inner, class Gate, class T>
Tensor<double> naive_se(nn::SqueezeExcite<W, Q, Inner, Gate, T>& se, const Tensor<T>& x) {
  Tensor<double> y(x.shape());
  const index_t H = x.size(2), Wd = x.size(3);
  for (index_t n = 0; n < x.size(0); ++n) {
    double u[W], s[Q];
    for (int c = 0; c < W; ++c) {
      u[c] = 0;
      for (index_t h = 0; h < H; ++h)
        for (index_t w = 0; w < Wd; ++w) u[c] += x(n, c, h, w);
      u[c] /= static_cast<double>(H * Wd);
    }
    for (int q = 0; q < Q; ++q) {
      double z = se.b1.value(q);
      for (int c = 0; c < W; ++c) z += se.w1.value(q, c, 0, 0) * u[c];
      s[q] = Inner::value(z);
    }
    for (int c = 0; c < W; ++c) {
      double z = se.b2.value(c);
      for (int q = 0; q < Q; ++q) z += se.w2.value(c, q, 0, 0) * s[q];
      const double g = Gate::value(z);
      for (index_t h = 0; h < H; ++h)
        for (index_t w = 0; w < Wd; ++w) y(n, c, h, w) = x(n, c, h, w) * g;
    }
  }
  return y;
}

// Weights and biases spread the pre-activations over the linear parts and the flat parts of
// the hard activations.
template <class L>
void spread(L& se, std::uint64_t seed) {
  using T = typename L::value_type;
  se.for_each_parameter([&](const std::string&, Param<T>& p) { p.value = test::random<T>(p.shape(), seed++, -4, 4); });
}

template <int W, int Q>
void check_torch_case(const std::string& name, const Shape& shape) {
  const auto ref = test::torch_reference("squeeze_excite");
  const std::string p = name + ".";
  REQUIRE(ref.tensor<double>(p + "x").shape() == shape);
  context ctx{phase::train};
  {
    INFO(name, " double");
    nn::SqueezeExcite<W, Q, ops::act::hardswish, ops::act::hardsigmoid, double> se;
    se.for_each_parameter([&](const std::string& n, Param<double>& prm) { prm.value = ref.tensor<double>(n); }, name);
    typename decltype(se)::cache c;
    CHECK(test::max_rel_error(se.forward(ref.tensor<double>(p + "x"), ctx, c), ref.tensor<double>(p + "y")) < 1e-12);
    // PyTorch 1.13's float64 hard-sigmoid derivative uses the float constant 1/6 (relative
    // error 5e-9, see test_activation.cpp), hence the looser tolerance on the gradients.
    CHECK(test::max_rel_error(se.backward(c, ref.tensor<double>(p + "dout")), ref.tensor<double>(p + "dx")) < 1e-7);
    se.for_each_parameter([&](const std::string& n, Param<double>& prm) {
      INFO(n);
      CHECK(test::max_rel_error(prm.grad, ref.tensor<double>(p + "grad." + n)) < 1e-7);
    });
  }
  {
    INFO(name, " float");
    nn::SqueezeExcite<W, Q> se;
    se.for_each_parameter([&](const std::string& n, Param<float>& prm) { prm.value = ref.tensor<float>(n); }, name);
    typename decltype(se)::cache c;
    CHECK(test::max_rel_error(se.forward(ref.tensor<float>(p + "x"), ctx, c), ref.tensor<double>(p + "y")) < 1e-5);
    CHECK(test::max_rel_error(se.backward(c, ref.tensor<float>(p + "dout")), ref.tensor<double>(p + "dx")) < 1e-5);
    se.for_each_parameter([&](const std::string& n, Param<float>& prm) {
      INFO(n);
      CHECK(test::max_rel_error(prm.grad, ref.tensor<double>(p + "grad." + n)) < 1e-5);
    });
  }
}

}  // namespace

TEST_CASE("SqueezeExcite forward matches a naive implementation") {
  nn::SqueezeExcite<6, 2, ops::act::hardswish, ops::act::hardsigmoid, double> se;
  spread(se, 1);
  for (const Shape& s : {Shape{2, 6, 5, 3}, Shape{1, 6, 1, 1}, Shape{3, 6, 9, 7}}) {
    INFO("extents ", s);
    const auto x = test::random(s, 2, -2, 3);
    context ctx;
    CHECK(test::max_rel_error(se.forward(x, ctx), naive_se(se, x)) < 1e-14);
  }
  nn::SqueezeExcite<5, 3> sef;
  spread(sef, 3);
  const auto xf = test::random<float>({2, 5, 4, 4}, 4, -2, 3);
  context ctx;
  CHECK(test::max_rel_error(sef.forward(xf, ctx), naive_se(sef, xf)) < 1e-6);
}

TEST_CASE("SqueezeExcite backward equals finite differences") {
  {
    nn::SqueezeExcite<6, 2, ops::act::hardswish, ops::act::hardsigmoid, double> se;
    spread(se, 5);
    const auto r = testing::check_gradients(se, test::random({2, 6, 5, 3}, 6, -2, 3));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::SqueezeExcite<8, 1, ops::act::hardswish, ops::act::hardsigmoid, double> se;
    spread(se, 7);
    const auto r = testing::check_gradients(se, test::random({1, 8, 1, 1}, 8, -2, 3));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::SqueezeExcite<5, 3, ops::act::silu, ops::act::sigmoid, double> se;
    spread(se, 9);
    const auto r = testing::check_gradients(se, test::random({3, 5, 4, 2}, 10, -2, 3));
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("SqueezeExcite equals PyTorch (RevBiFPN's SE: x * se(x))") {
  check_torch_case<6, 2>("a", {2, 6, 5, 3});
  check_torch_case<8, 1>("b", {1, 8, 1, 1});
  check_torch_case<5, 3>("c", {3, 5, 4, 4});
}

TEST_CASE("SqueezeExcite: names, extents and initialisation") {
  using SE = nn::SqueezeExcite<16, 4>;
  static_assert(Layer<SE> && SE::in_channels == 16 && SE::out_channels == 16 && SE::squeeze_channels == 4);
  Generator g(42);
  SE se(g);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  se.for_each_parameter(
      [&](const std::string& n, Param<float>& p) {
        names.push_back(n);
        shapes.push_back(p.shape());
      },
      "se");
  CHECK(names == std::vector<std::string>{"se.se.1.weight", "se.se.1.bias", "se.se.3.weight", "se.se.3.bias"});
  CHECK(shapes == std::vector<Shape>{{4, 16, 1, 1}, {4}, {16, 4, 1, 1}, {16}});
  CHECK(parameter_count(se) == 4 * 16 + 4 + 16 * 4 + 16);
  // Kaiming normal, fan-out: std sqrt(2 / fan_out) with fan_out = out channels of each conv.
  auto stddev = [](const Tensor<float>& t) {
    double s = 0;
    for (float v : t) s += static_cast<double>(v) * v;
    return std::sqrt(s / static_cast<double>(t.numel()));
  };
  CHECK(stddev(se.w1.value) == doctest::Approx(std::sqrt(2.0 / 4)).epsilon(0.25));
  CHECK(stddev(se.w2.value) == doctest::Approx(std::sqrt(2.0 / 16)).epsilon(0.25));
  for (float v : se.b1.value) CHECK(v == 0);
  for (float v : se.b2.value) CHECK(v == 0);
  // The same generator state gives the same weights.
  Generator g2(42);
  SE same(g2);
  CHECK(test::max_abs_error(same.w1.value, se.w1.value) == 0);
  CHECK(test::max_abs_error(same.w2.value, se.w2.value) == 0);
}

TEST_CASE("SqueezeExcite errors") {
  nn::SqueezeExcite<4, 2> se;
  context ctx;
  CHECK_THROWS_WITH_AS(se.forward(Tensor<float>({2, 5, 3, 3}), ctx),
                       "rev::nn::SqueezeExcite: input has extents [2, 5, 3, 3], expected [N, 4, H, W]", shape_error);
  CHECK_THROWS_WITH_AS(se.forward(Tensor<float>({2, 4}), ctx),
                       "rev::nn::SqueezeExcite: input has extents [2, 4], expected [N, 4, H, W]", shape_error);
  CHECK_THROWS_WITH_AS(se.forward(Tensor<float>({2, 4, 0, 3}), ctx),
                       "rev::ops::global_avg_pool: input has extents [2, 4, 0, 3], expected H * W > 0", shape_error);
  nn::SqueezeExcite<4, 2>::cache c;
  se.forward(Tensor<float>({2, 4, 3, 3}), ctx, c);
  CHECK_THROWS_WITH_AS(se.backward(c, Tensor<float>({2, 3, 3, 3})),
                       "rev::nn::SqueezeExcite: dy has extents [2, 3, 3, 3], expected [N, 4, H, W]", shape_error);
  CHECK_THROWS_WITH_AS(se.backward(c, Tensor<float>({2, 4, 3, 2})),
                       "rev::nn::SqueezeExcite: dy has extents [2, 4, 3, 2], expected [2, 4, 3, 3]", shape_error);
}
