#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/layernorm.hpp"

using namespace rev;

namespace {

// Plain-loop LayerNorm of the `count` values x[base + k * stride], k < count, into y.
template <class T>
void naive_group(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b, double eps, index_t base, index_t stride,
                 index_t count, Tensor<double>& y) {
  double mean = 0, var = 0;
  for (index_t k = 0; k < count; ++k) mean += x.data()[base + k * stride];
  mean /= static_cast<double>(count);
  for (index_t k = 0; k < count; ++k)
    var += (x.data()[base + k * stride] - mean) * (x.data()[base + k * stride] - mean);
  var /= static_cast<double>(count);
  for (index_t k = 0; k < count; ++k)
    y.data()[base + k * stride] = (x.data()[base + k * stride] - mean) / std::sqrt(var + eps) * w(k) + b(k);
}

template <class T>
Tensor<double> naive_channels(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b, double eps) {
  Tensor<double> y(x.shape());
  const index_t C = x.size(1), HW = x.size(2) * x.size(3);
  for (index_t n = 0; n < x.size(0); ++n)
    for (index_t p = 0; p < HW; ++p) naive_group(x, w, b, eps, n * C * HW + p, HW, C, y);
  return y;
}

template <class T>
Tensor<double> naive_tokens(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b, double eps) {
  Tensor<double> y(x.shape());
  const index_t D = x.size(-1);
  for (index_t r = 0; r < x.numel() / D; ++r) naive_group(x, w, b, eps, r * D, 1, D, y);
  return y;
}

template <class L>
void randomise(L& layer, std::uint64_t seed) {
  layer.weight.value = test::random(layer.weight.shape(), seed, 0.5, 1.5);
  layer.bias.value = test::random(layer.bias.shape(), seed + 1);
}

// One case of tests/torch_ref/gen_layernorm.py through the layer L (over T), tolerance `tol`
// relative to max(max |reference|, 1): with one channel, y = bias and the true dx and dweight
// are 0, which PyTorch and rev both approximate by rounding noise.
template <class L>
void check_torch_case(const std::string& name, double tol) {
  using T = typename L::value_type;
  INFO(name, " ", std::string(sizeof(T) == 8 ? "double" : "float"));
  const auto ref = test::torch_reference("layernorm");
  const std::string p = name + ".";
  REQUIRE(ref.tensor<double>(p + "eps")(0) == L::eps);
  L layer;
  layer.for_each_parameter([&](const std::string& n, Param<T>& prm) { prm.value = ref.tensor<T>(n); }, name);
  context ctx{phase::train};
  typename L::cache cache;
  const auto y = layer.forward(ref.tensor<T>(p + "x"), ctx, cache);
  const auto dx = layer.backward(cache, ref.tensor<T>(p + "dout"));
  CHECK(test::max_rel_error(y, ref.tensor<double>(p + "y"), 1.0) < tol);
  CHECK(test::max_rel_error(dx, ref.tensor<double>(p + "dx"), 1.0) < tol);
  CHECK(test::max_rel_error(layer.weight.grad, ref.tensor<double>(p + "dweight"), 1.0) < tol);
  CHECK(test::max_rel_error(layer.bias.grad, ref.tensor<double>(p + "dbias"), 1.0) < tol);
}

}  // namespace

TEST_CASE("layer_norm_channels and layer_norm match a naive implementation") {
  for (const Shape& s : {Shape{2, 5, 3, 4}, Shape{1, 3, 1, 1}, Shape{3, 1, 2, 2}, Shape{2, 7, 13, 23}}) {
    INFO("extents ", s);
    const auto x = test::random(s, 1, -3, 5), w = test::random({s[1]}, 2, 0.5, 1.5), b = test::random({s[1]}, 3);
    CHECK(test::max_rel_error(ops::layer_norm_channels(x, w, b, 1e-6), naive_channels(x, w, b, 1e-6)) < 1e-13);
    const auto xf = ops::cast<float>(x), wf = ops::cast<float>(w), bf = ops::cast<float>(b);
    CHECK(test::max_rel_error(ops::layer_norm_channels(xf, wf, bf, 1e-6), naive_channels(xf, wf, bf, 1e-6)) < 2e-6);
  }
  for (const Shape& s : {Shape{3, 7, 9}, Shape{4, 6}, Shape{5, 1}, Shape{11}, Shape{2, 3, 2, 130}}) {
    INFO("extents ", s);
    const auto x = test::random(s, 4, -3, 5), w = test::random({s[-1]}, 5, 0.5, 1.5), b = test::random({s[-1]}, 6);
    CHECK(test::max_rel_error(ops::layer_norm(x, w, b, 1e-5), naive_tokens(x, w, b, 1e-5)) < 1e-13);
    const auto xf = ops::cast<float>(x), wf = ops::cast<float>(w), bf = ops::cast<float>(b);
    CHECK(test::max_rel_error(ops::layer_norm(xf, wf, bf, 1e-5), naive_tokens(xf, wf, bf, 1e-5)) < 2e-6);
  }
}

TEST_CASE("layer-norm backward equals finite differences") {
  {
    nn::LayerNorm2d<5, nn::eps_1e6, double> ln;
    randomise(ln, 11);
    const auto r = testing::check_gradients(ln, test::random({2, 5, 3, 4}, 12, -2, 3));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::LayerNorm2d<3, nn::eps_1e6, double> ln;
    randomise(ln, 13);
    const auto r = testing::check_gradients(ln, test::random({1, 3, 1, 1}, 14));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::LayerNorm2d<4, nn::eps_1e6, double> ln;  // more pixels than one tile of the kernel
    randomise(ln, 15);
    const auto r = testing::check_gradients(ln, test::random({1, 4, 11, 13}, 16));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::LayerNorm<9, nn::eps_1e5, double> ln;
    randomise(ln, 17);
    const auto r = testing::check_gradients(ln, test::random({3, 7, 9}, 18, -2, 3));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::LayerNorm<1, nn::eps_1e5, double> ln;
    randomise(ln, 19);
    const auto r = testing::check_gradients(ln, test::random({4, 1}, 20));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  // The ops with only the input gradient wanted.
  auto fwd = [](const std::vector<Tensor<double>>& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-5); };
  auto bwd = [](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    return std::vector<Tensor<double>>{ops::layer_norm_backward(in[0], in[1], 1e-5, dy, nullptr, nullptr),
                                       Tensor<double>(), Tensor<double>()};
  };
  const auto r =
      testing::check_gradients(fwd, bwd, {test::random({5, 6}, 21), test::random({6}, 22), test::random({6}, 23)});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("LayerNorm2d and LayerNorm equal PyTorch (RevCol's channels_first LN and F.layer_norm)") {
  check_torch_case<nn::LayerNorm2d<5, nn::eps_1e6, double>>("cf_a", 1e-12);
  check_torch_case<nn::LayerNorm2d<3, nn::eps_1e6, double>>("cf_b", 1e-12);
  check_torch_case<nn::LayerNorm2d<1, nn::eps_1e6, double>>("cf_c", 1e-12);
  check_torch_case<nn::LayerNorm2d<6, nn::eps_1e6, double>>("cf_d", 1e-12);
  check_torch_case<nn::LayerNorm<9, nn::eps_1e5, double>>("tok_a", 1e-12);
  check_torch_case<nn::LayerNorm<6, nn::eps_1e6, double>>("tok_b", 1e-12);
  check_torch_case<nn::LayerNorm<1, nn::eps_1e5, double>>("tok_c", 1e-12);
  check_torch_case<nn::LayerNorm2d<5, nn::eps_1e6, float>>("cf_a", 1e-5);
  check_torch_case<nn::LayerNorm2d<6, nn::eps_1e6, float>>("cf_d", 1e-5);
  check_torch_case<nn::LayerNorm<9, nn::eps_1e5, float>>("tok_a", 1e-5);
  check_torch_case<nn::LayerNorm<6, nn::eps_1e6, float>>("tok_b", 1e-5);
}

TEST_CASE("layer-norm gradients are the same bit for bit on any number of threads") {
  const int threads = num_threads();
  const auto x = test::random<float>({4096, 64}, 31), dy = test::random<float>({4096, 64}, 32);
  const auto xc = test::random<float>({8, 16, 30, 30}, 33), dyc = test::random<float>({8, 16, 30, 30}, 34);
  const auto w = test::random<float>({64}, 35, 0.5, 1.5), wc = test::random<float>({16}, 36, 0.5, 1.5);
  std::vector<std::vector<Tensor<float>>> runs;
  for (int n : {1, 2, 3}) {
    set_num_threads(n);
    Tensor<float> dw({64}), db({64}), dwc({16}), dbc({16});
    auto dx = ops::layer_norm_backward(x, w, 1e-5, dy, &dw, &db);
    auto dxc = ops::layer_norm_channels_backward(xc, wc, 1e-6, dyc, &dwc, &dbc);
    runs.push_back({dx, dw, db, dxc, dwc, dbc});
  }
  set_num_threads(threads);
  for (std::size_t r = 1; r < runs.size(); ++r)
    for (std::size_t k = 0; k < runs[0].size(); ++k) CHECK(test::max_abs_error(runs[r][k], runs[0][k]) == 0);
}

TEST_CASE("LayerNorm layers: names, initial values, defaults") {
  nn::LayerNorm2d<4> cf;
  nn::LayerNorm<6> tok;
  static_assert(Layer<nn::LayerNorm2d<4>> && Layer<nn::LayerNorm<6>>);
  static_assert(nn::LayerNorm2d<4>::eps == 1e-6 && nn::LayerNorm<6>::eps == 1e-5);
  static_assert(nn::LayerNorm2d<4>::in_channels == 4 && nn::LayerNorm<6>::out_channels == 6);
  std::vector<std::string> names;
  cf.for_each_parameter(
      [&](const std::string& n, Param<float>& p) {
        names.push_back(n);
        CHECK(p.shape() == Shape{4});
      },
      "stem.1");
  CHECK(names == std::vector<std::string>{"stem.1.weight", "stem.1.bias"});
  CHECK(parameter_count(tok) == 12);
  for (int c = 0; c < 4; ++c) CHECK((cf.weight.value(c) == 1 && cf.bias.value(c) == 0));
  context ctx;
  CHECK(test::max_abs_error(tok.forward(Tensor<float>({2, 6}), ctx), Tensor<float>({2, 6})) == 0);
}

TEST_CASE("layer-norm errors") {
  const Tensor<float> x({2, 3, 4, 4}), w({3}), t({5, 3});
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels(Tensor<float>({2, 3}), w, w, 1e-6),
                       "rev::ops::layer_norm_channels: input has rank 2 (extents [2, 3]), expected rank 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels(x, Tensor<float>({4}), w, 1e-6),
                       "rev::ops::layer_norm_channels: weight has extents [4], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels(x, w, Tensor<float>({2}), 1e-6),
                       "rev::ops::layer_norm_channels: bias has extents [2], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels(x, w, w, -1.0),
                       "rev::ops::layer_norm_channels: eps must be finite and >= 0, got -1", value_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels_backward(x, w, 1e-6, Tensor<float>({2, 3, 4, 3}), nullptr, nullptr),
                       "rev::ops::layer_norm_channels_backward: dy has extents [2, 3, 4, 3], expected [2, 3, 4, 4]",
                       shape_error);
  Tensor<float> bad({2});
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels_backward(x, w, 1e-6, x, &bad, nullptr),
                       "rev::ops::layer_norm_channels_backward: dweight has extents [2], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels_backward(x, w, 1e-6, x, nullptr, &bad),
                       "rev::ops::layer_norm_channels_backward: dbias has extents [2], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm(Tensor<float>(), w, w, 1e-5),
                       "rev::ops::layer_norm: input has rank 0, expected [..., D]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm(t, Tensor<float>({5}), w, 1e-5),
                       "rev::ops::layer_norm: weight has extents [5], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm(t, w, Tensor<float>({3, 1}), 1e-5),
                       "rev::ops::layer_norm: bias has extents [3, 1], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_backward(Tensor<float>(), w, 1e-5, t, nullptr, nullptr),
                       "rev::ops::layer_norm_backward: input has rank 0, expected [..., D]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_backward(t, Tensor<float>({5}), 1e-5, t, nullptr, nullptr),
                       "rev::ops::layer_norm_backward: weight has extents [5], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_backward(t, w, 1e-5, t, nullptr, &bad),
                       "rev::ops::layer_norm_backward: dbias has extents [2], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_backward(t, w, -1e-5, t, nullptr, nullptr),
                       "rev::ops::layer_norm_backward: eps must be finite and >= 0, got -1e-05", value_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels_backward(t, w, 1e-6, t, nullptr, nullptr),
                       "rev::ops::layer_norm_channels_backward: input has rank 2 (extents [5, 3]), expected rank 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels_backward(x, Tensor<float>({4}), 1e-6, x, nullptr, nullptr),
                       "rev::ops::layer_norm_channels_backward: weight has extents [4], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_channels_backward(x, w, INFINITY, x, nullptr, nullptr),
                       "rev::ops::layer_norm_channels_backward: eps must be finite and >= 0, got inf", value_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm(t, w, w, NAN), "rev::ops::layer_norm: eps must be finite and >= 0, got nan",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_backward(t, w, 1e-5, Tensor<float>({3, 5}), nullptr, nullptr),
                       "rev::ops::layer_norm_backward: dy has extents [3, 5], expected [5, 3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::layer_norm_backward(t, w, 1e-5, t, &bad, nullptr),
                       "rev::ops::layer_norm_backward: dweight has extents [2], expected [3]", shape_error);

  context ctx;
  nn::LayerNorm2d<3> cf;
  nn::LayerNorm<3> tok;
  CHECK_THROWS_WITH_AS(cf.forward(Tensor<float>({2, 4, 4, 4}), ctx),
                       "rev::nn::LayerNorm2d: input has extents [2, 4, 4, 4], expected [N, 3, H, W]", shape_error);
  CHECK_THROWS_WITH_AS(tok.forward(Tensor<float>({2, 4}), ctx),
                       "rev::nn::LayerNorm: input has extents [2, 4], expected [..., 3]", shape_error);
  nn::LayerNorm2d<3>::cache c1;
  cf.forward(x, ctx, c1);
  CHECK_THROWS_WITH_AS(cf.backward(c1, Tensor<float>({2, 2, 4, 4})),
                       "rev::nn::LayerNorm2d: dy has extents [2, 2, 4, 4], expected [N, 3, H, W]", shape_error);
  nn::LayerNorm<3>::cache c2;
  tok.forward(t, ctx, c2);
  CHECK_THROWS_WITH_AS(tok.backward(c2, Tensor<float>({5, 4})),
                       "rev::nn::LayerNorm: dy has extents [5, 4], expected [..., 3]", shape_error);
}
