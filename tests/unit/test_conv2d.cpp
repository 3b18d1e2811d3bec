#include <string>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/conv2d.hpp"

using namespace rev;

namespace {

struct conv_case {
  Shape x;
  index_t c_out, kh, kw;
  ops::conv2d_params p;
  bool bias;
};

// The definition, in plain loops (float64): y[n, o, i, j] = b[o] + sum w[o, c, u, v] x[n, gc + c, ...].
struct naive {
  const conv_case& k;
  index_t n, ci, h, w, co, cig, cog, ho, wo;
  explicit naive(const conv_case& c)
      : k(c), n(c.x[0]), ci(c.x[1]), h(c.x[2]), w(c.x[3]), co(c.c_out), cig(ci / c.p.groups), cog(co / c.p.groups) {
    ho = (h + 2 * c.p.pad_h - c.p.dilation_h * (c.kh - 1) - 1) / c.p.stride_h + 1;
    wo = (w + 2 * c.p.pad_w - c.p.dilation_w * (c.kw - 1) - 1) / c.p.stride_w + 1;
  }
  // Calls f(n, o, i, j, c, u, v, iy, ix) for every term with (iy, ix) inside the image.
  template <class F>
  void terms(F f) const {
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < co; ++o)
        for (index_t i = 0; i < ho; ++i)
          for (index_t j = 0; j < wo; ++j)
            for (index_t c = 0; c < cig; ++c)
              for (index_t u = 0; u < k.kh; ++u)
                for (index_t v = 0; v < k.kw; ++v) {
                  const index_t iy = i * k.p.stride_h - k.p.pad_h + u * k.p.dilation_h;
                  const index_t ix = j * k.p.stride_w - k.p.pad_w + v * k.p.dilation_w;
                  if (iy >= 0 && iy < h && ix >= 0 && ix < w) f(a, o, i, j, o / cog * cig + c, c, u, v, iy, ix);
                }
  }
  Tensor<double> forward(const Tensor<double>& x, const Tensor<double>& wt, const Tensor<double>* b) const {
    Tensor<double> y({n, co, ho, wo});
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < co; ++o)
        for (index_t i = 0; i < ho; ++i)
          for (index_t j = 0; j < wo; ++j) y(a, o, i, j) = b ? b->data()[o] : 0.0;
    terms([&](index_t a, index_t o, index_t i, index_t j, index_t xc, index_t c, index_t u, index_t v, index_t iy,
              index_t ix) { y(a, o, i, j) += wt(o, c, u, v) * x(a, xc, iy, ix); });
    return y;
  }
  // {dx, dw, db}
  std::vector<Tensor<double>> backward(const Tensor<double>& x, const Tensor<double>& wt,
                                       const Tensor<double>& dy) const {
    Tensor<double> dx(x.shape()), dw(wt.shape()), db({co});
    terms([&](index_t a, index_t o, index_t i, index_t j, index_t xc, index_t c, index_t u, index_t v, index_t iy,
              index_t ix) {
      dx(a, xc, iy, ix) += wt(o, c, u, v) * dy(a, o, i, j);
      dw(o, c, u, v) += x(a, xc, iy, ix) * dy(a, o, i, j);
    });
    for (index_t a = 0; a < n; ++a)
      for (index_t o = 0; o < co; ++o)
        for (index_t i = 0; i < ho; ++i)
          for (index_t j = 0; j < wo; ++j) db.data()[o] += dy(a, o, i, j);
    return {dx, dw, db};
  }
};

ops::conv2d_params P(int s, int pad, int d = 1, int g = 1) { return {s, s, pad, pad, d, d, g}; }

// Every kernel (pointwise, depthwise, im2col) with odd sizes, strides that do not divide the
// input, batch 1, 1x1 maps, several im2col tiles and several pointwise column blocks.
std::vector<conv_case> cases() {
  return {
      {{2, 7, 5, 6}, 9, 1, 1, P(1, 0), true},                  // pointwise
      {{1, 16, 33, 32}, 8, 1, 1, P(1, 0), false},              // pointwise, batch 1: column blocks
      {{3, 8, 1, 1}, 2, 1, 1, P(1, 0), true},                  // squeeze-excite: 1x1 maps
      {{2, 6, 1, 1}, 4, 1, 1, P(1, 0, 1, 2), true},            // grouped, 1x1 maps
      {{2, 6, 4, 5}, 4, 1, 1, P(1, 0, 1, 2), false},           // grouped pointwise
      {{2, 6, 9, 11}, 6, 3, 3, P(1, 1, 1, 6), false},          // depthwise k3 s1
      {{2, 5, 9, 8}, 5, 3, 3, P(2, 1, 1, 5), true},            // depthwise k3 s2
      {{1, 4, 5, 5}, 4, 5, 5, P(1, 2, 1, 4), false},           // depthwise k5 s1
      {{1, 4, 17, 15}, 4, 7, 7, P(4, 3, 1, 4), false},         // depthwise k7 s4
      {{2, 3, 20, 17}, 3, 15, 15, P(8, 7, 1, 3), true},        // depthwise k15 s8
      {{1, 2, 9, 9}, 2, 3, 3, P(1, 2, 2, 2), false},           // depthwise dilated
      {{2, 3, 8, 9}, 3, 3, 3, {1, 2, 2, 1, 2, 1, 3}, false},   // depthwise, mixed strides
      {{1, 3, 1, 1}, 3, 3, 3, P(1, 1, 1, 3), false},           // depthwise on 1x1 maps
      {{1, 2, 6, 7}, 2, 3, 3, P(1, 3, 1, 2), false},           // depthwise, padding beyond the kernel
      {{2, 12, 9, 10}, 12, 3, 3, P(2, 1, 1, 12), true},        // depthwise, a full and a partial group of 8
      {{1, 16, 11, 9}, 16, 5, 5, P(1, 2, 1, 16), false},       // depthwise, two full groups
      {{2, 5, 8, 7}, 6, 3, 3, P(1, 1), false},                 // dense 3x3
      {{1, 3, 9, 10}, 4, 3, 3, P(2, 1), true},                 // dense 3x3 stride 2
      {{2, 16, 24, 24}, 5, 3, 3, P(1, 1), true},               // dense 3x3, several im2col tiles
      {{2, 6, 7, 7}, 9, 3, 3, P(1, 1, 1, 3), true},            // grouped 3x3
      {{1, 4, 10, 9}, 3, 3, 3, P(1, 2, 2), false},             // dilated
      {{2, 3, 8, 11}, 4, 3, 5, {2, 1, 1, 2, 1, 2, 1}, false},  // non-square everything
      {{2, 4, 1, 1}, 5, 3, 3, P(1, 1), true},                  // 3x3 on 1x1 maps
      {{1, 3, 6, 6}, 6, 3, 3, P(1, 1, 1, 3), false},           // channel multiplier 2
      {{2, 4, 7, 7}, 3, 1, 1, P(2, 0), false},                 // 1x1 stride 2
      {{2, 3, 5, 5}, 2, 5, 5, P(1, 0), false},                 // kernel as large as the input
  };
}

std::string describe(const conv_case& c) {
  return detail::concat("x ", c.x, " C_out ", c.c_out, " kernel ", c.kh, "x", c.kw, " stride ", c.p.stride_h, "x",
                        c.p.stride_w, " pad ", c.p.pad_h, "x", c.p.pad_w, " dilation ", c.p.dilation_h, "x",
                        c.p.dilation_w, " groups ", c.p.groups, c.bias ? " bias" : "");
}

struct data {
  Tensor<double> x, w, b, dy;
};
data make(const conv_case& c, std::uint64_t seed) {
  naive r(c);
  return {test::random(c.x, seed), test::random({c.c_out, c.x[1] / c.p.groups, c.kh, c.kw}, seed + 1),
          c.bias ? test::random({c.c_out}, seed + 2) : Tensor<double>(),
          test::random({r.n, r.co, r.ho, r.wo}, seed + 3)};
}

}  // namespace

TEST_CASE("conv2d: forward equals the definition") {
  std::uint64_t seed = 100;
  for (const auto& c : cases()) {
    INFO(describe(c));
    const auto d = make(c, seed += 10);
    const auto ref = naive(c).forward(d.x, d.w, c.bias ? &d.b : nullptr);
    const auto y = ops::conv2d(d.x, d.w, c.bias ? &d.b : nullptr, c.p);
    CHECK(test::max_rel_error(y, ref) < 1e-13);
    const auto xf = ops::cast<float>(d.x), wf = ops::cast<float>(d.w);
    const auto bf = c.bias ? ops::cast<float>(d.b) : Tensor<float>();
    CHECK(test::max_rel_error(ops::conv2d(xf, wf, c.bias ? &bf : nullptr, c.p), ref) < 1e-5);
  }
}

TEST_CASE("conv2d: backward equals the definition, and adds into the parameter gradients") {
  std::uint64_t seed = 500;
  for (const auto& c : cases()) {
    INFO(describe(c));
    const auto d = make(c, seed += 10);
    const auto ref = naive(c).backward(d.x, d.w, d.dy);
    Tensor<double> dw = Tensor<double>::full(d.w.shape(), 1.0), db = Tensor<double>::full({c.c_out}, 1.0);
    const auto dx = ops::conv2d_backward(d.x, d.w, d.dy, c.p, &dw, &db);
    CHECK(test::max_rel_error(dx, ref[0]) < 1e-13);
    for (double& v : dw) v -= 1.0;
    for (double& v : db) v -= 1.0;
    CHECK(test::max_rel_error(dw, ref[1]) < 1e-12);
    CHECK(test::max_rel_error(db, ref[2]) < 1e-12);

    const auto xf = ops::cast<float>(d.x), wf = ops::cast<float>(d.w), dyf = ops::cast<float>(d.dy);
    Tensor<float> dwf(d.w.shape()), dbf({c.c_out});
    CHECK(test::max_rel_error(ops::conv2d_backward(xf, wf, dyf, c.p, &dwf, &dbf), ref[0]) < 1e-5);
    CHECK(test::max_rel_error(dwf, ref[1]) < 1e-5);
    CHECK(test::max_rel_error(dbf, ref[2]) < 1e-5);

    // Without dx: an empty tensor, the same parameter gradients.
    Tensor<double> dw2(d.w.shape());
    CHECK(ops::conv2d_backward(d.x, d.w, d.dy, c.p, &dw2, nullptr, false).empty());
    CHECK(test::max_rel_error(dw2, ref[1]) < 1e-12);
    // Only dx.
    CHECK(test::max_rel_error(ops::conv2d_backward(d.x, d.w, d.dy, c.p, nullptr, nullptr), ref[0]) < 1e-13);
  }
}

TEST_CASE("conv2d: backward equals finite differences") {
  // One case per kernel, small enough for central differences.
  const std::vector<conv_case> small = {
      {{2, 3, 3, 4}, 4, 1, 1, P(1, 0), true},        {{2, 3, 6, 5}, 3, 3, 3, P(2, 1, 1, 3), true},
      {{1, 2, 9, 8}, 2, 7, 7, P(4, 3, 1, 2), false}, {{2, 4, 5, 6}, 4, 3, 3, {2, 1, 1, 0, 1, 2, 2}, true},
      {{1, 3, 6, 5}, 2, 3, 3, P(1, 2, 2), false},
  };
  std::uint64_t seed = 900;
  for (const auto& c : small) {
    INFO(describe(c));
    const auto d = make(c, seed += 10);
    const std::vector<Tensor<double>> inputs = c.bias ? std::vector{d.x, d.w, d.b} : std::vector{d.x, d.w};
    auto forward = [&](const std::vector<Tensor<double>>& in) {
      return ops::conv2d(in[0], in[1], c.bias ? &in[2] : nullptr, c.p);
    };
    auto backward = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
      std::vector<Tensor<double>> g = {Tensor<double>(), Tensor<double>(in[1].shape())};
      if (c.bias) g.emplace_back(in[2].shape());
      g[0] = ops::conv2d_backward(in[0], in[1], dy, c.p, &g[1], c.bias ? &g[2] : nullptr);
      return g;
    };
    auto r = testing::check_gradients(forward, backward, inputs);
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("conv2d: forward and backward equal PyTorch's") {
  auto ref = test::torch_reference("conv2d");
  int count = 0;
  for (int i = 0; ref.contains(detail::concat("c", i, ".x")); ++i, ++count) {
    const std::string k = detail::concat("c", i, ".");
    INFO(k);
    const auto x = ref.tensor<double>(k + "x"), w = ref.tensor<double>(k + "w"), dy = ref.tensor<double>(k + "dout");
    const auto pr = ref.tensor<double>(k + "params");
    const ops::conv2d_params p{int(pr.data()[0]), int(pr.data()[1]), int(pr.data()[2]), int(pr.data()[3]),
                               int(pr.data()[4]), int(pr.data()[5]), int(pr.data()[6])};
    const bool has_bias = ref.contains(k + "b");
    const Tensor<double> b = has_bias ? ref.tensor<double>(k + "b") : Tensor<double>();
    const auto y_ref = ref.tensor<double>(k + "y"), dx_ref = ref.tensor<double>(k + "dx"),
               dw_ref = ref.tensor<double>(k + "dw");

    CHECK(test::max_rel_error(ops::conv2d(x, w, has_bias ? &b : nullptr, p), y_ref) < 1e-12);
    Tensor<double> dw(w.shape()), db({w.size(0)});
    CHECK(test::max_rel_error(ops::conv2d_backward(x, w, dy, p, &dw, &db), dx_ref) < 1e-12);
    CHECK(test::max_rel_error(dw, dw_ref) < 1e-12);
    if (has_bias) CHECK(test::max_rel_error(db, ref.tensor<double>(k + "db")) < 1e-12);

    const auto xf = ops::cast<float>(x), wf = ops::cast<float>(w), dyf = ops::cast<float>(dy);
    const auto bf = has_bias ? ops::cast<float>(b) : Tensor<float>();
    CHECK(test::max_rel_error(ops::conv2d(xf, wf, has_bias ? &bf : nullptr, p), y_ref) < 1e-5);
    Tensor<float> dwf(w.shape());
    CHECK(test::max_rel_error(ops::conv2d_backward(xf, wf, dyf, p, &dwf, nullptr), dx_ref) < 1e-5);
    CHECK(test::max_rel_error(dwf, dw_ref) < 1e-5);
  }
  CHECK(count == 17);
}

TEST_CASE("conv2d: results do not depend on the thread count") {
  const conv_case c{{4, 8, 12, 12}, 8, 3, 3, P(1, 1, 1, 8), true};
  const auto d = make(c, 77);
  auto run = [&] {
    Tensor<double> dw(d.w.shape()), db({8});
    auto dx = ops::conv2d_backward(d.x, d.w, d.dy, c.p, &dw, &db);
    return std::vector<Tensor<double>>{ops::conv2d(d.x, d.w, &d.b, c.p), dx, dw, db};
  };
  const int threads = num_threads();
  set_num_threads(1);
  const auto serial = run();
  set_num_threads(3);
  const auto parallel = run();
  set_num_threads(threads);
  for (std::size_t i = 0; i < serial.size(); ++i) CHECK(test::max_rel_error(parallel[i], serial[i]) < 1e-14);
}

TEST_CASE("conv2d: bad shapes and options are reported") {
  Tensor<float> x({2, 4, 8, 8}), w({8, 4, 3, 3}), dy({2, 8, 8, 8});
  const auto p = P(1, 1);
  CHECK(ops::conv2d(x, w, nullptr, p).shape() == Shape{2, 8, 8, 8});
  CHECK_THROWS_WITH_AS(ops::conv2d(Tensor<float>({4, 8, 8}), w, nullptr, p),
                       "rev::ops::conv2d: input has rank 3 (extents [4, 8, 8]), expected rank 4", shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, Tensor<float>({8, 4, 3}), nullptr, p),
                       "rev::ops::conv2d: weight has rank 3 (extents [8, 4, 3]), expected rank 4", shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(Tensor<float>({2, 5, 8, 8}), w, nullptr, p),
                       "rev::ops::conv2d: input has 5 channels, expected 4 (weight [8, 4, 3, 3], groups 1)",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, Tensor<float>({8, 2, 3, 3}), nullptr, P(1, 1, 1, 3)),
                       "rev::ops::conv2d: weight has 8 output channels, not divisible by groups 3", shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(Tensor<float>({2, 5, 8, 8}), Tensor<float>({6, 2, 3, 3}), nullptr, P(1, 1, 1, 3)),
                       "rev::ops::conv2d: input has 5 channels, not divisible by groups 3", shape_error);
  CHECK_THROWS_WITH_AS(
      ops::conv2d(x, Tensor<float>({8, 0, 3, 3}), nullptr, p),
      "rev::ops::conv2d: weight has extents [8, 0, 3, 3], expected positive extents [C_out, C_in/groups, kh, kw]",
      shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(Tensor<float>({1, 4, 2, 9}), Tensor<float>({8, 4, 5, 3}), nullptr, P(1, 1)),
                       "rev::ops::conv2d: kernel 5x3 with dilation 1x1 spans 5x3, larger than the padded input 4x11 "
                       "(input [1, 4, 2, 9], padding 1x1)",
                       shape_error);
  CHECK_THROWS_AS(ops::conv2d(Tensor<float>({1, 4, 4, 4}), w, nullptr, P(1, 0, 2)), shape_error);
  const Tensor<float> b5({5});
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, &b5, p), "rev::ops::conv2d: bias has extents [5], expected [8]", shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, nullptr, P(0, 1)), "rev::ops::conv2d: stride 0x0 must be at least 1",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, nullptr, P(1, -1)), "rev::ops::conv2d: padding -1x-1 must not be negative",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, nullptr, P(1, 1, 0)), "rev::ops::conv2d: dilation 0x0 must be at least 1",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::conv2d(x, w, nullptr, P(1, 1, 1, 0)), "rev::ops::conv2d: groups 0 must be at least 1",
                       value_error);

  Tensor<float> dw(w.shape()), db({8});
  CHECK_THROWS_WITH_AS(ops::conv2d_backward(x, w, Tensor<float>({2, 8, 4, 4}), p, &dw, &db),
                       "rev::ops::conv2d_backward: output gradient has extents [2, 8, 4, 4], expected [2, 8, 8, 8]",
                       shape_error);
  Tensor<float> dw_bad({8, 4, 1, 1}), db_bad({4});
  CHECK_THROWS_WITH_AS(ops::conv2d_backward(x, w, dy, p, &dw_bad, &db),
                       "rev::ops::conv2d_backward: weight gradient has extents [8, 4, 1, 1], expected [8, 4, 3, 3]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d_backward(x, w, dy, p, &dw, &db_bad),
                       "rev::ops::conv2d_backward: bias gradient has extents [4], expected [8]", shape_error);
  CHECK_THROWS_WITH_AS(ops::conv2d_backward(Tensor<float>({2, 3, 8, 8}), w, dy, p, &dw, &db),
                       "rev::ops::conv2d_backward: input has 3 channels, expected 4 (weight [8, 4, 3, 3], groups 1)",
                       shape_error);
}

TEST_CASE("conv2d: an empty batch gives an empty output") {
  Tensor<float> x({0, 4, 8, 8}), w({8, 4, 3, 3}), dy({0, 8, 8, 8}), dw(w.shape());
  CHECK(ops::conv2d(x, w, nullptr, P(1, 1)).shape() == Shape{0, 8, 8, 8});
  CHECK(ops::conv2d_backward(x, w, dy, P(1, 1), &dw, nullptr).shape() == x.shape());
}

// ---------------------------------------------------------------------------------------------
// nn::Conv2d

TEST_CASE("nn::Conv2d: parameters, options and PyTorch's default initialisation") {
  nn::Conv2d<16, 32, nn::conv_opts{.kernel = 3, .stride = 2, .groups = 4, .bias = true}> conv;
  static_assert(decltype(conv)::in_channels == 16 && decltype(conv)::out_channels == 32);
  static_assert(decltype(conv)::padding == 1);
  static_assert(nn::Conv2d<8, 8, nn::conv_opts{.kernel = 5, .dilation = 2}>::padding == 4);
  static_assert(nn::Conv2d<8, 8, nn::conv_opts{.kernel = 5, .padding = 0}>::padding == 0);
  static_assert(Layer<nn::Conv2d<8, 8>>);
  std::vector<std::string> names;
  conv.for_each_parameter(
      [&](const std::string& n, Param<float>& p) {
        names.push_back(n);
        CHECK(p.grad.shape() == p.value.shape());
      },
      "stem.conv");
  CHECK(names == std::vector<std::string>{"stem.conv.weight", "stem.conv.bias"});
  CHECK(conv.weight.shape() == Shape{32, 4, 3, 3});
  CHECK(conv.bias.shape() == Shape{32});
  CHECK(parameter_count(conv) == 32 * 4 * 9 + 32);
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 4 * 3 * 3, for the weight and the bias.
  const double bound = 1.0 / 6.0;
  for (float v : conv.weight.value) CHECK(std::abs(v) <= bound);
  for (float v : conv.bias.value) CHECK(std::abs(v) <= bound);
  double sq = 0;
  for (float v : conv.weight.value) sq += double(v) * v;
  CHECK(sq / double(conv.weight.value.numel()) == doctest::Approx(bound * bound / 3).epsilon(0.1));

  nn::Conv2d<4, 8> plain;  // 1x1, no bias
  names.clear();
  plain.for_each_parameter([&](const std::string& n, Param<float>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"weight"});
  CHECK(plain.bias.value.empty());

  Generator g1(5), g2(5);
  nn::Conv2d<4, 8, nn::conv_opts{.kernel = 3}> a(g1), b(g2);
  CHECK(test::max_abs_error(a.weight.value, b.weight.value) == 0);
}

TEST_CASE("nn::Conv2d: forward and backward are the op's; gradients equal finite differences") {
  Generator gen(3);
  nn::Conv2d<4, 6, nn::conv_opts{.kernel = 3, .stride = 2, .groups = 2, .bias = true}, double> conv(gen);
  const auto x = test::random({2, 4, 7, 6}, 31);
  context ctx{phase::train};
  decltype(conv)::cache c;
  const auto y = conv.forward(x, ctx, c);
  CHECK(test::max_abs_error(y, ops::conv2d(x, conv.weight.value, &conv.bias.value, {2, 2, 1, 1, 1, 1, 2})) == 0);
  CHECK(y.shape() == Shape{2, 6, 4, 3});

  auto r = testing::check_gradients(conv, x);
  CHECK_MESSAGE(r.ok(), r.str());
  nn::Conv2d<6, 6, nn::conv_opts{.kernel = 5, .groups = 6}, double> dw(gen);
  r = testing::check_gradients(dw, test::random({1, 6, 6, 5}, 32));
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("nn::Conv2d: an input with the wrong channel count or rank is reported") {
  nn::Conv2d<16, 32> conv;
  context ctx;
  CHECK_THROWS_WITH_AS(conv.forward(Tensor<float>({1, 8, 4, 4}), ctx),
                       "rev::nn::Conv2d<16,32>: input has 8 channels, expected 16 (input [1, 8, 4, 4])", shape_error);
  CHECK_THROWS_WITH_AS(conv.forward(Tensor<float>({16, 4, 4}), ctx),
                       "rev::nn::Conv2d<16,32>: input has rank 3 (extents [16, 4, 4]), expected rank 4", shape_error);
}
