#include <algorithm>
#include <cmath>
#include <string>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/resample.hpp"

using namespace rev;

namespace {

// Bilinear up-sampling straight from the definition (revbifpn.md §5.2), one output at a time.
Tensor<double> naive_bilinear(const Tensor<double>& x, int f) {
  const index_t H = x.size(2), W = x.size(3);
  Tensor<double> y({x.size(0), x.size(1), H * f, W * f});
  auto tap = [f](index_t o, index_t in, index_t& i0, index_t& i1, double& w) {
    const double u = std::max((o + 0.5) / f - 0.5, 0.0);
    i0 = static_cast<index_t>(std::floor(u));
    i1 = std::min(i0 + 1, in - 1);
    w = u - static_cast<double>(i0);
  };
  for (index_t n = 0; n < x.size(0); ++n)
    for (index_t c = 0; c < x.size(1); ++c)
      for (index_t oh = 0; oh < H * f; ++oh)
        for (index_t ow = 0; ow < W * f; ++ow) {
          index_t h0, h1, w0, w1;
          double a, b;
          tap(oh, H, h0, h1, a);
          tap(ow, W, w0, w1, b);
          y(n, c, oh, ow) = (1 - a) * ((1 - b) * x(n, c, h0, w0) + b * x(n, c, h0, w1)) +
                            a * ((1 - b) * x(n, c, h1, w0) + b * x(n, c, h1, w1));
        }
  return y;
}

Tensor<double> naive_nearest(const Tensor<double>& x, int f) {
  Tensor<double> y({x.size(0), x.size(1), x.size(2) * f, x.size(3) * f});
  for (index_t n = 0; n < y.size(0); ++n)
    for (index_t c = 0; c < y.size(1); ++c)
      for (index_t h = 0; h < y.size(2); ++h)
        for (index_t w = 0; w < y.size(3); ++w) y(n, c, h, w) = x(n, c, h / f, w / f);
  return y;
}

template <class Up, class Down>
void check_against_torch(const char* mode, int cases, Up up, Down down) {
  auto ref = test::torch_reference("resample");
  for (int i = 0; i < cases; ++i) {
    const std::string key = std::string(mode) + "." + std::to_string(i) + ".";
    const int f = static_cast<int>(ref.tensor<double>(key + "factor").data()[0]);
    INFO(key, " factor ", f);
    auto x = ref.tensor<double>(key + "x"), dout = ref.tensor<double>(key + "dout");
    auto y_ref = ref.tensor<double>(key + "y"), dx_ref = ref.tensor<double>(key + "dx");
    CHECK(test::max_rel_error(up(x, f), y_ref) < 1e-13);
    CHECK(test::max_rel_error(down(dout, f), dx_ref) < 1e-13);
    auto xf = ops::cast<float>(x), doutf = ops::cast<float>(dout);
    CHECK(test::max_rel_error(up(xf, f), y_ref) < 1e-6);
    CHECK(test::max_rel_error(down(doutf, f), dx_ref) < 1e-5);
  }
}

}  // namespace

TEST_CASE("upsample_bilinear: forward equals the definition") {
  for (int f : {1, 2, 3, 4, 8}) {
    for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{1, 2, 4, 1}, Shape{1, 1, 3, 6}}) {
      INFO("factor ", f, " extents ", s);
      auto x = test::random(s, 3);
      CHECK(test::max_abs_error(ops::upsample_bilinear(x, f), naive_bilinear(x, f)) < 1e-14);
    }
  }
}

TEST_CASE("upsample_nearest: forward equals the definition") {
  for (int f : {1, 2, 3, 8}) {
    for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{1, 2, 4, 1}}) {
      INFO("factor ", f, " extents ", s);
      auto x = test::random(s, 4);
      CHECK(test::max_abs_error(ops::upsample_nearest(x, f), naive_nearest(x, f)) == 0);
    }
  }
}

TEST_CASE("upsampling: forward and backward equal PyTorch's") {
  check_against_torch(
      "bilinear", 7, [](const auto& x, int f) { return ops::upsample_bilinear(x, f); },
      [](const auto& dy, int f) { return ops::upsample_bilinear_backward(dy, f); });
  check_against_torch(
      "nearest", 4, [](const auto& x, int f) { return ops::upsample_nearest(x, f); },
      [](const auto& dy, int f) { return ops::upsample_nearest_backward(dy, f); });
  check_against_torch(
      "aligned", 5, [](const auto& x, int f) { return ops::upsample_bilinear_aligned(x, f); },
      [](const auto& dy, int f) { return ops::upsample_bilinear_aligned_backward(dy, f); });
}

TEST_CASE("upsampling layers: backward equals finite differences") {
  auto x = test::random({2, 2, 3, 5}, 5);
  auto one = test::random({1, 1, 1, 1}, 6);
  {
    nn::UpsampleBilinear<2, double> up;
    auto r = testing::check_gradients(up, x);
    CHECK_MESSAGE(r.ok(), r.str());
    r = testing::check_gradients(up, one);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::UpsampleBilinear<3, double> up;
    auto r = testing::check_gradients(up, x);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::UpsampleNearest<2, double> up;
    auto r = testing::check_gradients(up, x);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::UpsampleNearest<3, double> up;
    auto r = testing::check_gradients(up, one);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::UpsampleBilinearAligned<2, double> up;
    auto r = testing::check_gradients(up, x);
    CHECK_MESSAGE(r.ok(), r.str());
    r = testing::check_gradients(up, one);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    nn::UpsampleBilinearAligned<3, double> up;
    auto r = testing::check_gradients(up, x);
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("upsampling: float on large maps, many threads, backward is the adjoint") {
  // <up(x), g> = <x, up_backward(g)> on maps big enough to be split across tasks.
  auto x = test::random<float>({2, 24, 33, 40}, 8);
  for (int f : {2, 4}) {
    INFO("factor ", f);
    auto g = test::random<float>({2, 24, 33 * f, 40 * f}, 9);
    auto y = ops::upsample_bilinear(x, f);
    CHECK(test::max_abs_error(y, naive_bilinear(ops::cast<double>(x), f)) < 1e-6);
    const double lhs = ops::dot(y, g), rhs = ops::dot(x, ops::upsample_bilinear_backward(g, f));
    CHECK(std::abs(lhs - rhs) < 1e-4 * std::abs(lhs) + 1e-3);
    auto yn = ops::upsample_nearest(x, f);
    CHECK(test::max_abs_error(yn, naive_nearest(ops::cast<double>(x), f)) == 0);
    const double ln = ops::dot(yn, g), rn = ops::dot(x, ops::upsample_nearest_backward(g, f));
    CHECK(std::abs(ln - rn) < 1e-4 * std::abs(ln) + 1e-3);
    auto ya = ops::upsample_bilinear_aligned(x, f);
    const double la = ops::dot(ya, g), ra = ops::dot(x, ops::upsample_bilinear_aligned_backward(g, f));
    CHECK(std::abs(la - ra) < 1e-4 * std::abs(la) + 1e-3);
  }
}

TEST_CASE("upsampling: zero-sized batch gives zero-sized outputs") {
  Tensor<float> x({0, 3, 4, 4});
  CHECK(ops::upsample_bilinear(x, 2).shape() == Shape{0, 3, 8, 8});
  CHECK(ops::upsample_nearest_backward(Tensor<float>({0, 3, 8, 8}), 2).shape() == Shape{0, 3, 4, 4});
}

TEST_CASE("upsampling: bad inputs raise errors that name the op") {
  Tensor<float> x3({2, 3, 4}), x({1, 2, 4, 6});
  CHECK_THROWS_WITH_AS(ops::upsample_bilinear(x3, 2),
                       "rev::ops::upsample_bilinear: input has rank 3 (extents [2, 3, 4]), expected rank 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::upsample_nearest(x3, 2),
                       "rev::ops::upsample_nearest: input has rank 3 (extents [2, 3, 4]), expected rank 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::upsample_bilinear(x, 0), "rev::ops::upsample_bilinear: factor must be >= 1, got 0",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::upsample_nearest(x, -2), "rev::ops::upsample_nearest: factor must be >= 1, got -2",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::upsample_bilinear_backward(x, 4),
                       "rev::ops::upsample_bilinear_backward: gradient has extents [1, 2, 4, 6], expected H and W "
                       "divisible by the factor 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::upsample_nearest_backward(x, 3),
                       "rev::ops::upsample_nearest_backward: gradient has extents [1, 2, 4, 6], expected H and W "
                       "divisible by the factor 3",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::upsample_bilinear_backward(x3, 2),
                       "rev::ops::upsample_bilinear_backward: gradient has rank 3 (extents [2, 3, 4]), expected rank 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::upsample_nearest_backward(x, 0),
                       "rev::ops::upsample_nearest_backward: factor must be >= 1, got 0", value_error);
  CHECK_THROWS_WITH_AS(ops::upsample_bilinear_aligned(x3, 2),
                       "rev::ops::upsample_bilinear_aligned: input has rank 3 (extents [2, 3, 4]), expected rank 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::upsample_bilinear_aligned_backward(x, 4),
                       "rev::ops::upsample_bilinear_aligned_backward: gradient has extents [1, 2, 4, 6], expected H "
                       "and W divisible by the factor 4",
                       shape_error);
}
