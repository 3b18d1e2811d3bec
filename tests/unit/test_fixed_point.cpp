// rev::FixedPointResidual<G>: y = x + g(x) with g = SNConv -> ReLU -> SNConv (c = 0.9), inverted
// by the fixed-point iteration (specs/revup-revnet.md §1.5-1.6): convergence vs iterations
// against the bound ||x - x_N|| <= Lip(g)^N ||g(x)||, the tolerance stop, Stored-vs-Reversible
// gradients, evaluation counts, phases and errors.
#include <Eigen/SVD>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "coupling_helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/fixed_point.hpp"

using namespace rev;

namespace {

template <class T>
using SN = nn::SNConv2d<4, 4, nn::conv_opts{.kernel = 3}, T>;
// The paper's basic branch without a ReLU at its end (spec §1.2 reading (B)) ...
template <class T>
using BranchB = nn::Sequential<SN<T>, nn::ReLU<T>, SN<T>>;
// ... and with it (reading (A)).
template <class T>
using BranchA = nn::Sequential<SN<T>, nn::ReLU<T>, SN<T>, nn::ReLU<T>>;
template <class T>
using Block = FixedPointResidual<BranchB<T>>;

static_assert(Coupling<Block<float>>);
static_assert(Coupling<Block<double>>);
static_assert(Layer<Block<float>>);
static_assert(Block<float>::in_channels == 4 && Block<float>::out_channels == 4);
static_assert(KeepsChannels<BranchB<float>>);
static_assert(KeepsChannels<nn::ReLU<float>>);  // channel-agnostic g
static_assert(!KeepsChannels<nn::SNConv2d<4, 8>>);
static_assert(!KeepsChannels<nn::Sequential<nn::SNConv2d<4, 8>, nn::ReLU<float>>>);

// The exact operator norm of x -> conv2d(x; w) on [1, c, h, w] (SVD of the explicit matrix).
double exact_norm(const Tensor<double>& w, const ops::conv2d_params& p, index_t c, index_t h, index_t wd) {
  const index_t n = c * h * wd;
  Tensor<double> basis({n, c, h, wd});
  for (index_t j = 0; j < n; ++j) basis.data()[j * n + j] = 1;
  const Tensor<double> y = ops::conv2d(basis, w, nullptr, p);
  const index_t m = y.numel() / n;
  Eigen::MatrixXd a(m, n);
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < m; ++i) a(i, j) = y.data()[j * m + i];
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(a);
  return svd.singularValues()(0);
}

template <class T>
double norm(const Tensor<T>& t) {
  return std::sqrt(ops::dot(t, t));
}
template <class T, class U>
double rel_error(const Tensor<T>& a, const Tensor<U>& b) {
  double d = 0, r = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    const double e = static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i]);
    d += e * e;
    r += static_cast<double>(b.data()[i]) * b.data()[i];
  }
  return std::sqrt(d / r);
}

// Uniform weights in [-1, 1) (operator norm ~3, so c = 0.9 is active), estimates warmed up by
// 1000 power steps on h x w maps (the estimate converges at a rate set by the operator's spectral
// gap, so a few random weights need more than 300 steps to reach 1e-6).
template <class S>
void init_sn(S& sn, std::uint64_t seed, index_t h, index_t w) {
  using T = typename S::value_type;
  sn.weight.value = test::random<T>(sn.weight.shape(), seed);
  Generator g(seed + 1000);
  sn.prepare(h, w, g);
  sn.power_iterations(1000, g);
}

template <class Blk>
void init_block(Blk& b, std::uint64_t seed, index_t h, index_t w) {
  init_sn(b.g().template get<0>(), seed, h, w);
  init_sn(b.g().template get<2>(), seed + 1, h, w);
}

// Lip(g) <= ||W1_eff|| ||W2_eff|| (ReLU is 1-Lipschitz), exactly, after a forward has set sigma.
template <class Blk>
double exact_lipschitz(Blk& b, index_t h, index_t w) {
  double lip = 1;
  auto one = [&](auto& sn) { lip *= exact_norm(ops::cast<double>(sn.effective_weight()), sn.params, 4, h, w); };
  one(b.g().template get<0>());
  one(b.g().template get<2>());
  return lip;
}

}  // namespace

TEST_CASE("FixedPointResidual: forward is x + g(x)") {
  Block<double> b;
  init_block(b, 1, 6, 6);
  auto x = test::random({2, 4, 6, 6}, 2);
  context eval{phase::eval};
  auto y = b.forward(x, eval);
  CHECK(test::max_abs_error(y, ops::add(x, b.g().forward(x, eval))) == 0);
}

TEST_CASE("FixedPointResidual: inverse error vs iterations, c = 0.9, within the bound Lip^N ||g(x)||") {
  const index_t h = 8, w = 8;
  auto x64 = test::random({2, 4, h, w}, 11);
  auto x32 = ops::cast<float>(x64);
  std::ostringstream table;
  table << "relative error ||x - x_N|| / ||x|| (2 x 4 x 8 x 8, random SN weights, c = 0.9):\n"
        << "  branch         N:";
  const int ns[] = {1, 2, 3, 5, 10, 20, 30, 50};
  for (int n : ns) table << "  " << n;
  table << "\n";

  auto run = [&]<template <class> class Branch>(const char* label) {
    FixedPointResidual<Branch<double>> b64;
    FixedPointResidual<Branch<float>> b32;
    init_block(b64, 21, h, w);
    init_block(b32, 21, h, w);
    context eval{phase::eval};
    const auto y64 = b64.forward(x64, eval);
    const auto y32 = b32.forward(x32, eval);
    const double lip = exact_lipschitz(b64, h, w);
    const double gx = norm(ops::sub(y64, x64)), nx = norm(x64);
    CHECK(lip <= 0.81 * (1 + 1e-4));
    std::string row64 = std::string("  ") + label + " float64:", row32 = std::string("  ") + label + " float32:",
                rowb = std::string("  ") + label + " bound  :";
    for (int n : ns) {
      CAPTURE(n);
      b64.iterations = b32.iterations = n;
      b64.tolerance = b32.tolerance = 0;
      const double e64 = rel_error(b64.inverse(y64, eval), x64);
      const double e32 = rel_error(b32.inverse(y32, eval), x64);
      CHECK(b64.last_report().evaluations == n);
      const double bound = std::pow(lip, n) * gx / nx;
      CHECK(e64 <= bound * (1 + 1e-6) + 1e-14);  // ||x - x_N|| <= Lip(g)^N ||g(x)||
      if (n >= 30) {                             // the documented N for c = 0.9
        CHECK(e64 <= 1e-6);
        CHECK(e32 <= 1e-6);
      }
      if (n >= 50) CHECK(e64 <= 1e-10);
      char buf[3][32];
      std::snprintf(buf[0], 32, " %.1e", e64);
      std::snprintf(buf[1], 32, " %.1e", e32);
      std::snprintf(buf[2], 32, " %.1e", bound);
      row64 += buf[0], row32 += buf[1], rowb += buf[2];
    }
    table << row64 << "\n"
          << row32 << "\n"
          << rowb << "  (Lip(g) = " << lip << ", ||g(x)||/||x|| = " << gx / nx << ")\n";
  };
  run.template operator()<BranchB>("SN-ReLU-SN     ");
  run.template operator()<BranchA>("SN-ReLU-SN-ReLU");
  MESSAGE(table.str());
}

TEST_CASE("FixedPointResidual: tolerance-based stop") {
  Block<double> b;
  init_block(b, 31, 6, 6);
  auto x = test::random({2, 4, 6, 6}, 32);
  context eval{phase::eval};
  auto y = b.forward(x, eval);
  b.iterations = 200;
  b.tolerance = 1e-10;
  auto xr = b.inverse(y, eval);
  const auto report = b.last_report();
  MESSAGE("tolerance 1e-10: " << report.evaluations << " evaluations, last step " << report.last_step << ", error "
                              << rel_error(xr, x));
  CHECK(report.converged);
  CHECK(report.evaluations < 200);
  CHECK(report.last_step <= 1e-10);
  // error <= Lip / (1 - Lip) * step (Lip <= 0.81), relative to ||x||
  CHECK(rel_error(xr, x) <= 0.81 / 0.19 * 1e-10 * 1.01);
  // It stopped at the first iteration whose step was <= tolerance.
  b.iterations = report.evaluations - 1;
  b.inverse(y, eval);
  CHECK(b.last_report().last_step > 1e-10);
  CHECK_FALSE(b.last_report().converged);
  // tolerance 0: always N evaluations.
  b.iterations = 17;
  b.tolerance = 0;
  b.inverse(y, eval);
  CHECK(b.last_report().evaluations == 17);
  // The float32 default (1e-6) stops well before 50 with an error at the float32 floor.
  Block<float> f;
  init_block(f, 31, 6, 6);
  auto x32 = ops::cast<float>(x);
  auto y32 = f.forward(x32, eval);
  CHECK(f.iterations == 50);
  CHECK(f.tolerance == 1e-6);
  auto xr32 = f.inverse(y32, eval);
  MESSAGE("float32 default: " << f.last_report().evaluations << " evaluations, last step " << f.last_report().last_step
                              << ", error " << rel_error(xr32, x));
  CHECK(f.last_report().converged);
  CHECK(rel_error(xr32, x) <= 1e-6);
}

TEST_CASE("FixedPointResidual: check_invertible (both directions)") {
  Block<double> b;
  init_block(b, 41, 5, 5);
  auto r = testing::check_invertible(b, test::random({2, 4, 5, 5}, 42));
  CHECK_MESSAGE(r.ok(1e-10), r.str());
  Block<float> f;
  init_block(f, 41, 5, 5);
  auto rf = testing::check_invertible(f, test::random<float>({2, 4, 5, 5}, 42));
  CHECK_MESSAGE(rf.ok(1e-5), rf.str());
}

TEST_CASE("FixedPointResidual: Stored and Reversible gradients agree once the iteration has converged") {
  {  // float32, the defaults (N <= 50, tolerance 1e-6)
    Block<float> b;
    init_block(b, 51, 6, 6);
    auto r = testing::check_reversible_gradients(b, test::random<float>({2, 4, 6, 6}, 52));
    MESSAGE("float32, defaults: " << b.last_report().evaluations << " evaluations, worst relative gradient error "
                                  << r.worst_relative());
    CHECK_MESSAGE(r.ok(1e-5), r.str());
  }
  {  // float64
    Block<double> b;
    init_block(b, 51, 6, 6);
    b.iterations = 100;
    b.tolerance = 1e-14;
    auto r = testing::check_reversible_gradients(b, test::random({2, 4, 6, 6}, 52));
    CHECK_MESSAGE(r.ok(1e-10), r.str());
  }
  {  // a chain of three blocks, float32: errors do not compound once converged
    Chain<Block<float>, Block<float>, Block<float>> net;
    init_block(net.get<0>(), 53, 6, 6);
    init_block(net.get<1>(), 54, 6, 6);
    init_block(net.get<2>(), 55, 6, 6);
    auto r = testing::check_reversible_gradients(net, test::random<float>({2, 4, 6, 6}, 56));
    CHECK_MESSAGE(r.ok(1e-5), r.str());
  }
}

TEST_CASE("FixedPointResidual: N = 1 (RevUp's training setting) gives approximate gradients") {
  // The gradients of the block at x^ = y - g(y) instead of x: documented, not exact.
  std::ostringstream table;
  table << "Stored-vs-Reversible gradients, worst max-relative error over input and weights (float64):";
  for (int n : {1, 2, 3, 5, 10, 20}) {
    Block<double> b;
    init_block(b, 61, 6, 6);
    b.iterations = n;
    b.tolerance = 0;
    auto r = testing::check_reversible_gradients(b, test::random({2, 4, 6, 6}, 62));
    table << " N = " << n << ": " << r.worst_relative() << ";";
    if (n == 1) {
      CHECK(r.worst_relative() > 1e-6);  // not exact
      CHECK(r.worst_relative() < 0.5);   // but a usable approximation
    }
    if (n == 20) CHECK(r.ok(1e-9));
  }
  MESSAGE(table.str());
}

TEST_CASE("FixedPointResidual: backward equals finite differences (Stored mode, float64)") {
  Block<double> b;
  init_block(b, 71, 4, 4);
  b.g().get<0>().update_vectors = false;  // u, v fixed across the finite-difference evaluations
  b.g().get<2>().update_vectors = false;
  auto r = testing::check_gradients(b, test::random({1, 4, 4, 4}, 72), {.rtol = 1e-6});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("FixedPointResidual: N evaluations of g for the inverse, N + 1 for the reversible backward") {
  using G = test::Counted<BranchB<float>>;
  FixedPointResidual<G> b;
  init_block(b, 81, 5, 5);
  b.iterations = 7;
  b.tolerance = 0;
  context train{phase::train};
  auto x = test::random<float>({2, 4, 5, 5}, 82);
  G::evaluations = 0;
  auto y = b.forward(x, train);
  CHECK(G::evaluations == 1);
  G::evaluations = 0;
  b.inverse(y, train);
  CHECK(G::evaluations == 7);
  G::evaluations = 0;
  b.backward_reversible(y, test::random<float>(y.shape(), 83));
  CHECK(G::evaluations == 8);
}

TEST_CASE("FixedPointResidual: the reconstruction has no side effects and equals inverse()") {
  Block<float> b;
  init_block(b, 91, 5, 5);
  context train{phase::train};
  auto x = test::random<float>({2, 4, 5, 5}, 92);
  auto y = b.forward(x, train);  // one power step per SN layer
  auto& sn = b.g().get<0>();
  const Tensor<float> u = sn.u().clone(), v = sn.v().clone();
  auto r = b.backward_reversible(y, test::random<float>(y.shape(), 93));
  const auto report = b.last_report();
  auto xi = b.inverse(y, train);               // a train context is evaluated as recompute
  CHECK(test::max_abs_error(sn.u(), u) == 0);  // no power steps in the iteration
  CHECK(test::max_abs_error(sn.v(), v) == 0);
  CHECK(test::max_abs_error(r.x, xi) == 0);
  CHECK(b.last_report().evaluations == report.evaluations);
  CHECK(rel_error(r.x, x) <= 1e-6);
}

TEST_CASE("FixedPointResidual: parameter names are g's") {
  Block<float> b;
  std::string names;
  b.for_each_parameter([&](const std::string& n, auto&) { names += n + " "; }, "layer1.0");
  b.for_each_buffer([&](const std::string& n, auto&) { names += n + " "; }, "layer1.0");
  CHECK(names ==
        "layer1.0.0.weight_orig layer1.0.2.weight_orig layer1.0.0.weight_u layer1.0.0.weight_v layer1.0.2.weight_u "
        "layer1.0.2.weight_v ");
}

TEST_CASE("FixedPointResidual: shape and value errors") {
  context eval{phase::eval};
  {  // a strided g keeps the channels but not the extents
    FixedPointResidual<nn::SNConv2d<4, 4, nn::conv_opts{.kernel = 3, .stride = 2}, double>> b;
    try {
      b.forward(test::random({1, 4, 6, 6}, 101), eval);
      FAIL("expected a shape_error");
    } catch (const shape_error& e) {
      const std::string m = e.what();
      CHECK(m.find("rev::FixedPointResidual<G>") != std::string::npos);
      CHECK(m.find("[1, 4, 3, 3]") != std::string::npos);
    }
    CHECK_THROWS_AS(b.inverse(test::random({1, 4, 6, 6}, 102), eval), shape_error);
  }
  Block<double> b;
  init_block(b, 103, 5, 5);
  CHECK_THROWS_AS(b.forward(test::random({1, 3, 5, 5}, 104), eval), shape_error);
  CHECK_THROWS_AS(b.inverse(test::random({1, 5, 5, 5}, 105), eval), shape_error);
  auto y = b.forward(test::random({1, 4, 5, 5}, 106), eval);
  CHECK_THROWS_AS(b.backward_reversible(y, test::random({1, 4, 5, 4}, 107)), shape_error);
  b.iterations = 0;
  CHECK_THROWS_AS(b.inverse(y, eval), value_error);
}
