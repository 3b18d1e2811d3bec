#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/pool.hpp"

using namespace rev;

TEST_CASE("global_avg_pool matches a naive mean") {
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{1, 1, 1, 1}, Shape{3, 5, 7, 1}, Shape{4, 33, 17, 19}}) {
    INFO("extents ", s);
    const auto x = test::random(s, 1, -2, 3);
    Tensor<double> ref({s[0], s[1], 1, 1});
    for (index_t n = 0; n < s[0]; ++n)
      for (index_t c = 0; c < s[1]; ++c) {
        double sum = 0;
        for (index_t h = 0; h < s[2]; ++h)
          for (index_t w = 0; w < s[3]; ++w) sum += x(n, c, h, w);
        ref(n, c, 0, 0) = sum / static_cast<double>(s[2] * s[3]);
      }
    CHECK(test::max_rel_error(ops::global_avg_pool(x), ref) < 1e-14);
    CHECK(test::max_rel_error(ops::global_avg_pool(ops::cast<float>(x)), ref) < 1e-6);
  }
}

TEST_CASE("global-average-pool backward equals finite differences") {
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{1, 1, 1, 1}, Shape{3, 2, 1, 6}}) {
    INFO("extents ", s);
    nn::GlobalAvgPool<double> pool;
    const auto r = testing::check_gradients(pool, test::random(s, 2));
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("GlobalAvgPool equals PyTorch's AdaptiveAvgPool2d(1)") {
  const auto ref = test::torch_reference("pool");
  for (std::string name : {"a", "b", "c"}) {
    INFO(name);
    const std::string p = name + ".";
    nn::GlobalAvgPool<double> pool;
    nn::GlobalAvgPool<double>::cache c;
    context ctx;
    CHECK(test::max_rel_error(pool.forward(ref.tensor<double>(p + "x"), ctx, c), ref.tensor<double>(p + "y")) < 1e-14);
    CHECK(test::max_rel_error(pool.backward(c, ref.tensor<double>(p + "dout")), ref.tensor<double>(p + "dx")) < 1e-14);
    nn::GlobalAvgPool<float> poolf;
    nn::GlobalAvgPool<float>::cache cf;
    CHECK(test::max_rel_error(poolf.forward(ref.tensor<float>(p + "x"), ctx, cf), ref.tensor<double>(p + "y")) < 1e-6);
    CHECK(test::max_rel_error(poolf.backward(cf, ref.tensor<float>(p + "dout")), ref.tensor<double>(p + "dx")) < 1e-6);
  }
}

TEST_CASE("global-average-pool errors") {
  CHECK_THROWS_WITH_AS(ops::global_avg_pool(Tensor<float>({2, 3, 4})),
                       "rev::ops::global_avg_pool: input has rank 3 (extents [2, 3, 4]), expected rank 4 [N, C, H, W]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::global_avg_pool(Tensor<float>({2, 3, 0, 4})),
                       "rev::ops::global_avg_pool: input has extents [2, 3, 0, 4], expected H * W > 0", shape_error);
  CHECK_THROWS_WITH_AS(ops::global_avg_pool_backward(Shape{2, 3, 4, 4}, Tensor<float>({2, 3})),
                       "rev::ops::global_avg_pool_backward: dy has extents [2, 3], expected [2, 3, 1, 1]", shape_error);
  CHECK_THROWS_WITH_AS(ops::global_avg_pool_backward(Shape{2, 3, 4}, Tensor<float>({2, 3, 1, 1})),
                       "rev::ops::global_avg_pool_backward: input has rank 3 (extents [2, 3, 4]), expected rank 4 "
                       "[N, C, H, W]",
                       shape_error);
  static_assert(Layer<nn::GlobalAvgPool<>>);
}

TEST_CASE("avg_pool2d matches a naive window mean and drops incomplete windows") {
  for (const auto& [s, k] : {std::pair{Shape{2, 3, 4, 6}, 2}, std::pair{Shape{1, 2, 7, 5}, 2},
                             std::pair{Shape{2, 1, 9, 9}, 3}, std::pair{Shape{1, 1, 3, 3}, 1}}) {
    INFO("extents ", s, " k ", k);
    const auto x = test::random(s, 3, -2, 3);
    const index_t Ho = s[2] / k, Wo = s[3] / k;
    Tensor<double> ref({s[0], s[1], Ho, Wo});
    for (index_t n = 0; n < s[0]; ++n)
      for (index_t c = 0; c < s[1]; ++c)
        for (index_t i = 0; i < Ho; ++i)
          for (index_t j = 0; j < Wo; ++j) {
            double sum = 0;
            for (int u = 0; u < k; ++u)
              for (int v = 0; v < k; ++v) sum += x(n, c, i * k + u, j * k + v);
            ref(n, c, i, j) = sum / (k * k);
          }
    CHECK(test::max_rel_error(ops::avg_pool2d(x, k), ref) < 1e-14);
    const auto r =
        testing::check_gradients([&](const std::vector<Tensor<double>>& in) { return ops::avg_pool2d(in[0], k); },
                                 [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
                                   return std::vector<Tensor<double>>{ops::avg_pool2d_backward(in[0].shape(), dy, k)};
                                 },
                                 {x});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("avg_pool2d errors") {
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(Tensor<float>({1, 2, 1, 4}), 2),
                       "rev::ops::avg_pool2d: input has extents [1, 2, 1, 4], smaller than the 2x2 window",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(Tensor<float>({1, 2, 4, 4}), 0),
                       "rev::ops::avg_pool2d: kernel 0 must be at least 1", value_error);
  CHECK_THROWS_WITH_AS(ops::avg_pool2d_backward(Shape{1, 2, 4, 4}, Tensor<float>({1, 2, 4, 4}), 2),
                       "rev::ops::avg_pool2d_backward: dy has extents [1, 2, 4, 4], expected [1, 2, 2, 2]",
                       shape_error);
}
