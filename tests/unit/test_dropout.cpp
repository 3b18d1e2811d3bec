#include <cmath>
#include <string>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/dropout.hpp"

using namespace rev;

namespace {

// The definitions, one element at a time, with philox::uniform.
template <class T>
Tensor<T> naive_dropout(const Tensor<T>& x, double p, const rng_state& s) {
  Tensor<T> y(x.shape());
  for (index_t i = 0; i < x.numel(); ++i)
    y.data()[i] =
        philox::uniform(s, static_cast<std::uint64_t>(i)) >= p ? x.data()[i] * static_cast<T>(1 / (1 - p)) : T(0);
  return y;
}

template <class T>
Tensor<T> naive_drop_path(const Tensor<T>& x, double p, const rng_state& s) {
  Tensor<T> y(x.shape());
  const index_t per = x.numel() / x.size(0);
  for (index_t i = 0; i < x.numel(); ++i)
    y.data()[i] =
        philox::uniform(s, static_cast<std::uint64_t>(i / per)) >= p ? x.data()[i] * static_cast<T>(1 / (1 - p)) : T(0);
  return y;
}

index_t count_zeros(const Tensor<float>& t) {
  index_t z = 0;
  for (float v : t) z += v == 0;
  return z;
}

bool bit_identical(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

TEST_CASE("dropout and drop_path: forward equals the definition, any stream offset") {
  for (std::uint64_t offset : {0, 1, 2, 3, 4, 7}) {
    const rng_state s{0xabcdef12345ull, offset};
    INFO("offset ", offset);
    for (Shape shape : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{3}, Shape{5, 100, 101}}) {
      INFO("extents ", shape);
      auto x = test::random<float>(shape, 61);
      for (double p : {0.0, 0.1, 0.5, 0.95}) {
        CHECK(bit_identical(ops::dropout(x, p, s), naive_dropout(x, p, s)));
        CHECK(bit_identical(ops::dropout_backward(x, p, s), naive_dropout(x, p, s)));
        CHECK(bit_identical(ops::drop_path(x, p, s), naive_drop_path(x, p, s)));
        CHECK(bit_identical(ops::drop_path_backward(x, p, s), naive_drop_path(x, p, s)));
      }
    }
  }
}

TEST_CASE("dropout and drop_path: forward and backward equal PyTorch's with the same uniforms") {
  auto ref = test::torch_reference("dropout");
  // The generator first: an independent Python Philox gives the same numbers.
  auto u = ref.tensor<double>("philox.uniforms");
  for (std::uint64_t i = 0; i < 9; ++i) {
    CHECK(philox::uniform({0, 0}, i) == u.data()[i]);
    CHECK(philox::uniform({(std::uint64_t{1} << 40) + 5, 6}, i) == u.data()[9 + i]);
  }
  for (const char* kind : {"dropout", "drop_path"}) {
    const bool path = std::string(kind) == "drop_path";
    for (int i = 0; i < (path ? 3 : 4); ++i) {
      const std::string key = std::string(kind) + "." + std::to_string(i) + ".";
      auto meta = ref.tensor<double>(key + "meta");
      const double p = meta.data()[0];
      const rng_state s{static_cast<std::uint64_t>(meta.data()[1]), static_cast<std::uint64_t>(meta.data()[2])};
      INFO(key, " p ", p);
      auto x = ref.tensor<double>(key + "x"), dout = ref.tensor<double>(key + "dout");
      auto y = path ? ops::drop_path(x, p, s) : ops::dropout(x, p, s);
      auto dx = path ? ops::drop_path_backward(dout, p, s) : ops::dropout_backward(dout, p, s);
      CHECK(test::max_rel_error(y, ref.tensor<double>(key + "y")) < 1e-15);
      CHECK(test::max_rel_error(dx, ref.tensor<double>(key + "dx")) < 1e-15);
      auto yf = path ? ops::drop_path(ops::cast<float>(x), p, s) : ops::dropout(ops::cast<float>(x), p, s);
      CHECK(test::max_rel_error(yf, ref.tensor<double>(key + "y")) < 1e-6);
    }
  }
}

TEST_CASE("Dropout and DropPath layers: backward equals finite differences") {
  auto x = test::random({4, 3, 5}, 62);
  nn::Dropout<double> drop(0.3);
  auto r = testing::check_gradients(drop, x);
  CHECK_MESSAGE(r.ok(), r.str());
  nn::DropPath<double> path(0.4);
  r = testing::check_gradients(path, x);
  CHECK_MESSAGE(r.ok(), r.str());
  testing::gradient_check_options eval;
  eval.mode = phase::eval;
  r = testing::check_gradients(drop, x, eval);
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("Dropout: the recompute phase replays the train phase's mask bit for bit") {
  auto x = test::random<float>({2, 8, 16, 16}, 63);
  Generator gen(99);
  context train{phase::train, &gen}, recompute{phase::recompute, &gen}, eval{phase::eval, &gen};
  nn::Dropout<float> drop(0.25);

  const rng_state before = gen.state();
  auto y1 = drop.forward(x, train);
  const rng_state after_train = gen.state();
  // The generator advances only in the train phase, by whole Philox blocks.
  CHECK(after_train.offset == before.offset + static_cast<std::uint64_t>(x.numel()));
  CHECK(drop.state() == before);
  auto y1r = drop.forward(x, recompute);
  CHECK(gen.state() == after_train);
  CHECK(bit_identical(y1, y1r));
  auto ye = drop.forward(x, eval);
  CHECK(gen.state() == after_train);
  CHECK(bit_identical(ye, x));
  CHECK_FALSE(ye.shares_buffer_with(x));

  // A second train forward draws a new mask; the recompute phase then replays that one.
  typename nn::Dropout<float>::cache c2;
  auto y2 = drop.forward(x, train, c2);
  CHECK_FALSE(bit_identical(y1, y2));
  CHECK(c2.state == after_train);
  CHECK(bit_identical(drop.forward(x, recompute), y2));

  // Odd counts reserve whole blocks of 4.
  auto odd = test::random<float>({3, 5}, 64);
  const rng_state s0 = gen.state();
  drop.forward(odd, train);
  CHECK(gen.state().offset == s0.offset + 16);
}

TEST_CASE("Dropout: the backward uses the forward's mask, also after later draws") {
  auto x = test::random<float>({4, 1000}, 65, 0.5, 1.5);  // no zeros in x
  Generator gen(5);
  context train{phase::train, &gen};
  nn::Dropout<float> drop(0.4);
  typename nn::Dropout<float>::cache c;
  auto y = drop.forward(x, train, c);
  drop.forward(x, train);  // the layer's kept state moves on; the cache keeps its own
  auto dx = drop.backward(c, Tensor<float>::full(x.shape(), 1.f));
  const float scale = static_cast<float>(1 / 0.6);
  index_t mismatches = 0, kept = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    const bool k = y.data()[i] != 0;
    kept += k;
    mismatches += dx.data()[i] != (k ? scale : 0.f) || (k && y.data()[i] != x.data()[i] * scale);
  }
  CHECK(mismatches == 0);
  CHECK(kept > 0);
  CHECK(kept < x.numel());
}

TEST_CASE("Dropout and DropPath: the fraction dropped is close to p") {
  Generator gen(11);
  context train{phase::train, &gen};
  auto x = Tensor<float>::full({1 << 20}, 1.f);
  for (double p : {0.1, 0.3, 0.7}) {
    INFO("p ", p);
    nn::Dropout<float> drop(p);
    const double frac = static_cast<double>(count_zeros(drop.forward(x, train))) / static_cast<double>(x.numel());
    CHECK(std::abs(frac - p) < 3e-3);  // 6 standard deviations at n = 2^20
  }
  // DropPath: whole samples, each dropped with probability p.
  auto xs = Tensor<float>::full({20000, 3}, 1.f);
  nn::DropPath<float> path(0.3);
  auto y = path.forward(xs, train);
  index_t dropped = 0, partial = 0;
  for (index_t n = 0; n < 20000; ++n) {
    const bool z = y(n, 0) == 0;
    partial += z != (y(n, 1) == 0) || z != (y(n, 2) == 0);
    dropped += z;
  }
  CHECK(partial == 0);
  CHECK(std::abs(static_cast<double>(dropped) / 20000 - 0.3) < 0.02);
}

TEST_CASE("DropPath: replay, per-sample masks, shared state, identity cases") {
  auto x = test::random<float>({16, 4, 3, 3}, 66, 0.5, 1.5);
  Generator gen(21);
  context train{phase::train, &gen}, recompute{phase::recompute, &gen}, eval{phase::eval, &gen};
  nn::DropPath<float> f(0.5), g(0.5);
  const rng_state before = gen.state();
  auto y = f.forward(x, train);
  CHECK(gen.state().offset == before.offset + 16);  // one number per sample
  CHECK(bit_identical(f.forward(x, recompute), y));
  auto y2 = f.forward(x, train);
  CHECK_FALSE(bit_identical(y, y2));
  // g replays f's mask (SlowFast's shared drop-path mask of a block's F and G).
  g.set_state(f.state(), 16);
  CHECK(bit_identical(g.forward(x, recompute), y2));
  // eval and p = 0 are the identity and draw nothing.
  const rng_state s = gen.state();
  CHECK(bit_identical(f.forward(x, eval), x));
  nn::DropPath<float> none(0.0);
  nn::Dropout<float> none_d(0.0);
  CHECK(bit_identical(none.forward(x, train), x));
  CHECK(bit_identical(none_d.forward(x, train), x));
  CHECK(bit_identical(none_d.forward(x, recompute), x));
  CHECK(gen.state() == s);
  typename nn::DropPath<float>::cache c;
  none.forward(x, train, c);
  CHECK(bit_identical(none.backward(c, x), x));
}

TEST_CASE("dropout and drop_path: bad inputs raise errors that name the op or layer") {
  Tensor<float> x({2, 3});
  const rng_state s{1, 0};
  CHECK_THROWS_WITH_AS(ops::dropout(x, 1.0, s), "rev::ops::dropout: p must be in [0, 1), got 1", value_error);
  CHECK_THROWS_WITH_AS(ops::dropout(x, -0.1, s), "rev::ops::dropout: p must be in [0, 1), got -0.1", value_error);
  CHECK_THROWS_WITH_AS(ops::dropout_backward(x, NAN, s), "rev::ops::dropout_backward: p must be in [0, 1), got nan",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::drop_path(x, 2.0, s), "rev::ops::drop_path: p must be in [0, 1), got 2", value_error);
  CHECK_THROWS_WITH_AS(ops::drop_path_backward(x, 1.0, s), "rev::ops::drop_path_backward: p must be in [0, 1), got 1",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::drop_path(Tensor<float>(), 0.5, s),
                       "rev::ops::drop_path: input has rank 0, expected [N, ...]", shape_error);
  CHECK_THROWS_WITH_AS(nn::Dropout<float>(1.0), "rev::nn::Dropout: p must be in [0, 1), got 1", value_error);
  CHECK_THROWS_WITH_AS(nn::DropPath<float>(-1), "rev::nn::DropPath: p must be in [0, 1), got -1", value_error);

  Generator gen(3);
  context train{phase::train, &gen}, recompute{phase::recompute, &gen};
  nn::Dropout<float> drop(0.5);
  CHECK_THROWS_WITH_AS(drop.forward(x, recompute),
                       "rev::nn::Dropout: recompute phase before any train-phase forward (no rng_state to replay)",
                       error);
  drop.forward(x, train);
  CHECK_THROWS_WITH_AS(drop.forward(Tensor<float>({3, 3}), recompute),
                       "rev::nn::Dropout: the recompute-phase input [3, 3] needs 9 random numbers, the train-phase "
                       "forward drew 6",
                       shape_error);
  nn::DropPath<float> path(0.5);
  path.forward(x, train);
  CHECK_THROWS_WITH_AS(path.forward(Tensor<float>({4, 3}), recompute),
                       "rev::nn::DropPath: the recompute-phase input [4, 3] needs 4 random numbers, the train-phase "
                       "forward drew 2",
                       shape_error);
}
