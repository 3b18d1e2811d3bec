// The combinators that models are composed of: PerLevel, Cascade, Fork, TileChannels, PadChannels,
// AvgPool2d, Additive with a shortcut, numbered keys, and the last block of a reversible Chain.
#include "coupling_helpers.hpp"
#include "rev/additive.hpp"
#include "rev/core/named.hpp"
#include "rev/graph/cascade.hpp"
#include "rev/graph/fork.hpp"
#include "rev/graph/per_level.hpp"
#include "rev/graph/tap.hpp"
#include "rev/nn/pad_channels.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/tile_channels.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;
using test::ConvBlock;

namespace {

template <int C>
using Rev = Additive<ConvBlock<C / 2, C / 2, double>, ConvBlock<C / 2, C / 2, double>>;

// Stacks the tensors of a state into one vector and back (for the functional gradient check).
template <std::size_t N>
std::vector<Tensor<double>> as_vector(const Tensors<double, N>& t) {
  return {t.begin(), t.end()};
}
template <std::size_t N>
Tensors<double, N> as_state(const std::vector<Tensor<double>>& v) {
  Tensors<double, N> t;
  for (std::size_t i = 0; i < N; ++i) t[i] = v[i];
  return t;
}
double total(const Tensor<double>& t) {
  double s = 0;
  for (index_t i = 0; i < t.numel(); ++i) s += t.data()[i];
  return s;
}

}  // namespace

TEST_CASE("PerLevel: a coupling per level is a coupling; inverse and reversible backward match stored backward") {
  using Group = PerLevel<NamedAt<"rev_transform_", 0, Rev<4>>, NamedAt<"rev_transform_", 1, Rev<8>>>;
  static_assert(Coupling<Group>);
  static_assert(!Coupling<PerLevel<Rev<4>, ConvBlock<8, 8, double>>>);
  Group g;
  const Tensors<double, 2> x{test::random({2, 4, 6, 6}, 1), test::random({2, 8, 3, 3}, 2)};
  const Tensors<double, 2> dy{test::random({2, 4, 6, 6}, 3), test::random({2, 8, 3, 3}, 4)};
  context train{phase::train};
  Group::cache c;
  const auto y = g.forward(x, train, c);
  const auto dx = g.backward(c, dy);
  const auto r = g.backward_reversible(y, dy);
  for (std::size_t s = 0; s < 2; ++s) {
    CHECK(test::max_abs_error(r.x[s], x[s]) < 1e-12);
    CHECK(test::max_abs_error(r.dx[s], dx[s]) < 1e-12);
  }
  std::vector<std::string> names;
  g.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names.front() == "rev_transform_0.f.0.weight");
  CHECK(names.back().rfind("rev_transform_1.g.", 0) == 0);
}

TEST_CASE("PerLevel of ordinary blocks: input gradients match finite differences (float64, eval phase)") {
  PerLevel<ConvBlock<2, 3, double>, ConvBlock<3, 2, double>> p;
  context eval{phase::eval};
  auto fwd = [&](const std::vector<Tensor<double>>& in) {
    const auto y = p.forward(as_state<2>(in), eval);
    return ops::concat_channels({y[0].reshape({2, 3 * 16}), y[1].reshape({2, 2 * 4})});
  };
  auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& w) {
    decltype(p)::cache c;
    p.forward(as_state<2>(in), eval, c);
    const auto parts = ops::split_channels(w, {3 * 16, 2 * 4});
    return as_vector<2>(p.backward(c, {parts[0].reshape({2, 3, 4, 4}), parts[1].reshape({2, 2, 2, 2})}));
  };
  const auto r = testing::check_gradients(fwd, bwd, {test::random({2, 2, 4, 4}, 5), test::random({2, 3, 2, 2}, 6)});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("Cascade: t = x_{i+1} + B_i(t); gradients of every level and parameter match finite differences") {
  using B0 = ConvBlock<2, 3, double, 3, 2>;  // stride 2: level 1 is half the size
  using B1 = ConvBlock<3, 4, double, 3, 2>;
  Cascade<B0, B1> head;
  context eval{phase::eval};
  const std::vector<Tensor<double>> x{test::random({2, 2, 8, 8}, 7), test::random({2, 3, 4, 4}, 8),
                                      test::random({2, 4, 2, 2}, 9)};
  {  // the formula, block by block
    const Tensor<double> t1 = ops::add(x[1], head.get<0>().forward(x[0], eval));
    const Tensor<double> expected = ops::add(x[2], head.get<1>().forward(t1, eval));
    CHECK(test::max_abs_error(head.forward(as_state<3>(x), eval), expected) == 0);
  }
  auto fwd = [&](const std::vector<Tensor<double>>& in) { return head.forward(as_state<3>(in), eval); };
  auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& w) {
    decltype(head)::cache c;
    head.forward(as_state<3>(in), eval, c);
    return as_vector<3>(head.backward(c, w));
  };
  const auto r = testing::check_gradients(fwd, bwd, x);
  CHECK_MESSAGE(r.ok(), r.str());

  // A parameter's gradient: d sum(y) / d (first weight element), numerically.
  zero_grad(head);
  decltype(head)::cache c;
  const Tensor<double> y = head.forward(as_state<3>(x), eval, c);
  head.backward(c, Tensor<double>::full(y.shape(), 1.0));
  auto& w0 = head.get<0>().get<0>().weight;
  const double saved = w0.value.data()[0], eps = 1e-6;
  w0.value.data()[0] = saved + eps;
  const double up = total(head.forward(as_state<3>(x), eval));
  w0.value.data()[0] = saved - eps;
  const double down = total(head.forward(as_state<3>(x), eval));
  w0.value.data()[0] = saved;
  CHECK(w0.grad.data()[0] == doctest::Approx((up - down) / (2 * eps)).epsilon(1e-6));

  std::vector<std::string> names;
  head.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); });
  CHECK(names.front() == "0.0.weight");
  CHECK(names.back() == "1.3.weight");
}

TEST_CASE("Cascade: a level of other extents than its block's result names both") {
  Cascade<ConvBlock<2, 3, double, 3, 2>> head;
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(head.forward({Tensor<double>({1, 2, 8, 8}), Tensor<double>({1, 3, 8, 8})}, eval),
                       "rev::Cascade: block 0 returns extents [1, 3, 4, 4], but level 1 it is added to has extents "
                       "[1, 3, 8, 8]",
                       shape_error);
}

TEST_CASE("Fork: streams start equal and do not alias; the gradient is their sum; the inverse reads stream 0") {
  Fork<3, double> fork;
  static_assert(Coupling<Fork<3, double>>);
  context eval{phase::eval};
  const Tensor<double> x = test::random({2, 5}, 10);
  auto y = fork.forward(x, eval);
  for (const auto& s : y) CHECK(test::max_abs_error(s, x) == 0);
  y[1].data()[0] += 1;
  CHECK(y[2].data()[0] == x.data()[0]);
  const Tensors<double, 3> dy{test::random({2, 5}, 11), test::random({2, 5}, 12), test::random({2, 5}, 13)};
  const auto r = fork.backward_reversible(y, dy);
  CHECK(test::max_abs_error(r.x, x) == 0);
  CHECK(test::max_abs_error(r.dx, ops::add(ops::add(dy[0], dy[1]), dy[2])) < 1e-15);
}

TEST_CASE("TileChannels: channel k is input channel k mod In; gradients match finite differences") {
  nn::TileChannels<3, 8, double> tile;
  static_assert(Coupling<nn::TileChannels<3, 8, double>>);
  context eval{phase::eval};
  const Tensor<double> x = test::random({2, 3, 2, 2}, 14);
  const Tensor<double> y = tile.forward(x, eval);
  REQUIRE(y.shape() == Shape{2, 8, 2, 2});
  for (index_t k = 0; k < 8; ++k) CHECK(y(1, k, 1, 0) == x(1, k % 3, 1, 0));
  CHECK(test::max_abs_error(tile.inverse(y, eval), x) == 0);
  const auto r = testing::check_gradients(tile, x);
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK_THROWS_WITH_AS(tile.forward(Tensor<double>({1, 4, 2, 2}), eval),
                       "rev::nn::TileChannels<3,8>: input has extents [1, 4, 2, 2], expected [N, 3, H, W]",
                       shape_error);
}

TEST_CASE("PadChannels and AvgPool2d: values and gradients") {
  nn::PadChannels<1, 2, double> pad;
  nn::AvgPool2d<2, double> pool;
  context eval{phase::eval};
  const Tensor<double> x = test::random({2, 3, 4, 4}, 15);
  const Tensor<double> y = pad.forward(x, eval);
  REQUIRE(y.shape() == Shape{2, 6, 4, 4});
  CHECK(y(1, 0, 2, 3) == 0);
  CHECK(y(1, 2, 2, 3) == x(1, 1, 2, 3));
  CHECK(y(1, 5, 2, 3) == 0);
  const Tensor<double> p = pool.forward(x, eval);
  CHECK(p(1, 2, 1, 0) == doctest::Approx((x(1, 2, 2, 0) + x(1, 2, 2, 1) + x(1, 2, 3, 0) + x(1, 2, 3, 1)) / 4));
  auto r = testing::check_gradients(pad, x);
  CHECK_MESSAGE(r.ok(), r.str());
  r = testing::check_gradients(pool, x);
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("Additive with a shortcut: y1 = S(x1) + F(x2), y2 = S(x2) + G(y1); an ordinary block") {
  using S = nn::Conv2d<2, 3, nn::conv_opts{.kernel = 1, .stride = 2}, double>;
  using F = ConvBlock<2, 3, double, 3, 2>;
  using G = ConvBlock<3, 3, double>;
  using Block = Additive<F, G, coupling_layout::halves, S>;
  static_assert(!Coupling<Block> && Block::in_channels == 4 && Block::out_channels == 6);
  Block b;
  const Tensor<double> x = test::random({2, 4, 6, 6}, 16);
  {  // the formula, with shortcut instances holding the block's shortcut weights
    context eval{phase::eval};
    S s0, s1;
    std::vector<std::string> names;
    b.for_each_parameter([&](const std::string& n, Param<double>& p) {
      names.push_back(n);
      if (n == "shortcut.0.weight") s0.weight.value = p.value;
      if (n == "shortcut.1.weight") s1.weight.value = p.value;
    });
    CHECK(names.back() == "shortcut.1.weight");
    const auto xs = ops::split_channels(x, {2, 2});
    const auto ys = ops::split_channels(b.forward(x, eval), {3, 3});
    const Tensor<double> y1 = ops::add(s0.forward(xs[0], eval), b.f().forward(xs[1], eval));
    const Tensor<double> y2 = ops::add(s1.forward(xs[1], eval), b.g().forward(y1, eval));
    CHECK(test::max_abs_error(ys[0], y1) < 1e-14);
    CHECK(test::max_abs_error(ys[1], y2) < 1e-14);
  }
  const auto r = testing::check_gradients(b, x);
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("Chain: the last ordinary block of a reversible tape runs once, and the gradients equal stored mode") {
  using Head = test::Counted<ConvBlock<4, 4, double>>;
  using Net = Chain<ConvBlock<4, 4, double>, Rev<4>, Head>;
  manual_seed(5);
  Net a;
  manual_seed(5);
  Net b;
  const Tensor<double> x = test::random({2, 4, 5, 5}, 17), dy = test::random({2, 4, 5, 5}, 18);
  context train{phase::train};
  decltype(a)::cache ta{mode::stored}, tb{mode::reversible};
  a.forward(x, train, ta);
  const Tensor<double> da = a.backward(ta, dy);
  Head::evaluations = 0;
  b.forward(x, train, tb);
  const Tensor<double> db = b.backward(tb, dy);
  CHECK(Head::evaluations == 1);  // no recompute of the last block
  CHECK(test::max_abs_error(da, db) < 1e-12);

  // Nested, the same block is not the last of the walk back: it is a checkpoint, run twice.
  Chain<decltype(b), ConvBlock<4, 4, double>> outer;
  decltype(outer)::cache to{mode::reversible};
  Head::evaluations = 0;
  const Tensor<double> y = outer.forward(x, train, to);
  outer.backward(to, Tensor<double>(y.shape()));
  CHECK(Head::evaluations == 2);
}

TEST_CASE("Tap: an intermediate head's loss gradient joins the main one at the reconstructed activation") {
  using Net = Chain<ConvBlock<4, 4, double>, Rev<4>, Tap<ConvBlock<4, 2, double>>, Rev<4>>;
  static_assert(Coupling<Tap<ConvBlock<4, 2, double>>>);
  manual_seed(9);
  Net a;
  manual_seed(9);
  Net b;
  const Tensor<double> x = test::random({2, 4, 5, 5}, 20), dy = test::random({2, 4, 5, 5}, 21),
                       w = test::random({2, 2, 5, 5}, 22);
  double side = 0;  // <head output, w>: the head's loss, whose gradient is w
  auto hook = [&](const Tensor<double>& h) {
    for (index_t i = 0; i < h.numel(); ++i) side += h.data()[i] * w.data()[i];
    return w.clone();
  };
  a.get<2>().on_output = hook;
  b.get<2>().on_output = hook;
  context train{phase::train};
  Net::cache ta{mode::stored}, tb{mode::reversible};
  zero_grad(a);
  zero_grad(b);
  a.forward(x, train, ta);
  const Tensor<double> da = a.backward(ta, dy);
  b.forward(x, train, tb);
  const Tensor<double> db = b.backward(tb, dy);
  CHECK(test::max_abs_error(da, db) < 1e-10);
  std::vector<Tensor<double>> ga, gb;
  a.for_each_parameter([&](const std::string&, Param<double>& p) { ga.push_back(p.grad.clone()); });
  b.for_each_parameter([&](const std::string&, Param<double>& p) { gb.push_back(p.grad.clone()); });
  REQUIRE(ga.size() == gb.size());
  for (std::size_t i = 0; i < ga.size(); ++i) CHECK(test::max_abs_error(ga[i], gb[i]) < 1e-10);

  // d/dx of <net(x), dy> + <head(x_2), w>, numerically, at a few elements.
  auto loss = [&](const Tensor<double>& at) {
    side = 0;
    const Tensor<double> y = a.forward(at, train);
    double s = side;
    for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * dy.data()[i];
    return s;
  };
  for (index_t i : {index_t{0}, index_t{17}, index_t{63}, index_t{199}}) {
    Tensor<double> up = x.clone(), down = x.clone();
    up.data()[i] += 1e-6;
    down.data()[i] -= 1e-6;
    CHECK(da.data()[i] == doctest::Approx((loss(up) - loss(down)) / 2e-6).epsilon(1e-6));
  }
}
