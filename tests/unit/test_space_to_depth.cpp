#include <string>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/space_to_depth.hpp"
#include "rev/testing/check_invertible.hpp"

using namespace rev;
using ops::s2d_order;

namespace {

// The definitions (revbifpn.md §3.2; torch.nn.functional.pixel_unshuffle), one element at a time.
template <class T>
Tensor<T> naive_s2d(const Tensor<T>& x, int b, s2d_order order) {
  const index_t C = x.size(1);
  Tensor<T> y({x.size(0), C * b * b, x.size(2) / b, x.size(3) / b});
  for (index_t n = 0; n < x.size(0); ++n)
    for (index_t c = 0; c < C; ++c)
      for (index_t h = 0; h < x.size(2); ++h)
        for (index_t w = 0; w < x.size(3); ++w) {
          const index_t i = h % b, j = w % b;
          const index_t oc = order == s2d_order::revbifpn ? (i * b + j) * C + c : c * b * b + i * b + j;
          y(n, oc, h / b, w / b) = x(n, c, h, w);
        }
  return y;
}

const char* name(s2d_order o) { return o == s2d_order::revbifpn ? "revbifpn" : "pixel_unshuffle"; }

}  // namespace

TEST_CASE("space_to_depth: forward equals the definition, depth_to_space inverts it exactly") {
  for (s2d_order order : {s2d_order::revbifpn, s2d_order::pixel_unshuffle}) {
    for (int b : {1, 2, 3, 4, 5}) {
      for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 4, 6}, Shape{1, 2, 5, 5}, Shape{1, 1, 20, 60}}) {
        if (s[2] % b || s[3] % b) continue;
        INFO(name(order), " block ", b, " extents ", s);
        auto x = test::random(s, 21);
        auto y = ops::space_to_depth(x, b, order);
        CHECK(test::max_abs_error(y, naive_s2d(x, b, order)) == 0);
        CHECK(test::max_abs_error(ops::depth_to_space(y, b, order), x) == 0);
      }
    }
  }
}

TEST_CASE("space_to_depth: the two orders differ as documented") {
  // One channel: both orders agree. Two channels, block 2: revbifpn puts channel 1's offset (0, 0)
  // at output channel 1, pixel_unshuffle at output channel 4.
  auto x = test::random({1, 2, 2, 2}, 22);
  auto r = ops::space_to_depth(x, 2, s2d_order::revbifpn), p = ops::space_to_depth(x, 2, s2d_order::pixel_unshuffle);
  CHECK(r(0, 1, 0, 0) == x(0, 1, 0, 0));
  CHECK(p(0, 4, 0, 0) == x(0, 1, 0, 0));
  CHECK(r(0, 2, 0, 0) == x(0, 0, 0, 1));
  CHECK(p(0, 1, 0, 0) == x(0, 0, 0, 1));
  auto one = test::random({1, 1, 4, 4}, 23);
  CHECK(test::max_abs_error(ops::space_to_depth(one, 4, s2d_order::revbifpn),
                            ops::space_to_depth(one, 4, s2d_order::pixel_unshuffle)) == 0);
}

TEST_CASE("space_to_depth: forward and backward equal PyTorch's") {
  auto ref = test::torch_reference("space_to_depth");
  for (int k = 0; k < 6; ++k) {
    const int b = static_cast<int>(ref.tensor<double>(std::to_string(k) + ".block").data()[0]);
    auto x = ref.tensor<double>(std::to_string(k) + ".x"), dout = ref.tensor<double>(std::to_string(k) + ".dout");
    for (s2d_order order : {s2d_order::revbifpn, s2d_order::pixel_unshuffle}) {
      const std::string key = std::string(name(order)) + "." + std::to_string(k) + ".";
      INFO(key, " block ", b);
      // A permutation: exact in both element types.
      CHECK(test::max_abs_error(ops::space_to_depth(x, b, order), ref.tensor<double>(key + "y")) == 0);
      CHECK(test::max_abs_error(ops::depth_to_space(dout, b, order), ref.tensor<double>(key + "dx")) == 0);
      CHECK(test::max_abs_error(ops::space_to_depth(ops::cast<float>(x), b, order), ref.tensor<float>(key + "y")) == 0);
      CHECK(test::max_abs_error(ops::depth_to_space(ops::cast<float>(dout), b, order), ref.tensor<float>(key + "dx")) ==
            0);
    }
  }
}

TEST_CASE("SpaceToDepth layer: finite differences, invertibility, reversible backward") {
  auto x = test::random({2, 3, 4, 8}, 24);
  {
    nn::SpaceToDepth<2, s2d_order::revbifpn, double> s2d;
    auto r = testing::check_gradients(s2d, x);
    CHECK_MESSAGE(r.ok(), r.str());
    auto inv = testing::check_invertible(s2d, x);
    CHECK_MESSAGE(inv.ok(0.0), inv.str());
    context ctx;
    auto y = s2d.forward(x, ctx);
    auto dy = test::random(y.shape(), 25);
    auto rec = s2d.backward_reversible(y, dy);
    typename decltype(s2d)::cache c;
    CHECK(test::max_abs_error(rec.x, x) == 0);
    CHECK(test::max_abs_error(rec.dx, s2d.backward(c, dy)) == 0);
    CHECK(test::max_abs_error(s2d.inverse(y), x) == 0);
  }
  {
    nn::SpaceToDepth<4, s2d_order::pixel_unshuffle, double> s2d;
    auto r = testing::check_gradients(s2d, x);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {  // PixelShuffle: PyTorch's order, the inverse of PixelUnshuffle
    nn::PixelShuffle<2, double> shuffle;
    auto d = test::random({2, 12, 3, 2}, 26);
    context ctx;
    auto y = shuffle.forward(d, ctx);
    REQUIRE(y.shape() == Shape{2, 3, 6, 4});
    CHECK(y(1, 2, 5, 3) == d(1, 2 * 4 + 1 * 2 + 1, 2, 1));
    CHECK(y(0, 1, 2, 1) == d(0, 1 * 4 + 0 * 2 + 1, 1, 0));
    CHECK(test::max_abs_error(ops::space_to_depth(y, 2, s2d_order::pixel_unshuffle), d) == 0);
    auto r = testing::check_gradients(shuffle, d);
    CHECK_MESSAGE(r.ok(), r.str());
    auto inv = testing::check_invertible(shuffle, d);
    CHECK_MESSAGE(inv.ok(0.0), inv.str());
  }
  static_assert(Coupling<nn::PixelShuffle<4>>);
  static_assert(Coupling<nn::SpaceToDepth<4, s2d_order::revbifpn>>);
  static_assert(Layer<nn::SpaceToDepth<4, s2d_order::revbifpn>>);
}

TEST_CASE("space_to_depth: float on a large map, split across tasks") {
  auto x = test::random<float>({2, 3, 224, 224}, 26);
  for (int b : {2, 4, 7}) {
    for (s2d_order order : {s2d_order::revbifpn, s2d_order::pixel_unshuffle}) {
      INFO(name(order), " block ", b);
      auto y = ops::space_to_depth(x, b, order);
      CHECK(test::max_abs_error(y, naive_s2d(x, b, order)) == 0);
      CHECK(test::max_abs_error(ops::depth_to_space(y, b, order), x) == 0);
    }
  }
}

TEST_CASE("space_to_depth: bad inputs raise errors that name the op") {
  Tensor<float> x({1, 2, 6, 8}), x3({2, 6, 8});
  CHECK_THROWS_WITH_AS(ops::space_to_depth(x, 4, s2d_order::revbifpn),
                       "rev::ops::space_to_depth: input has extents [1, 2, 6, 8], expected H and W divisible by the "
                       "block 4",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::space_to_depth(x3, 2, s2d_order::revbifpn),
                       "rev::ops::space_to_depth: input has rank 3 (extents [2, 6, 8]), expected rank 4", shape_error);
  CHECK_THROWS_WITH_AS(ops::space_to_depth(x, 0, s2d_order::pixel_unshuffle),
                       "rev::ops::space_to_depth: block must be >= 1, got 0", value_error);
  CHECK_THROWS_WITH_AS(ops::depth_to_space(x, 2, s2d_order::revbifpn),
                       "rev::ops::depth_to_space: input has extents [1, 2, 6, 8], expected channels divisible by 4 "
                       "(block 2 squared)",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::depth_to_space(x3, 2, s2d_order::revbifpn),
                       "rev::ops::depth_to_space: input has rank 3 (extents [2, 6, 8]), expected rank 4", shape_error);
  CHECK_THROWS_WITH_AS(ops::depth_to_space(x, -1, s2d_order::revbifpn),
                       "rev::ops::depth_to_space: block must be >= 1, got -1", value_error);
  nn::SpaceToDepth<4, s2d_order::revbifpn> s2d;
  context ctx;
  CHECK_THROWS_AS(s2d.forward(x, ctx), shape_error);
  CHECK(ops::space_to_depth(Tensor<float>({0, 2, 4, 4}), 2, s2d_order::revbifpn).shape() == Shape{0, 8, 2, 2});
}
