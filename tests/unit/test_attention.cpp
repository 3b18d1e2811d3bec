#include <cmath>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/attention.hpp"

using namespace rev;

namespace {

struct naive_result {
  Tensor<double> out, probs;
};

// Attention from the definition, one score at a time.
naive_result naive_attention(const Tensor<double>& q, const Tensor<double>& k, const Tensor<double>& v, int heads,
                             double scale = 0) {
  const index_t B = q.size(0), Nq = q.size(1), Nk = k.size(1), D = q.size(2), Dv = v.size(2);
  const index_t d = D / heads, dv = Dv / heads;
  if (scale == 0) scale = 1 / std::sqrt(static_cast<double>(d));
  naive_result r{Tensor<double>({B, Nq, Dv}), Tensor<double>({B, heads, Nq, Nk})};
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < heads; ++h)
      for (index_t i = 0; i < Nq; ++i) {
        std::vector<double> s(static_cast<std::size_t>(Nk));
        double m = -INFINITY, sum = 0;
        for (index_t j = 0; j < Nk; ++j) {
          double dot = 0;
          for (index_t c = 0; c < d; ++c) dot += q(b, i, h * d + c) * k(b, j, h * d + c);
          s[static_cast<std::size_t>(j)] = scale * dot;
          m = std::max(m, scale * dot);
        }
        for (double& e : s) sum += (e = std::exp(e - m));
        for (index_t j = 0; j < Nk; ++j) r.probs(b, h, i, j) = s[static_cast<std::size_t>(j)] / sum;
        for (index_t c = 0; c < dv; ++c) {
          double acc = 0;
          for (index_t j = 0; j < Nk; ++j) acc += r.probs(b, h, i, j) * v(b, j, h * dv + c);
          r.out(b, i, h * dv + c) = acc;
        }
      }
  return r;
}

}  // namespace

TEST_CASE("multi_head_attention: forward equals the definition") {
  struct cfg {
    index_t B, Nq, Nk, D, Dv;
    int heads;
    double scale;
  };
  for (cfg c : {cfg{2, 5, 5, 6, 6, 2, 0}, cfg{1, 1, 1, 4, 4, 1, 0}, cfg{1, 3, 7, 8, 4, 4, 0},
                cfg{3, 4, 2, 6, 9, 3, 0.3}, cfg{1, 9, 9, 10, 10, 5, -0.7}}) {
    INFO("B ", c.B, " Nq ", c.Nq, " Nk ", c.Nk, " D ", c.D, " Dv ", c.Dv, " heads ", c.heads);
    auto q = test::random({c.B, c.Nq, c.D}, 41, -2, 2), k = test::random({c.B, c.Nk, c.D}, 42, -2, 2);
    auto v = test::random({c.B, c.Nk, c.Dv}, 43);
    auto ref = naive_attention(q, k, v, c.heads, c.scale);
    ops::attention_cache<double> cache;
    auto out = ops::multi_head_attention(q, k, v, c.heads, &cache, c.scale);
    CHECK(test::max_rel_error(out, ref.out) < 1e-14);
    CHECK(test::max_abs_error(cache.probs, ref.probs) < 1e-15);
    CHECK(test::max_abs_error(ops::multi_head_attention(q, k, v, c.heads, nullptr, c.scale), out) == 0);
  }
}

TEST_CASE("multi_head_attention: forward and backward equal PyTorch's") {
  auto ref = test::torch_reference("attention");
  for (int i = 0; i < 5; ++i) {
    const std::string key = std::to_string(i) + ".";
    auto meta = ref.tensor<double>(key + "meta");
    const int heads = static_cast<int>(meta.data()[0]);
    const double scale = meta.data()[1];
    INFO("case ", i, " heads ", heads, " scale ", scale);
    auto q = ref.tensor<double>(key + "q"), k = ref.tensor<double>(key + "k"), v = ref.tensor<double>(key + "v");
    auto dout = ref.tensor<double>(key + "dout");
    ops::attention_cache<double> cache;
    CHECK(test::max_rel_error(ops::multi_head_attention(q, k, v, heads, &cache, scale),
                              ref.tensor<double>(key + "out")) < 1e-13);
    CHECK(test::max_rel_error(cache.probs, ref.tensor<double>(key + "probs")) < 1e-13);
    auto g = ops::multi_head_attention_backward(q, k, v, heads, cache, dout, scale);
    CHECK(test::max_rel_error(g.dq, ref.tensor<double>(key + "dq")) < 1e-12);
    CHECK(test::max_rel_error(g.dk, ref.tensor<double>(key + "dk")) < 1e-12);
    CHECK(test::max_rel_error(g.dv, ref.tensor<double>(key + "dv")) < 1e-12);

    ops::attention_cache<float> cf;
    auto qf = ops::cast<float>(q), kf = ops::cast<float>(k), vf = ops::cast<float>(v);
    CHECK(test::max_rel_error(ops::multi_head_attention(qf, kf, vf, heads, &cf, scale),
                              ref.tensor<double>(key + "out")) < 1e-5);
    auto gf = ops::multi_head_attention_backward(qf, kf, vf, heads, cf, ops::cast<float>(dout), scale);
    CHECK(test::max_rel_error(gf.dq, ref.tensor<double>(key + "dq")) < 1e-5);
    CHECK(test::max_rel_error(gf.dk, ref.tensor<double>(key + "dk")) < 1e-5);
    CHECK(test::max_rel_error(gf.dv, ref.tensor<double>(key + "dv")) < 1e-5);
  }
}

TEST_CASE("multi_head_attention: backward equals finite differences") {
  struct cfg {
    index_t B, Nq, Nk, D, Dv;
    int heads;
    double scale;
  };
  for (cfg c : {cfg{2, 4, 3, 6, 4, 2, 0}, cfg{1, 1, 1, 2, 2, 1, 0}, cfg{1, 5, 5, 6, 6, 3, 0.8}}) {
    INFO("B ", c.B, " Nq ", c.Nq, " Nk ", c.Nk, " heads ", c.heads);
    auto fwd = [&](const std::vector<Tensor<double>>& in) {
      return ops::multi_head_attention(in[0], in[1], in[2], c.heads, nullptr, c.scale);
    };
    auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
      ops::attention_cache<double> cache;
      ops::multi_head_attention(in[0], in[1], in[2], c.heads, &cache, c.scale);
      auto g = ops::multi_head_attention_backward(in[0], in[1], in[2], c.heads, cache, dy, c.scale);
      return std::vector<Tensor<double>>{g.dq, g.dk, g.dv};
    };
    auto r = testing::check_gradients(fwd, bwd,
                                      {test::random({c.B, c.Nq, c.D}, 44, -2, 2),
                                       test::random({c.B, c.Nk, c.D}, 45, -2, 2), test::random({c.B, c.Nk, c.Dv}, 46)});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("multi_head_attention: float at ViT-like sizes, split across tasks") {
  // Rev-ViT-S-like head width 64 at 50 tokens; probabilities saturate (large scores) without overflow.
  auto q = test::random<float>({2, 50, 384}, 47, -3, 3), k = test::random<float>({2, 50, 384}, 48, -3, 3);
  auto v = test::random<float>({2, 50, 384}, 49);
  auto ref = naive_attention(ops::cast<double>(q), ops::cast<double>(k), ops::cast<double>(v), 6);
  ops::attention_cache<float> cache;
  auto out = ops::multi_head_attention(q, k, v, 6, &cache);
  CHECK(test::max_rel_error(out, ref.out) < 1e-5);
  CHECK(test::max_abs_error(cache.probs, ref.probs) < 1e-5);
  // Backward: <dout, out(q + e dq_dir)> changes by e <g.dq, dq_dir> (directional derivative in double).
  auto dout = test::random<float>({2, 50, 384}, 50);
  auto g = ops::multi_head_attention_backward(q, k, v, 6, cache, dout);
  auto dir = test::random({2, 50, 384}, 51);
  const double e = 1e-4;
  auto qd = ops::cast<double>(q), kd = ops::cast<double>(k), vd = ops::cast<double>(v);
  for (int which = 0; which < 3; ++which) {
    INFO("input ", which);
    Tensor<double> plus[3] = {qd.clone(), kd.clone(), vd.clone()}, minus[3] = {qd.clone(), kd.clone(), vd.clone()};
    for (index_t i = 0; i < dir.numel(); ++i) {
      plus[which].data()[i] += e * dir.data()[i];
      minus[which].data()[i] -= e * dir.data()[i];
    }
    auto dd = ops::cast<double>(dout);
    const double numeric = (ops::dot(naive_attention(plus[0], plus[1], plus[2], 6).out, dd) -
                            ops::dot(naive_attention(minus[0], minus[1], minus[2], 6).out, dd)) /
                           (2 * e);
    const Tensor<float>& grad = which == 0 ? g.dq : which == 1 ? g.dk : g.dv;
    const double analytic = ops::dot(ops::cast<double>(grad), dir);
    CHECK(std::abs(analytic - numeric) < 1e-3 * std::abs(numeric) + 1e-3);
  }
}

TEST_CASE("multi_head_attention: bad inputs raise errors that name the op") {
  Tensor<float> q({2, 4, 6}), k({2, 3, 6}), v({2, 3, 6});
  const char* fwd = "rev::ops::multi_head_attention";
  auto call = [&](const Tensor<float>& a, const Tensor<float>& b, const Tensor<float>& c, int heads, double scale = 0) {
    return ops::multi_head_attention(a, b, c, heads, nullptr, scale);
  };
  CHECK_THROWS_WITH_AS(call(q, k, v, 0), (std::string(fwd) + ": heads must be >= 1, got 0").c_str(), value_error);
  CHECK_THROWS_WITH_AS(call(q, k, v, 2, NAN), (std::string(fwd) + ": scale must be finite, got nan").c_str(),
                       value_error);
  CHECK_THROWS_WITH_AS(call(Tensor<float>({4, 6}), k, v, 2),
                       (std::string(fwd) + ": q has rank 2 (extents [4, 6]), expected rank 3").c_str(), shape_error);
  CHECK_THROWS_WITH_AS(call(q, Tensor<float>({3, 6}), v, 2),
                       (std::string(fwd) + ": k has rank 2 (extents [3, 6]), expected rank 3").c_str(), shape_error);
  CHECK_THROWS_WITH_AS(call(q, k, Tensor<float>({3, 6}), 2),
                       (std::string(fwd) + ": v has rank 2 (extents [3, 6]), expected rank 3").c_str(), shape_error);
  CHECK_THROWS_WITH_AS(
      call(q, Tensor<float>({2, 3, 8}), v, 2),
      (std::string(fwd) + ": k has extents [2, 3, 8], expected [2, Nk, 6] to match q [2, 4, 6]").c_str(), shape_error);
  CHECK_THROWS_WITH_AS(
      call(q, Tensor<float>({1, 3, 6}), v, 2),
      (std::string(fwd) + ": k has extents [1, 3, 6], expected [2, Nk, 6] to match q [2, 4, 6]").c_str(), shape_error);
  CHECK_THROWS_WITH_AS(call(q, Tensor<float>({2, 0, 6}), Tensor<float>({2, 0, 6}), 2),
                       (std::string(fwd) + ": k has extents [2, 0, 6], expected at least one token").c_str(),
                       shape_error);
  CHECK_THROWS_WITH_AS(
      call(q, k, Tensor<float>({2, 4, 6}), 2),
      (std::string(fwd) + ": v has extents [2, 4, 6], expected [2, 3, Dv] to match k [2, 3, 6]").c_str(), shape_error);
  CHECK_THROWS_WITH_AS(call(q, k, v, 4),
                       (std::string(fwd) + ": widths 6 (q, k) and 6 (v) must be divisible by heads = 4").c_str(),
                       shape_error);
  CHECK_THROWS_WITH_AS(call(q, k, Tensor<float>({2, 3, 5}), 3),
                       (std::string(fwd) + ": widths 6 (q, k) and 5 (v) must be divisible by heads = 3").c_str(),
                       shape_error);

  ops::attention_cache<float> cache;
  Tensor<float> out = ops::multi_head_attention(q, k, v, 2, &cache);
  CHECK(cache.probs.shape() == Shape{2, 2, 4, 3});
  CHECK_THROWS_WITH_AS(ops::multi_head_attention_backward(q, k, v, 2, cache, Tensor<float>({2, 4, 5})),
                       "rev::ops::multi_head_attention_backward: dout has extents [2, 4, 5], expected [2, 4, 6]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::multi_head_attention_backward(q, k, v, 3, cache, out),
                       "rev::ops::multi_head_attention_backward: cache.probs has extents [2, 2, 4, 3], expected [2, 3, "
                       "4, 3]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::multi_head_attention_backward(q, k, v, 0, cache, out),
                       "rev::ops::multi_head_attention_backward: heads must be >= 1, got 0", value_error);
  CHECK_THROWS_AS(ops::multi_head_attention_backward(q, Tensor<float>({2, 3, 4}), v, 2, cache, out), shape_error);
  // Zero samples or queries are fine.
  CHECK(call(Tensor<float>({0, 4, 6}), Tensor<float>({0, 3, 6}), Tensor<float>({0, 3, 6}), 2).shape() ==
        Shape{0, 4, 6});
  CHECK(call(Tensor<float>({2, 0, 6}), k, v, 2).shape() == Shape{2, 0, 6});
}

namespace {

template <int Dim, int Heads>
void check_layer_against_torch(int i) {
  auto ref = test::torch_reference("attention");
  // Not "l" + std::to_string(i): GCC 12 reports a false -Wrestrict on that.
  const std::string key = std::string("l").append(std::to_string(i)).append(".");
  INFO("layer case ", i, " Dim ", Dim, " Heads ", Heads);
  REQUIRE(ref.tensor<double>(key + "meta").data()[0] == Dim);
  REQUIRE(ref.tensor<double>(key + "meta").data()[1] == Heads);
  nn::MultiHeadAttention<Dim, Heads, double> layer;
  nn::MultiHeadAttention<Dim, Heads, float> layer_f;
  layer.for_each_parameter(
      [&](const std::string& name, Param<double>& p) { p.value = ref.tensor<double>(key + name); });
  layer_f.for_each_parameter(
      [&](const std::string& name, Param<float>& p) { p.value = ref.tensor<float>(key + name); });
  auto x = ref.tensor<double>(key + "x"), dout = ref.tensor<double>(key + "dout");
  context ctx;
  typename decltype(layer)::cache c;
  CHECK(test::max_rel_error(layer.forward(x, ctx, c), ref.tensor<double>(key + "y")) < 1e-13);
  zero_grad(layer);
  CHECK(test::max_rel_error(layer.backward(c, dout), ref.tensor<double>(key + "dx")) < 1e-12);
  layer.for_each_parameter([&](const std::string& name, Param<double>& p) {
    INFO(name);
    CHECK(test::max_rel_error(p.grad, ref.tensor<double>(key + "grad." + name)) < 1e-12);
  });
  typename decltype(layer_f)::cache cf;
  CHECK(test::max_rel_error(layer_f.forward(ops::cast<float>(x), ctx, cf), ref.tensor<double>(key + "y")) < 1e-5);
  zero_grad(layer_f);
  CHECK(test::max_rel_error(layer_f.backward(cf, ops::cast<float>(dout)), ref.tensor<double>(key + "dx")) < 1e-5);
  layer_f.for_each_parameter([&](const std::string& name, Param<float>& p) {
    INFO(name);
    // The k-bias gradient is zero up to rounding (revvit.md §1.4): compare it absolutely.
    if (name == "qkv.bias") CHECK(test::max_abs_error(p.grad, ref.tensor<double>(key + "grad." + name)) < 1e-5);
    else CHECK(test::max_rel_error(p.grad, ref.tensor<double>(key + "grad." + name)) < 1e-5);
  });
}

}  // namespace

TEST_CASE("MultiHeadAttention layer: forward and gradients equal PyTorch's (timm's Attention)") {
  check_layer_against_torch<12, 3>(0);
  check_layer_against_torch<4, 1>(1);
  check_layer_against_torch<8, 2>(2);
}

TEST_CASE("MultiHeadAttention layer: parameter names, finite differences, shape errors") {
  Generator g(8);
  nn::MultiHeadAttention<6, 2, double> layer(g);
  std::vector<std::string> names;
  layer.for_each_parameter([&](const std::string& n, Param<double>& p) { names.push_back(n + " " + p.shape().str()); },
                           "blocks.0.F.attn");
  CHECK(names == std::vector<std::string>{"blocks.0.F.attn.qkv.weight [18, 6]", "blocks.0.F.attn.qkv.bias [18]",
                                          "blocks.0.F.attn.proj.weight [6, 6]", "blocks.0.F.attn.proj.bias [6]"});
  CHECK(parameter_count(layer) == 18 * 6 + 18 + 36 + 6);
  static_assert(Layer<nn::MultiHeadAttention<6, 2>>);

  auto r = testing::check_gradients(layer, test::random({2, 3, 6}, 52, -2, 2));
  CHECK_MESSAGE(r.ok(), r.str());
  r = testing::check_gradients(layer, test::random({1, 1, 6}, 53));
  CHECK_MESSAGE(r.ok(), r.str());

  context ctx;
  CHECK_THROWS_WITH_AS(layer.forward(Tensor<double>({2, 3, 5}), ctx),
                       "rev::nn::MultiHeadAttention<6,2>: input has extents [2, 3, 5], expected [B, N, 6]",
                       shape_error);
  CHECK_THROWS_WITH_AS(layer.forward(Tensor<double>({3, 6}), ctx),
                       "rev::nn::MultiHeadAttention<6,2>: input has extents [3, 6], expected [B, N, 6]", shape_error);
}
