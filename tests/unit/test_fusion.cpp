// rev::Fusion (a Column level from a down path, an up path and a body), rev::Select, rev::Tap on
// one stream of a state, rev::Unnamed and nn::Identity.
#include <map>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "rev/column.hpp"
#include "rev/core/named.hpp"
#include "rev/core/transfer.hpp"
#include "rev/graph/chain.hpp"
#include "rev/graph/fusion.hpp"
#include "rev/graph/per_level.hpp"
#include "rev/graph/streams.hpp"
#include "rev/graph/tap.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/identity.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/resample.hpp"
#include "rev/nn/sequential.hpp"

using namespace rev;

namespace {

using Down =
    Named<"down", nn::Conv2d<3, 4, nn::conv_opts{.kernel = 2, .stride = 2, .padding = 0, .bias = true}, double>>;
using Up =
    Named<"up", nn::Sequential<nn::Conv2d<5, 4, nn::conv_opts{.kernel = 1}, double>, nn::UpsampleNearest<2, double>>>;
using Body = Named<"body", nn::Sequential<nn::Conv2d<4, 4, nn::conv_opts{.kernel = 3}, double>, nn::GELU<double>>>;
using Level = Fusion<Down, Up, Body>;
using TopLevel = Fusion<Down, no_input, Body>;

}  // namespace

TEST_CASE("Fusion: y = Body(Down(low) + Up(high)); backward equals finite differences") {
  static_assert(Level::low_channels == 3 && Level::high_channels == 5 && Level::out_channels == 4);
  static_assert(TopLevel::high_channels == any_channels);
  Level f;
  const Tensor<double> low = test::random({2, 3, 8, 8}, 1), high = test::random({2, 5, 2, 2}, 2);
  context ctx{phase::train};
  const Tensor<double> y = f.forward(low, &high, ctx);
  const Tensor<double> s = ops::add(f.down().forward(low, ctx), f.up().forward(high, ctx));
  CHECK(test::max_abs_error(y, f.body().forward(s, ctx)) == 0);

  auto fwd = [&](const std::vector<Tensor<double>>& in) { return f.forward(in[0], &in[1], ctx); };
  auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    Level::cache c;
    f.forward(in[0], &in[1], ctx, c);
    auto [dlow, dhigh] = f.backward(c, dy);
    return std::vector<Tensor<double>>{dlow, dhigh};
  };
  auto r = testing::check_gradients(fwd, bwd, {low, high});
  CHECK_MESSAGE(r.ok(), r.str());

  std::vector<std::string> names;
  f.for_each_parameter([&](const std::string& k, Param<double>&) { names.push_back(k); });
  CHECK(names == std::vector<std::string>{"down.weight", "down.bias", "up.0.weight", "body.0.weight"});
  CHECK_THROWS_WITH_AS(f.forward(low, nullptr, ctx), doctest::Contains("has an up path but was given no high input"),
                       value_error);
  const Tensor<double> wrong = test::random({2, 5, 3, 3}, 3);
  CHECK_THROWS_WITH_AS(f.forward(low, &wrong, ctx),
                       "rev::Fusion: the down path returns extents [2, 4, 4, 4] but the up path [2, 4, 6, 6] (RevCol "
                       "needs H and W multiples of 32)",
                       shape_error);

  TopLevel t;
  TopLevel::cache c;
  const Tensor<double> yt = t.forward(low, &high, ctx, c);  // high ignored
  CHECK(test::max_abs_error(yt, t.body().forward(t.down().forward(low, ctx), ctx)) == 0);
  CHECK(t.backward(c, yt).second.empty());
}

TEST_CASE("Fusion with a top input: y = Body(Down(low) + Up(high) + Top(top)); finite differences") {
  using Up2 =
      Named<"up2",
            nn::Sequential<nn::Conv2d<6, 4, nn::conv_opts{.kernel = 1}, double>, nn::UpsampleNearest<4, double>>>;
  using Three = Fusion<Down, Up, Body, Up2>;
  static_assert(ReadsTop<Three> && Three::top_channels == 6 && !ReadsTop<Level>);
  Three f;
  const Tensor<double> low = test::random({2, 3, 8, 8}, 1), high = test::random({2, 5, 2, 2}, 2),
                       top = test::random({2, 6, 1, 1}, 3);
  context ctx{phase::train};
  const Tensor<double> y = f.forward(low, &high, &top, ctx);
  const Tensor<double> s =
      ops::add(ops::add(f.down().forward(low, ctx), f.up().forward(high, ctx)), f.top().forward(top, ctx));
  CHECK(test::max_abs_error(y, f.body().forward(s, ctx)) == 0);

  auto fwd = [&](const std::vector<Tensor<double>>& in) { return f.forward(in[0], &in[1], &in[2], ctx); };
  auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    Three::cache c;
    f.forward(in[0], &in[1], &in[2], ctx, c);
    auto [dlow, dhigh, dtop] = f.backward(c, dy);
    return std::vector<Tensor<double>>{dlow, dhigh, dtop};
  };
  auto r = testing::check_gradients(fwd, bwd, {low, high, top});
  CHECK_MESSAGE(r.ok(), r.str());

  std::vector<std::string> names;
  f.for_each_parameter([&](const std::string& k, Param<double>&) { names.push_back(k); });
  CHECK(names == std::vector<std::string>{"down.weight", "down.bias", "up.0.weight", "up2.0.weight", "body.0.weight"});
  CHECK_THROWS_WITH_AS(f.forward(low, &high, nullptr, ctx),
                       doctest::Contains("has a top path but was given no top input"), value_error);
  const Tensor<double> wrong = test::random({2, 6, 2, 2}, 4);
  CHECK_THROWS_WITH_AS(f.forward(low, &high, &wrong, ctx),
                       doctest::Contains("the down path returns extents [2, 4, 4, 4] but the top path [2, 4, 8, 8]"),
                       shape_error);
}

TEST_CASE("Fusion: an identity down path leaves the low input untouched") {
  Fusion<nn::Identity<double>, Up, Body> f;
  const Tensor<double> low = test::random({1, 4, 4, 4}, 4), keep = low.clone(), high = test::random({1, 5, 2, 2}, 5);
  context ctx{phase::eval};
  f.forward(low, &high, ctx);
  CHECK(test::max_abs_error(low, keep) == 0);
  static_assert(Coupling<nn::Identity<double>>);
}

TEST_CASE("Select: one stream of a state; the others get zero gradients") {
  Select<1, 3, double> pick;
  const Tensors<double, 3> x{test::random({2, 3}, 6), test::random({2, 4, 2, 2}, 7), test::random({1, 5}, 8)};
  context ctx{phase::train};
  Select<1, 3, double>::cache c;
  const Tensor<double> y = pick.forward(x, ctx, c);
  CHECK(y.shares_buffer_with(x[1]));
  const Tensor<double> dy = test::random(y.shape(), 9);
  const auto dx = pick.backward(c, dy);
  CHECK(test::max_abs_error(dx[1], dy) == 0);
  CHECK(dx[0].shape() == x[0].shape());
  CHECK(dx[2].shape() == x[2].shape());
  CHECK(ops::dot(dx[0], dx[0]) + ops::dot(dx[2], dx[2]) == 0);
  CHECK_THROWS_WITH_AS(pick.backward(c, test::random({2, 4}, 1)),
                       "rev::Select<1, 3>: gradient has extents [2, 4], expected [2, 4, 2, 2]", shape_error);
}

TEST_CASE("Tap on a stream: the head reads stream I, its gradient joins stream I only") {
  using Head = Unnamed<
      nn::Sequential<Named<"conv", nn::Conv2d<4, 2, nn::conv_opts{.kernel = 1}, double>>, nn::GlobalAvgPool<double>>>;
  using T = Tap<Head, stream<1, 2>>;
  static_assert(Coupling<T>);
  static_assert(T::in_signature[1].width == 4 && T::in_signature[0].width == any_channels);
  T tap;
  const Tensor<double> w = test::random({3, 2, 1, 1}, 10);
  tap.on_output = [&](const Tensor<double>&) { return w.clone(); };
  const Tensors<double, 2> x{test::random({3, 6}, 11), test::random({3, 4, 2, 2}, 12)};
  const Tensors<double, 2> dy{test::random({3, 6}, 13), test::random({3, 4, 2, 2}, 14)};
  context ctx{phase::train};
  T::cache c;
  const auto y = tap.forward(x, ctx, c);
  CHECK(y[1].shares_buffer_with(x[1]));
  const auto dx = tap.backward(c, dy);
  CHECK(test::max_abs_error(dx[0], dy[0]) == 0);
  // stream 1: dy_1 + conv^T (w / 4 spread over the 2x2 pixels)
  Head h;
  typename Head::cache hc;
  h = tap.head();
  h.forward(x[1], ctx, hc);
  CHECK(test::max_abs_error(dx[1], ops::add(dy[1], h.backward(hc, w))) < 1e-14);
  // Reversible: the same, from the output and the kept side gradient.
  Chain<T, PerLevel<nn::Identity<double>, nn::Identity<double>>> net;  // the tap is not the last block
  copy_state(tap, net.get<0>());
  net.get<0>().on_output = tap.on_output;
  decltype(net)::cache tape{mode::reversible};
  net.forward(x, ctx, tape);
  const auto dr = net.backward(tape, dy);
  CHECK(test::max_abs_error(dr[1], dx[1]) < 1e-14);
  // Unnamed: the head's parameters keep their names, no index.
  std::vector<std::string> names;
  Chain<nn::Identity<double>, Unnamed<Chain<Named<"a", nn::Conv2d<2, 2, nn::conv_opts{}, double>>>>> chain;
  chain.for_each_parameter([&](const std::string& k, Param<double>&) { names.push_back(k); });
  CHECK(names == std::vector<std::string>{"a.weight"});
}
