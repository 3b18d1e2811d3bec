// Decomposed relative positions (ops/rel_pos.hpp) and attention with a score bias.
#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/attention.hpp"
#include "rev/ops/rel_pos.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;

TEST_CASE("rel_pos_lookup: offsets of equal and unequal grids, tables resampled as F.interpolate") {
  // A table of the length 2 * max(q, k) - 1 is read as is: R[i, m] = table[i - m + k - 1] for q = k.
  Tensor<double> t5({5, 1});
  for (index_t i = 0; i < 5; ++i) t5(i, 0) = static_cast<double>(10 * i);
  auto r = ops::rel_pos_lookup(t5, 3, 3);
  CHECK(r.shape() == Shape{3, 3, 1});
  for (index_t i = 0; i < 3; ++i)
    for (index_t m = 0; m < 3; ++m) CHECK(r(i, m, 0) == static_cast<double>(10 * (i - m + 2)));
  // q = 2, k = 4 (keys twice as fine): offset(i, m) = 2 i - m + 3 over 7 rows.
  Tensor<double> t7({7, 1});
  for (index_t i = 0; i < 7; ++i) t7(i, 0) = static_cast<double>(i);
  r = ops::rel_pos_lookup(t7, 2, 4);
  for (index_t i = 0; i < 2; ++i)
    for (index_t m = 0; m < 4; ++m) CHECK(r(i, m, 0) == static_cast<double>(2 * i - m + 3));
  // q = 4, k = 2: offset(i, m) = i - 2 m + 2.
  r = ops::rel_pos_lookup(t7, 4, 2);
  for (index_t i = 0; i < 4; ++i)
    for (index_t m = 0; m < 2; ++m) CHECK(r(i, m, 0) == static_cast<double>(i - 2 * m + 2));
  // Resampled (PyTorch 1.13: F.interpolate([0, 1, 2], size=5, mode="linear") = [0, .4, 1, 1.6, 2];
  // [0, ..., 6] to 3: [2/3, 3, 16/3]).
  Tensor<double> t3({3, 1});
  for (index_t i = 0; i < 3; ++i) t3(i, 0) = static_cast<double>(i);
  r = ops::rel_pos_lookup(t3, 3, 3);
  const double up[5] = {0, 0.4, 1, 1.6, 2};
  for (index_t i = 0; i < 3; ++i)
    for (index_t m = 0; m < 3; ++m) CHECK(std::abs(r(i, m, 0) - up[i - m + 2]) < 1e-15);
  r = ops::rel_pos_lookup(t7, 2, 2);
  const double down[3] = {2.0 / 3, 3, 16.0 / 3};
  for (index_t i = 0; i < 2; ++i)
    for (index_t m = 0; m < 2; ++m) CHECK(std::abs(r(i, m, 0) - down[i - m + 1]) < 1e-15);
}

TEST_CASE("rel_pos_lookup and rel_pos_bias: backward equals finite differences") {
  struct cfg {
    index_t length, q, k;
  };
  for (cfg c : {cfg{7, 4, 2}, cfg{23, 8, 4}, cfg{5, 4, 4}, cfg{11, 2, 4}, cfg{3, 3, 3}}) {
    INFO("table ", c.length, " q ", c.q, " k ", c.k);
    auto r = testing::check_gradients(
        [&](const std::vector<Tensor<double>>& in) { return ops::rel_pos_lookup(in[0], c.q, c.k); },
        [&](const std::vector<Tensor<double>>&, const Tensor<double>& dy) {
          return std::vector<Tensor<double>>{ops::rel_pos_lookup_backward(dy, c.length)};
        },
        {test::random({c.length, 3}, 61)});
    CHECK_MESSAGE(r.ok(), r.str());
  }
  struct bcfg {
    index_t B, qh, qw, kh, kw, d;
  };
  for (bcfg c : {bcfg{2, 3, 2, 2, 4, 3}, bcfg{1, 1, 1, 1, 1, 1}, bcfg{3, 2, 2, 3, 3, 2}}) {
    INFO("B ", c.B, " q ", c.qh, "x", c.qw, " k ", c.kh, "x", c.kw);
    auto fwd = [&](const std::vector<Tensor<double>>& in) { return ops::rel_pos_bias(in[0], in[1], in[2]); };
    auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
      auto g = ops::rel_pos_bias_backward(in[0], in[1], in[2], dy);
      return std::vector<Tensor<double>>{g.dq, g.drh, g.drw};
    };
    auto q = test::random({c.B, c.qh * c.qw, c.d}, 62), rh = test::random({c.qh, c.kh, c.d}, 63),
         rw = test::random({c.qw, c.kw, c.d}, 64);
    auto r = testing::check_gradients(fwd, bwd, {q, rh, rw});
    CHECK_MESSAGE(r.ok(), r.str());
    // The definition: bias[b, (i, j), (m, n)] = <q, rh[i, m]> + <q, rw[j, n]>.
    auto bias = ops::rel_pos_bias(q, rh, rw);
    double worst = 0;
    for (index_t b = 0; b < c.B; ++b)
      for (index_t i = 0; i < c.qh; ++i)
        for (index_t j = 0; j < c.qw; ++j)
          for (index_t m = 0; m < c.kh; ++m)
            for (index_t n = 0; n < c.kw; ++n) {
              double s = 0;
              for (index_t e = 0; e < c.d; ++e) s += q(b, i * c.qw + j, e) * (rh(i, m, e) + rw(j, n, e));
              worst = std::max(worst, std::abs(s - bias(b, i * c.qw + j, m * c.kw + n)));
            }
    CHECK(worst < 1e-14);
  }
}

TEST_CASE("rel-pos ops: bad inputs name the op and the extents") {
  Tensor<float> q({2, 6, 4}), rh({2, 3, 4}), rw({3, 2, 4});
  CHECK_THROWS_WITH_AS(ops::rel_pos_bias(Tensor<float>({2, 5, 4}), rh, rw),
                       "rev::ops::rel_pos_bias: q has extents [2, 5, 4], expected [B, 2 * 3, 4] for rh [2, 3, 4] and "
                       "rw [3, 2, 4]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::rel_pos_bias(q, Tensor<float>({2, 3, 5}), rw),
                       "rev::ops::rel_pos_bias: rh [2, 3, 5] and rw [3, 2, 4] must have q's width 4", shape_error);
  CHECK_THROWS_AS(ops::rel_pos_bias_backward(q, rh, rw, Tensor<float>({2, 6, 5})), shape_error);
  CHECK_THROWS_WITH_AS(ops::rel_pos_lookup(Tensor<float>({0, 4}), 2, 2),
                       "rev::ops::rel_pos_lookup: the table has 0 rows, expected at least one", shape_error);
  CHECK_THROWS_AS(ops::rel_pos_lookup(Tensor<float>({3, 4}), 0, 2), value_error);
}

TEST_CASE("attention_with_bias: equals the definition; backward (dbias = dS) equals finite differences") {
  const int heads = 2;
  auto q = test::random({2, 3, 4}, 71, -2, 2), k = test::random({2, 5, 4}, 72, -2, 2), v = test::random({2, 5, 6}, 73);
  auto bias = test::random({2, heads, 3, 5}, 74, -2, 2);
  auto out = ops::attention_with_bias(q, k, v, heads, bias, nullptr, 0.7);
  double worst = 0;
  for (index_t b = 0; b < 2; ++b)
    for (index_t h = 0; h < heads; ++h)
      for (index_t i = 0; i < 3; ++i) {
        std::vector<double> p(5);
        double sum = 0;
        for (index_t j = 0; j < 5; ++j) {
          double s = bias(b, h, i, j);
          for (index_t e = 0; e < 2; ++e) s += 0.7 * q(b, i, h * 2 + e) * k(b, j, h * 2 + e);
          sum += (p[static_cast<std::size_t>(j)] = std::exp(s));
        }
        for (index_t e = 0; e < 3; ++e) {
          double o = 0;
          for (index_t j = 0; j < 5; ++j) o += p[static_cast<std::size_t>(j)] / sum * v(b, j, h * 3 + e);
          worst = std::max(worst, std::abs(o - out(b, i, h * 3 + e)));
        }
      }
  CHECK(worst < 1e-14);
  // A zero bias is plain attention.
  CHECK(test::max_abs_error(ops::attention_with_bias(q, k, v, heads, Tensor<double>(bias.shape())),
                            ops::multi_head_attention(q, k, v, heads)) < 1e-15);
  auto fwd = [&](const std::vector<Tensor<double>>& in) {
    return ops::attention_with_bias(in[0], in[1], in[2], heads, in[3], nullptr, 0.7);
  };
  auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    ops::attention_cache<double> cache;
    ops::attention_with_bias(in[0], in[1], in[2], heads, in[3], &cache, 0.7);
    auto g = ops::attention_with_bias_backward(in[0], in[1], in[2], heads, cache, dy, 0.7);
    return std::vector<Tensor<double>>{g.dq, g.dk, g.dv, g.dbias};
  };
  auto r = testing::check_gradients(fwd, bwd, {q, k, v, bias});
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK_THROWS_WITH_AS(ops::attention_with_bias(q, k, v, heads, Tensor<double>({2, 1, 3, 5})),
                       "rev::ops::attention_with_bias: bias has extents [2, 1, 3, 5], expected [2, 2, 3, 5]",
                       shape_error);
}
