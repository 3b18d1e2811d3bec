#include <Eigen/Dense>
#include <limits>
#include <numbers>

#include "helpers.hpp"
#include "rev/affine.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/testing/check_invertible.hpp"

using namespace rev;

namespace {

/// A conv-like inner function C -> C: conv 3x3 -> ReLU -> conv 3x3 (both with bias).
template <int C, class V>
using ConvNet = nn::Sequential<nn::Conv2d<C, 2 * C, nn::conv_opts{.kernel = 3, .bias = true}, V>, nn::ReLU<V>,
                               nn::Conv2d<2 * C, C, nn::conv_opts{.kernel = 3, .bias = true}, V>>;

/// The same with BatchNorm (batch statistics in train, replayed in the recompute phase).
template <int C, class V>
using ConvBN =
    nn::Sequential<nn::Conv2d<C, 2 * C, nn::conv_opts{.kernel = 3}, V>, nn::BatchNorm2d<2 * C, nn::bn_opts{}, V>,
                   nn::ReLU<V>, nn::Conv2d<2 * C, C, nn::conv_opts{.kernel = 3, .bias = true}, V>>;

/// raw = gain * x (any channel count): puts S's output in a known range.
template <Scalar V>
struct Gain : layer_types<V, cpu>, no_parameters {
  struct cache {};
  double gain = 1;
  Tensor<V> forward(const Tensor<V>& x, context&) const {
    return ops::map(x, [g = static_cast<V>(gain)](V v) { return g * v; });
  }
  Tensor<V> forward(const Tensor<V>& x, context& ctx, cache&) const { return forward(x, ctx); }
  Tensor<V> backward(cache&, const Tensor<V>& dy) const {
    context ctx;
    return forward(dy, ctx);
  }
};

/// Counts a layer's evaluations by phase, and its backward passes.
template <class L, int Tag>
struct Counted : L {
  inline static int train = 0, recompute = 0, eval = 0, backwards = 0;
  static void reset() { train = recompute = eval = backwards = 0; }
  static void count(const context& ctx) {
    ++(ctx.mode == phase::train ? train : ctx.mode == phase::recompute ? recompute : eval);
  }
  typename L::tensor_type forward(const typename L::tensor_type& x, context& ctx) {
    count(ctx);
    return L::forward(x, ctx);
  }
  typename L::tensor_type forward(const typename L::tensor_type& x, context& ctx, typename L::cache& c) {
    count(ctx);
    return L::forward(x, ctx, c);
  }
  typename L::tensor_type backward(typename L::cache& c, const typename L::tensor_type& dy) {
    ++backwards;
    return L::backward(c, dy);
  }
};

template <class V>
Tensor<V> half(const Tensor<V>& x, int k) {
  const index_t h = x.size(1) / 2, sizes[] = {h, h};
  return ops::split_channels(x, sizes)[static_cast<std::size_t>(k)];
}

// y2 = x2 ⊙ scale(S(x1)) + t(x1) and log_det[n] = Σ log scale, evaluated element by element.
template <class A>
std::pair<Tensor<double>, Tensor<double>> by_definition(A& block, const Tensor<double>& x, bool swapped = false) {
  context ctx{phase::eval};
  auto x1 = half(x, swapped ? 1 : 0), x2 = half(x, swapped ? 0 : 1);
  auto raw = block.s().forward(x1, ctx), t = block.t().forward(x1, ctx);
  Tensor<double> y2(x2.shape()), log_det({x.size(0)});
  const index_t per_sample = x2.numel() / x.size(0);
  for (index_t i = 0; i < x2.numel(); ++i) {
    const double r = raw.data()[i];
    double scale = 0;
    if constexpr (std::same_as<typename A::scale_type, affine_scale::exp>) scale = std::exp(r);
    else if constexpr (std::same_as<typename A::scale_type, affine_scale::sigmoid>)
      scale = 1 / (1 + std::exp(-(r + 2)));
    else scale = std::exp(block.scale().alpha * 2 / std::numbers::pi * std::atan(r / block.scale().alpha));
    y2.data()[i] = x2.data()[i] * scale + t.data()[i];
    log_det.data()[i / per_sample] += std::log(scale);
  }
  const Tensor<double> parts[] = {swapped ? y2 : x1, swapped ? x1 : y2};
  return {ops::concat_channels(parts), log_det};
}

// The rows of `loss` and the gradients the coupling must produce, for the generic checker:
// out = [y (flattened), log_det], so <out, w> = <y, w_y> + <log_det, w_ld>.
template <class A>
testing::gradient_report check_with_log_det(A& block, const Tensor<double>& x) {
  std::vector<Param<double>*> params;
  block.for_each_parameter([&](const std::string&, Param<double>& p) { params.push_back(&p); });
  std::vector<Tensor<double>> inputs{x.clone()};
  for (auto* p : params) inputs.push_back(p->value.clone());
  auto load = [&](const std::vector<Tensor<double>>& in) {
    for (std::size_t k = 0; k < params.size(); ++k)
      std::copy(in[k + 1].begin(), in[k + 1].end(), params[k]->value.begin());
  };
  const index_t ny = x.numel(), N = x.size(0);
  auto forward = [&](const std::vector<Tensor<double>>& in) {
    load(in);
    context ctx{phase::train};
    Tensor<double> log_det;
    auto y = block.forward(in[0], ctx, log_det);
    Tensor<double> out({ny + N});
    std::copy(y.begin(), y.end(), out.begin());
    std::copy(log_det.begin(), log_det.end(), out.begin() + ny);
    return out;
  };
  auto backward = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& w) {
    load(in);
    zero_grad(block);
    context ctx{phase::train};
    typename A::cache c;
    block.forward(in[0], ctx, c);
    Tensor<double> dy(x.shape()), dl({N});
    std::copy(w.begin(), w.begin() + ny, dy.begin());
    std::copy(w.begin() + ny, w.end(), dl.begin());
    std::vector<Tensor<double>> grads{block.backward(c, dy, &dl)};
    for (auto* p : params) grads.push_back(p->grad.clone());
    return grads;
  };
  return testing::check_gradients(forward, backward, inputs, {.rtol = 1e-6});
}

// log |det J_n| of the forward map of sample n, J by central differences (eval phase).
template <class A>
std::vector<double> log_det_by_finite_differences(A& block, const Tensor<double>& x, double h = 1e-5) {
  context ctx{phase::eval};
  const index_t N = x.size(0), D = x.numel() / N;
  std::vector<double> out;
  for (index_t n = 0; n < N; ++n) {
    Eigen::MatrixXd J(D, D);
    for (index_t j = 0; j < D; ++j) {
      Tensor<double> up = x.clone(), down = x.clone();
      up.data()[n * D + j] += h;
      down.data()[n * D + j] -= h;
      auto yu = block.forward(up, ctx), yd = block.forward(down, ctx);
      for (index_t i = 0; i < D; ++i) J(i, j) = (yu.data()[n * D + i] - yd.data()[n * D + i]) / (2 * h);
    }
    out.push_back(std::log(std::abs(J.fullPivLu().determinant())));
  }
  return out;
}

// max |inverse(forward(x)) - x| for x ~ U(-1, 1), raw = gain * x1, t = a conv of x1 (float32).
template <class Scale>
double round_trip_error(double gain, Scale scale = {}) {
  Generator g(11);
  Affine<Gain<float>, nn::Conv2d<4, 4, nn::conv_opts{.kernel = 3, .bias = true}, float>, Scale> block(
      Gain<float>{}, nn::Conv2d<4, 4, nn::conv_opts{.kernel = 3, .bias = true}, float>(g), scale);
  block.s().gain = gain;
  auto x = test::random<float>({4, 8, 8, 8}, 12);
  context ctx{phase::eval};
  return test::max_abs_error(block.inverse(block.forward(x, ctx), ctx), x);
}

}  // namespace

// Compile-time rules.
static_assert(AffineCompatible<nn::Conv2d<2, 2>, nn::Conv2d<2, 2>>);
static_assert(AffineCompatible<Gain<float>, nn::Conv2d<3, 3>>);
static_assert(!AffineCompatible<nn::Conv2d<2, 2>, nn::Conv2d<3, 3>>, "S and T disagree on the half width");
static_assert(!AffineCompatible<nn::Conv2d<2, 3>, nn::Conv2d<2, 3>>, "S must keep the channel count");
static_assert(!AffineCompatible<nn::Conv2d<2, 2>, nn::Conv2d<2, 4>>, "T must keep the channel count");
static_assert(AffineScale<affine_scale::exp> && AffineScale<affine_scale::exp_clamped> &&
              AffineScale<affine_scale::sigmoid>);
static_assert(!AffineScale<int>);
static_assert(Coupling<Affine<ConvNet<2, float>, ConvNet<2, float>>>);
static_assert(Coupling<Chain<Repeat<3, Affine<ConvNet<2, float>, ConvNet<2, float>>>>>);
static_assert(Affine<nn::Conv2d<3, 3>, nn::Conv2d<3, 3>>::in_channels == 6);
static_assert(Affine<Gain<float>, Gain<float>>::in_channels == any_channels);

TEST_CASE("Affine: scale policies match their definitions and derivatives") {
  const affine_scale::exp e;
  const affine_scale::exp_clamped c;
  const affine_scale::exp_clamped c5(5);
  const affine_scale::sigmoid s;
  CHECK(e.log_scale(1.5) == 1.5);
  CHECK(c.log_scale(0.0) == 0.0);
  CHECK(c.log_scale(1.0) == doctest::Approx(2 * 2 / std::numbers::pi * std::atan(0.5)));
  CHECK(c5.log_scale(1.0) == doctest::Approx(5 * 2 / std::numbers::pi * std::atan(0.2)));
  CHECK(std::abs(c.log_scale(1e30)) <= 2);  // |s| <= alpha (< alpha up to rounding)
  CHECK(c.log_scale(-1e30f) >= -2.0f);
  CHECK(c.log_scale(-100.0) > -2.0);
  CHECK(s.scale(0.0, s.log_scale(0.0)) == doctest::Approx(1 / (1 + std::exp(-2.0))));
  // No overflow far out: log sigmoid(-798) = -798, sigmoid(802) = 1.
  CHECK(s.log_scale(-800.0f) == doctest::Approx(-798.0f));
  CHECK(s.log_scale(800.0) == 0.0);
  CHECK(s.dlog_scale(-800.0) == 1.0);
  CHECK(s.dlog_scale(800.0) == 0.0);
  for (double r : {-7.0, -2.5, -0.3, 0.0, 0.4, 3.0, 9.0}) {
    // scale(raw, log_scale(raw)) = exp(log_scale(raw))
    CHECK(std::log(e.scale(r, e.log_scale(r))) == doctest::Approx(e.log_scale(r)).epsilon(1e-13));
    CHECK(std::log(c.scale(r, c.log_scale(r))) == doctest::Approx(c.log_scale(r)).epsilon(1e-13));
    CHECK(std::log(s.scale(r, s.log_scale(r))) == doctest::Approx(s.log_scale(r)).epsilon(1e-13));
    const double h = 1e-6;
    CHECK(e.dlog_scale(r) == doctest::Approx((e.log_scale(r + h) - e.log_scale(r - h)) / (2 * h)).epsilon(1e-8));
    CHECK(c.dlog_scale(r) == doctest::Approx((c.log_scale(r + h) - c.log_scale(r - h)) / (2 * h)).epsilon(1e-8));
    CHECK(s.dlog_scale(r) == doctest::Approx((s.log_scale(r + h) - s.log_scale(r - h)) / (2 * h)).epsilon(1e-8));
  }
}

TEST_CASE("Affine: y1 = x1, y2 = x2 * scale(S(x1)) + T(x1), log_det = sum log scale, for every scale policy") {
  auto x = test::random({2, 6, 5, 4}, 1);
  auto run = [&](auto& block, bool swapped) {
    context ctx{phase::eval};
    Tensor<double> log_det;
    auto y = block.forward(x, ctx, log_det);
    auto [y_ref, ld_ref] = by_definition(block, x, swapped);
    CHECK(test::max_abs_error(y, y_ref) < 1e-14);
    CHECK(test::max_abs_error(log_det, ld_ref) < 1e-12);
    CHECK(log_det.shape() == Shape{2});
    CHECK(block.last_log_det().shares_buffer_with(log_det));
    // The protocol's forward gives the same output and records the same log-det.
    CHECK(test::max_abs_error(block.forward(x, ctx), y) == 0);
    CHECK(test::max_abs_error(block.last_log_det(), log_det) == 0);
  };
  {
    Affine<ConvNet<3, double>, ConvNet<3, double>, affine_scale::exp> block;
    run(block, false);
  }
  {
    Affine<ConvNet<3, double>, ConvNet<3, double>> block;  // default: exp_clamped, alpha = 2
    CHECK(block.scale().alpha == 2);
    run(block, false);
  }
  {
    Affine<ConvNet<3, double>, ConvNet<3, double>, affine_scale::exp_clamped> block(affine_scale::exp_clamped(0.5));
    run(block, false);
  }
  {
    Affine<ConvNet<3, double>, ConvNet<3, double>, affine_scale::sigmoid> block;
    run(block, false);
  }
  {
    Affine<ConvNet<3, double>, ConvNet<3, double>, affine_scale::exp_clamped, coupling_layout::halves_swapped> block;
    run(block, true);
  }
}

TEST_CASE("Affine: parameters are named s.* and t.*") {
  Affine<ConvNet<2, float>, ConvBN<2, float>> block;
  std::vector<std::string> names, buffers;
  block.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); }, "flow.0");
  block.for_each_buffer([&](const std::string& n, auto&) { buffers.push_back(n); });
  CHECK(names == std::vector<std::string>{"flow.0.s.0.weight", "flow.0.s.0.bias", "flow.0.s.2.weight",
                                          "flow.0.s.2.bias", "flow.0.t.0.weight", "flow.0.t.1.weight",
                                          "flow.0.t.1.bias", "flow.0.t.3.weight", "flow.0.t.3.bias"});
  CHECK(std::count_if(buffers.begin(), buffers.end(), [](auto& b) { return b.rfind("t.1.", 0) == 0; }) >= 2);
}

TEST_CASE("Affine: invertible in float32 (<= 1e-5) and float64 (<= 1e-12) with conv inner functions") {
  auto check_both = [](auto tag) {
    using Scale = decltype(tag);
    Affine<ConvNet<4, double>, ConvNet<4, double>, Scale> d;
    auto rd = testing::check_invertible(d, test::random({2, 8, 7, 6}, 3));
    CHECK_MESSAGE(rd.ok(1e-12), rd.str());
    Affine<ConvNet<4, float>, ConvNet<4, float>, Scale> f;
    auto rf = testing::check_invertible(f, test::random<float>({2, 8, 7, 6}, 4));
    CHECK_MESSAGE(rf.ok(1e-5), rf.str());
    Affine<ConvBN<4, float>, ConvNet<4, float>, Scale, coupling_layout::halves_swapped> sw;
    auto rs = testing::check_invertible(sw, test::random<float>({3, 8, 5, 5}, 5));
    CHECK_MESSAGE(rs.ok(1e-5), rs.str());
  };
  check_both(affine_scale::exp{});
  check_both(affine_scale::exp_clamped{});
  check_both(affine_scale::sigmoid{});
}

TEST_CASE("Affine: log-det equals log|det J| of the finite-difference Jacobian (float64)") {
  auto check_scale = [](auto tag) {
    using Scale = decltype(tag);
    // Larger weights make raw reach beyond the clamp.
    Generator g(21);
    Affine<ConvNet<1, double>, ConvNet<1, double>, Scale> block;
    block.for_each_parameter([&](const std::string&, Param<double>& p) { nn::init::uniform(p.value, -1.5, 1.5, g); });
    auto x = test::random({2, 2, 2, 2}, 6);
    context ctx{phase::eval};
    Tensor<double> log_det;
    block.forward(x, ctx, log_det);
    auto fd = log_det_by_finite_differences(block, x);
    for (index_t n = 0; n < 2; ++n) {
      INFO("sample " << n << ": log_det " << log_det(n) << ", FD " << fd[static_cast<std::size_t>(n)]);
      CHECK(std::abs(log_det(n) - fd[static_cast<std::size_t>(n)]) <= 1e-6 * std::max(1.0, std::abs(log_det(n))));
    }
    CHECK(std::abs(log_det(0)) > 0.1);  // the check is not vacuous
  };
  check_scale(affine_scale::exp{});
  check_scale(affine_scale::exp_clamped{});
  check_scale(affine_scale::sigmoid{});
}

TEST_CASE("Affine: logdet(forward) + logdet(inverse) = 0") {
  Affine<ConvNet<3, double>, ConvNet<3, double>> d;
  context ctx{phase::eval};
  Tensor<double> fwd, inv;
  auto x = test::random({3, 6, 4, 4}, 7);
  d.inverse(d.forward(x, ctx, fwd), ctx, inv);
  CHECK(test::max_abs_error(ops::add(fwd, inv), Tensor<double>({3})) <= 1e-12);
  CHECK(d.last_log_det().shares_buffer_with(inv));

  Affine<ConvNet<3, float>, ConvNet<3, float>, affine_scale::sigmoid> f;
  Tensor<float> ff, fi;
  f.inverse(f.forward(test::random<float>({3, 6, 4, 4}, 8), ctx, ff), ctx, fi);
  CHECK(test::max_abs_error(ops::add(ff, fi), Tensor<float>({3})) <= 1e-4);
}

TEST_CASE("Affine: backward (with a log-det gradient) equals finite differences (float64)") {
  {
    Affine<ConvNet<2, double>, ConvNet<2, double>, affine_scale::exp> block;
    auto r = check_with_log_det(block, test::random({2, 4, 3, 3}, 9));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    Affine<ConvNet<2, double>, ConvNet<2, double>, affine_scale::exp_clamped, coupling_layout::halves_swapped> block(
        affine_scale::exp_clamped(0.7));
    auto r = check_with_log_det(block, test::random({2, 4, 3, 3}, 10, -2, 2));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {
    Affine<ConvNet<2, double>, ConvNet<2, double>, affine_scale::sigmoid> block;
    auto r = check_with_log_det(block, test::random({2, 4, 3, 3}, 11));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  {  // the protocol's two-argument backward, through the layer checker (BatchNorm in train mode)
    Affine<ConvBN<2, double>, ConvNet<2, double>> block;
    auto r = testing::check_gradients(block, test::random({3, 4, 3, 3}, 12), {.rtol = 1e-5});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("Affine: backward_reversible equals backward, with and without a log-det gradient (float64)") {
  Affine<ConvBN<3, double>, ConvNet<3, double>> block;
  auto x = test::random({2, 6, 4, 5}, 13);
  auto dy = test::random({2, 6, 4, 5}, 14);
  auto dl = test::random({2}, 15);
  auto grads = [&] {
    std::vector<Tensor<double>> g;
    block.for_each_parameter([&](const std::string&, Param<double>& p) { g.push_back(p.grad.clone()); });
    return g;
  };
  const Tensor<double>* none = nullptr;
  for (const Tensor<double>* dlog_det : {none, static_cast<const Tensor<double>*>(&dl)}) {
    context ctx{phase::train};
    typename decltype(block)::cache c;
    zero_grad(block);
    auto y = block.forward(x, ctx, c);
    auto dx = block.backward(c, dy, dlog_det);
    auto g_stored = grads();
    zero_grad(block);
    auto r = block.backward_reversible(y, dy, dlog_det);
    auto g_rev = grads();
    CHECK(test::max_abs_error(r.x, x) < 1e-13);
    CHECK(test::max_rel_error(r.dx, dx) < 1e-12);
    for (std::size_t k = 0; k < g_rev.size(); ++k) CHECK(test::max_rel_error(g_rev[k], g_stored[k]) < 1e-12);
  }
  // The two-argument forms use the gradient given by set_log_det_grad.
  context ctx{phase::train};
  typename decltype(block)::cache c;
  auto y = block.forward(x, ctx, c);
  auto dx_explicit = block.backward(c, dy, &dl);
  block.set_log_det_grad(dl);
  block.forward(x, ctx, c);
  CHECK(test::max_abs_error(block.backward(c, dy), dx_explicit) == 0);
  CHECK(test::max_abs_error(block.backward_reversible(y, dy).dx, dx_explicit) < 1e-12);
  block.set_log_det_grad({});
  CHECK(test::max_abs_error(block.backward_reversible(y, dy).dx, dx_explicit) > 1e-6);
}

TEST_CASE("Affine: Stored and Reversible gradients agree in float32 (<= 1e-5)") {
  SUBCASE("one block, each scale policy, BatchNorm in S") {
    Affine<ConvBN<4, float>, ConvNet<4, float>, affine_scale::exp> e;
    auto re = testing::check_reversible_gradients(e, test::random<float>({4, 8, 6, 6}, 16));
    CHECK_MESSAGE(re.ok(1e-5), re.str());
    Affine<ConvBN<4, float>, ConvNet<4, float>> c;
    c.set_log_det_grad(test::random<float>({4}, 17));
    auto rc = testing::check_reversible_gradients(c, test::random<float>({4, 8, 6, 6}, 18));
    CHECK_MESSAGE(rc.ok(1e-5), rc.str());
    Affine<ConvBN<4, float>, ConvNet<4, float>, affine_scale::sigmoid, coupling_layout::halves_swapped> s;
    s.set_log_det_grad(test::random<float>({4}, 19));
    auto rs = testing::check_reversible_gradients(s, test::random<float>({4, 8, 6, 6}, 20));
    CHECK_MESSAGE(rs.ok(1e-5), rs.str());
  }
  SUBCASE("Chain<Repeat<3, Affine>> with log-det gradients") {
    Chain<Repeat<3, Affine<ConvBN<4, float>, ConvNet<4, float>>>> net;
    for (int i = 0; i < 3; ++i)
      net.get<0>()[static_cast<std::size_t>(i)].set_log_det_grad(
          test::random<float>({2}, 21 + static_cast<std::uint64_t>(i)));
    auto r = testing::check_reversible_gradients(net, test::random<float>({2, 8, 5, 5}, 24));
    CHECK_MESSAGE(r.ok(1e-5), r.str());
  }
  SUBCASE("a flow alternating the halves, run by a Chain's reversible tape") {
    using Half = Affine<ConvBN<4, float>, ConvNet<4, float>>;
    using Swapped =
        Affine<ConvBN<4, float>, ConvNet<4, float>, affine_scale::exp_clamped, coupling_layout::halves_swapped>;
    Chain<Repeat<2, Half>, Swapped> net;
    auto x = test::random<float>({2, 8, 5, 5}, 25);
    auto dy = test::random<float>({2, 8, 5, 5}, 26);
    net.get<0>()[0].set_log_det_grad(Tensor<float>::full({2}, -0.5f));
    net.get<0>()[1].set_log_det_grad(Tensor<float>::full({2}, -0.5f));
    net.get<1>().set_log_det_grad(Tensor<float>::full({2}, -0.5f));
    auto run = [&](mode m) {
      typename decltype(net)::cache tape{m};
      context ctx{phase::train};
      zero_grad(net);
      net.forward(x, ctx, tape);
      std::vector<Tensor<float>> g{net.backward(tape, dy)};
      net.for_each_parameter([&](const std::string&, Param<float>& p) { g.push_back(p.grad.clone()); });
      return g;
    };
    auto stored = run(mode::stored), reversible = run(mode::reversible);
    for (std::size_t k = 0; k < stored.size(); ++k) CHECK(test::max_rel_error(reversible[k], stored[k]) <= 1e-5);
  }
}

TEST_CASE("Affine: S and T are each evaluated once in forward and once in backward_reversible") {
  using S = Counted<ConvBN<2, float>, 0>;
  using T = Counted<ConvNet<2, float>, 1>;
  S::reset();
  T::reset();
  Affine<S, T> block;
  auto x = test::random<float>({2, 4, 5, 5}, 27);
  context ctx{phase::train};
  auto y = block.forward(x, ctx);
  CHECK((S::train == 1 && T::train == 1 && S::recompute == 0 && T::recompute == 0));
  auto r = block.backward_reversible(y, test::random<float>({2, 4, 5, 5}, 28));
  CHECK((S::train == 1 && T::train == 1));
  CHECK((S::recompute == 1 && T::recompute == 1));
  CHECK((S::backwards == 1 && T::backwards == 1));
  CHECK(test::max_abs_error(r.x, x) < 1e-5);
  context eval{phase::eval};
  block.inverse(y, eval);
  CHECK((S::eval == 1 && T::eval == 1));

  S::reset();
  T::reset();
  Chain<Repeat<3, Affine<S, T>>> net;
  typename decltype(net)::cache tape{mode::reversible};
  auto yn = net.forward(x, ctx, tape);
  CHECK((S::train == 3 && T::train == 3));
  net.backward(tape, Tensor<float>(yn.shape()));
  CHECK((S::train == 3 && T::train == 3));
  CHECK((S::recompute == 3 && T::recompute == 3));
  CHECK((S::backwards == 3 && T::backwards == 3));
}

TEST_CASE("Affine: float32 round trip with |raw| up to 10 (exp loses invertibility, the clamp keeps it)") {
  // Measured values are in docs/couplings.md, "Affine".
  CHECK(round_trip_error<affine_scale::exp>(1) <= 1e-5);
  CHECK(round_trip_error<affine_scale::exp>(10) > 1e-4);
  for (double gain : {1.0, 5.0, 10.0, 20.0, 1000.0}) {
    INFO("|raw| up to " << gain);
    CHECK(round_trip_error<affine_scale::exp_clamped>(gain) <= 1e-5);
  }
  CHECK(round_trip_error<affine_scale::sigmoid>(1) <= 1e-5);
  CHECK(round_trip_error<affine_scale::sigmoid>(10) > 1e-5);  // sigmoid(raw + 2) -> 0 for raw -> -inf
}

TEST_CASE("Affine: runtime shape and value errors name the block") {
  Affine<nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3}, float>, nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3}, float>>
      block;
  context ctx{phase::eval};
  CHECK_THROWS_WITH_AS(block.forward(Tensor<float>({1, 6, 4, 4}), ctx),
                       "rev::Affine<S,T>: input has extents [1, 6, 4, 4], expected [N, 4, H, W]", shape_error);
  CHECK_THROWS_AS(block.forward(Tensor<float>({4, 4, 4}), ctx), shape_error);
  CHECK_THROWS_WITH_AS(block.inverse(Tensor<float>({1, 2, 4, 4}), ctx),
                       "rev::Affine<S,T>: input of the inverse has extents [1, 2, 4, 4], expected [N, 4, H, W]",
                       shape_error);

  Affine<Gain<float>, Gain<float>> any;  // channel-agnostic S and T: any even channel count
  CHECK(any.forward(Tensor<float>({1, 6, 2, 2}), ctx).shape() == Shape{1, 6, 2, 2});
  CHECK_THROWS_WITH_AS(any.forward(Tensor<float>({1, 5, 4, 4}), ctx),
                       "rev::Affine<S,T>: input has extents [1, 5, 4, 4], expected [N, 2k, H, W]", shape_error);

  Affine<nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3, .stride = 2}, float>, nn::Conv2d<2, 2, nn::conv_opts{}, float>>
      strided;
  CHECK_THROWS_WITH_AS(strided.forward(Tensor<float>({1, 4, 4, 4}), ctx),
                       "rev::Affine<S,T>: S(x1) has extents [1, 2, 2, 2], expected [1, 2, 4, 4] (those of x2)",
                       shape_error);
  Affine<nn::Conv2d<2, 2, nn::conv_opts{}, float>, nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3, .stride = 2}, float>>
      strided_t;
  CHECK_THROWS_WITH_AS(strided_t.forward(Tensor<float>({1, 4, 4, 4}), ctx),
                       "rev::Affine<S,T>: T(x1) has extents [1, 2, 2, 2], expected [1, 2, 4, 4] (those of x2)",
                       shape_error);

  // Gradients of the wrong extents.
  context train{phase::train};
  typename decltype(block)::cache c;
  CHECK_THROWS_WITH_AS(block.backward(c, Tensor<float>({1, 4, 4, 4})),
                       "rev::Affine<S,T>: backward needs the cache of a forward", shape_error);
  auto y = block.forward(Tensor<float>({2, 4, 4, 4}), train, c);
  CHECK_THROWS_WITH_AS(block.backward(c, Tensor<float>({2, 4, 4, 3})),
                       "rev::Affine<S,T>: output gradient's half has extents [2, 2, 4, 3], expected [2, 2, 4, 4]",
                       shape_error);
  const Tensor<float> bad_dl({3});
  CHECK_THROWS_WITH_AS(block.backward(c, Tensor<float>(y.shape()), &bad_dl),
                       "rev::Affine<S,T>: log-det gradient has extents [3], expected [2]", shape_error);
  CHECK_THROWS_WITH_AS(block.backward_reversible(y, Tensor<float>({2, 4, 4, 3})),
                       "rev::Affine<S,T>: output gradient has extents [2, 4, 4, 3], expected [2, 4, 4, 4] (those of "
                       "the output)",
                       shape_error);
  block.set_log_det_grad(Tensor<float>({1, 2}));
  CHECK_THROWS_WITH_AS(block.backward_reversible(y, Tensor<float>(y.shape())),
                       "rev::Affine<S,T>: log-det gradient has extents [1, 2], expected [2]", shape_error);

  CHECK_THROWS_WITH_AS(affine_scale::exp_clamped{0.0},
                       "rev::affine_scale::exp_clamped: alpha must be positive and finite, got 0", value_error);
  CHECK_THROWS_AS(affine_scale::exp_clamped{-1.0}, value_error);
  CHECK_THROWS_AS(affine_scale::exp_clamped{std::numeric_limits<double>::infinity()}, value_error);
  CHECK_THROWS_AS(affine_scale::exp_clamped{std::nan("")}, value_error);
}
