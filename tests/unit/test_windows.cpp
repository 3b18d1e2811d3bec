// Window partition of token grids (ops/windows.hpp) and max pooling (ops/pool.hpp).
#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/pool.hpp"
#include "rev/ops/windows.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;

TEST_CASE("window_partition: windows in row-major order, zero padding; window_unpartition inverts it") {
  const index_t H = 5, W = 3, ws = 2, C = 2;  // 3 x 2 windows, padded to 6 x 4
  auto t = test::random({2, H * W, C}, 81);
  auto w = ops::window_partition(t, H, W, ws);
  CHECK(w.shape() == Shape{2 * 3 * 2, ws * ws, C});
  for (index_t b = 0; b < 2; ++b)
    for (index_t y = 0; y < 6; ++y)
      for (index_t x = 0; x < 4; ++x)
        for (index_t c = 0; c < C; ++c) {
          const double expected = y < H && x < W ? t(b, y * W + x, c) : 0.0;
          CHECK(w((b * 3 + y / ws) * 2 + x / ws, (y % ws) * ws + x % ws, c) == expected);
        }
  CHECK(test::max_abs_error(ops::window_unpartition(w, H, W, ws), t) == 0);
  // Each is the other's adjoint: <partition(t), u> = <t, unpartition(u)>.
  auto u = test::random(w.shape(), 82);
  CHECK(std::abs(ops::dot(w, u) - ops::dot(t, ops::window_unpartition(u, H, W, ws))) < 1e-13);
  // A window at least the grid: one padded window per sample.
  CHECK(ops::window_partition(t, H, W, 8).shape() == Shape{2, 64, C});
  CHECK_THROWS_WITH_AS(
      ops::window_partition(t, 4, 4, 2),
      "rev::ops::window_partition: input has extents [2, 15, 2], expected [B, 16, C] tokens of a 4 x 4 "
      "grid",
      shape_error);
  CHECK_THROWS_WITH_AS(ops::window_unpartition(w, H, W, 3),
                       "rev::ops::window_unpartition: input has extents [12, 4, 2], expected [B * 2, 9, C]: windows of "
                       "3 x 3 over a 5 x 3 grid",
                       shape_error);
  CHECK_THROWS_AS(ops::window_partition(t, H, W, 0), value_error);
}

TEST_CASE("max_pool2d: PyTorch's values with padding and ties; backward equals finite differences") {
  // PyTorch 1.13: F.max_pool2d([[1, 5, 2, 0], [3, 3, 9, 1], [0, 2, 2, 8]], 3, 2, 1) = [[5, 9], [3, 9]].
  Tensor<double> x({1, 1, 3, 4});
  const double v[12] = {1, 5, 2, 0, 3, 3, 9, 1, 0, 2, 2, 8};
  std::copy(v, v + 12, x.data());
  auto y = ops::max_pool2d(x, 3, 2, 1);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK((y(0, 0, 0, 0) == 5 && y(0, 0, 0, 1) == 9 && y(0, 0, 1, 0) == 3 && y(0, 0, 1, 1) == 9));
  // The first of tied maxima (the two 3s of the window at (1, 0)) takes the gradient; so does 9 twice.
  Tensor<double> dy({1, 1, 2, 2});
  dy.fill(1);
  auto dx = ops::max_pool2d_backward(x, dy, 3, 2, 1);
  const double expect[12] = {0, 1, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0};
  for (index_t i = 0; i < 12; ++i) CHECK(dx.data()[i] == expect[i]);
  for (const Shape& s : {Shape{2, 3, 6, 6}, Shape{1, 2, 5, 7}, Shape{1, 1, 1, 1}}) {
    INFO("extents ", s);
    auto r =
        testing::check_gradients([&](const std::vector<Tensor<double>>& in) { return ops::max_pool2d(in[0], 3, 2, 1); },
                                 [&](const std::vector<Tensor<double>>& in, const Tensor<double>& d) {
                                   return std::vector<Tensor<double>>{ops::max_pool2d_backward(in[0], d, 3, 2, 1)};
                                 },
                                 {test::random(s, 83)});
    CHECK_MESSAGE(r.ok(), r.str());
  }
  CHECK(ops::max_pool2d(test::random({1, 1, 6, 6}, 84), 3, 2, 1).shape() == Shape{1, 1, 3, 3});
  CHECK_THROWS_WITH_AS(
      ops::max_pool2d(x, 3, 2, 2),
      "rev::ops::max_pool2d: kernel 3, stride 2, padding 2: expected kernel >= 1, stride >= 1 and 0 <= "
      "padding <= kernel / 2",
      value_error);
  CHECK_THROWS_AS(ops::max_pool2d_backward(x, Tensor<double>({1, 1, 3, 2}), 3, 2, 1), shape_error);
}
