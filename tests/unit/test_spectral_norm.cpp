// nn::SNConv2d: spectral normalisation of a convolution as an operator on the feature map
// (specs/revup-revnet.md §1.4), checked against the exact operator norm (SVD of the explicit
// operator matrix, float64), including the spec's pitfalls 1-4, and backward vs finite differences.
#include <Eigen/SVD>

#include <cmath>
#include <sstream>

#include "helpers.hpp"
#include "rev/core/rng.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/spectral_norm.hpp"

using namespace rev;

namespace {

// The explicit matrix of x -> conv2d(x; w) on inputs [1, C, H, W] (column j = the image of basis vector j).
Eigen::MatrixXd operator_matrix(const Tensor<double>& w, const ops::conv2d_params& p, index_t c, index_t h,
                                index_t wd) {
  const index_t n = c * h * wd;
  Tensor<double> basis({n, c, h, wd});
  for (index_t j = 0; j < n; ++j) basis.data()[j * n + j] = 1;
  const Tensor<double> y = ops::conv2d(basis, w, nullptr, p);
  const index_t m = y.numel() / n;
  Eigen::MatrixXd a(m, n);
  for (index_t j = 0; j < n; ++j)
    for (index_t i = 0; i < m; ++i) a(i, j) = y.data()[j * m + i];
  return a;
}

double largest_singular_value(const Eigen::MatrixXd& a) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(a);
  return svd.singularValues()(0);
}

// sigma_2 / sigma_1 of the operator, sigma_2 the largest singular value distinct from sigma_1 (a
// repeated sigma_1, as for a 1x1 conv, does not slow power iteration down): the error of the
// estimate of sigma shrinks like the 4k-th power of this ratio.
double spectral_gap_ratio(const Tensor<double>& w, const ops::conv2d_params& p, index_t c, index_t h, index_t wd) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(operator_matrix(w, p, c, h, wd));
  const auto& s = svd.singularValues();
  for (Eigen::Index i = 1; i < s.size(); ++i)
    if (s(i) < s(0) * (1 - 1e-9)) return s(i) / s(0);
  return 0;
}

// The exact operator norm of the convolution with weight w on [1, C, H, W].
double exact_norm(const Tensor<double>& w, const ops::conv2d_params& p, index_t c, index_t h, index_t wd) {
  return largest_singular_value(operator_matrix(w, p, c, h, wd));
}

template <class L>
void scale_weight(L& layer, double s) {
  ops::scale_(layer.weight.value, static_cast<typename L::value_type>(s));
}

double norm(const Tensor<double>& t) { return std::sqrt(ops::dot(t, t)); }

static_assert(Layer<nn::SNConv2d<2, 3>>);
static_assert(nn::SNConv2d<2, 3>::in_channels == 2 && nn::SNConv2d<2, 3>::out_channels == 3);

constexpr nn::conv_opts k3s1{.kernel = 3, .padding = 1};
constexpr nn::conv_opts k3s2{.kernel = 3, .stride = 2, .padding = 1};

// A random weight whose operator on [1, c, h, w] has sigma_2 / sigma_1 <= 0.98, so that 300 power
// steps converge to far below 1e-6 (0.98^1200 ~ 3e-11). Random convs sometimes have a nearly
// degenerate top pair (ratio > 0.99); power iteration then needs more steps, as it would in training.
Tensor<double> well_separated_weight(const Shape& shape, const ops::conv2d_params& p, index_t h, index_t w,
                                     std::uint64_t seed, double lo = -1, double hi = 1) {
  for (std::uint64_t s = seed;; ++s) {
    Tensor<double> t = test::random(shape, s, lo, hi);
    if (spectral_gap_ratio(t, p, shape[1] * p.groups, h, w) <= 0.98) return t;
  }
}

template <class L>
void persistent_matches_exact(index_t h, index_t w, std::uint64_t seed) {
  Generator g(seed);
  L sn(g);
  sn.weight.value = well_separated_weight(sn.weight.shape(), L::params, h, w, seed);
  const double exact = exact_norm(sn.weight.value, L::params, 2, h, w);
  sn.prepare(h, w, g);
  std::ostringstream trace;
  trace << L::name() << " on " << h << "x" << w << " (stride " << L::opts.stride << "): exact " << exact
        << ", sigma2/sigma1 " << spectral_gap_ratio(sn.weight.value, L::params, 2, h, w) << "; sigma/exact after";
  int done = 0;
  for (int k : {1, 5, 10, 30, 100, 300}) {
    sn.power_iterations(k - done, g);
    done = k;
    trace << " " << k << ": " << sn.sigma() / exact;
    CHECK(sn.sigma() <= exact * (1 + 1e-12));  // the estimate is a lower bound
  }
  MESSAGE(trace.str());
  CHECK(std::abs(sn.sigma() - exact) <= 1e-6 * exact);
}

}  // namespace

TEST_CASE("SNConv2d: persistent power iteration reaches the exact operator norm (float64, <= 300 steps)") {
  // 2 -> 3 channels, 3x3, padding 1: stride 1 on 5x5; stride 2 on 5x5 and on 6x6 (where a
  // transposed-conv adjoint would need output_padding = 1).
  persistent_matches_exact<nn::SNConv2d<2, 3, k3s1, double>>(5, 5, 11);
  persistent_matches_exact<nn::SNConv2d<2, 3, k3s2, double>>(5, 5, 12);
  persistent_matches_exact<nn::SNConv2d<2, 3, k3s2, double>>(6, 6, 13);
  // Groups and a 1x1 conv go through the same operator.
  {
    Generator g(14);
    nn::SNConv2d<4, 4, nn::conv_opts{.kernel = 3, .groups = 2}, double> sn(g);
    sn.weight.value = well_separated_weight(sn.weight.shape(), sn.params, 4, 4, 14);
    sn.prepare(4, 4, g);
    sn.power_iterations(300, g);
    const double exact = exact_norm(sn.weight.value, sn.params, 4, 4, 4);
    CHECK(std::abs(sn.sigma() - exact) <= 1e-6 * exact);
  }
  {
    Generator g(15);
    nn::SNConv2d<3, 5, nn::conv_opts{}, double> sn(g);
    sn.weight.value = well_separated_weight(sn.weight.shape(), sn.params, 3, 3, 15);
    sn.prepare(3, 3, g);
    sn.power_iterations(300, g);
    const double exact = exact_norm(sn.weight.value, sn.params, 3, 3, 3);
    CHECK(std::abs(sn.sigma() - exact) <= 1e-6 * exact);
  }
}

TEST_CASE("SNConv2d: one power step per train forward, none in eval or recompute") {
  using L = nn::SNConv2d<2, 3, k3s2, double>;
  Generator g1(21), g2(21);
  L a(g1), b(g2);  // the same weights
  auto x = test::random({2, 2, 6, 6}, 22);
  Generator ga(23), gb(23);
  a.prepare(6, 6, ga);
  b.prepare(6, 6, gb);
  context train{phase::train, &ga}, eval{phase::eval, &ga}, recompute{phase::recompute, &ga};
  for (int i = 0; i < 40; ++i) {
    a.forward(x, train);
    const Tensor<double> u = a.u().clone(), v = a.v().clone();
    a.forward(x, eval);
    a.forward(x, recompute);
    CHECK(test::max_abs_error(a.u(), u) == 0);
    CHECK(test::max_abs_error(a.v(), v) == 0);
  }
  b.power_iterations(40, gb);
  CHECK(test::max_abs_error(a.u(), b.u()) == 0);
  CHECK(test::max_abs_error(a.v(), b.v()) == 0);
  CHECK(a.sigma() == b.sigma());
}

TEST_CASE("SNConv2d: W_eff = W / max(1, sigma / c) has exact operator norm <= c (1 + 1e-6)") {
  for (int stride : {1, 2}) {
    CAPTURE(stride);
    auto run = [&]<nn::conv_opts O>() {
      Generator g(31);
      nn::SNConv2d<2, 3, O, double> sn(g);
      scale_weight(sn, 5.0);  // make sigma > c
      sn.prepare(5, 5, g);
      sn.power_iterations(300, g);
      auto x = test::random({1, 2, 5, 5}, 32);
      context train{phase::train, &g};
      const Tensor<double> y = sn.forward(x, train);
      CHECK(sn.sigma() > sn.coeff);
      const Tensor<double> w_eff = sn.effective_weight();
      const double exact = exact_norm(w_eff, sn.params, 2, 5, 5);
      MESSAGE("stride " << stride << ": ||W|| = " << exact_norm(sn.weight.value, sn.params, 2, 5, 5)
                        << ", exact ||W_eff|| = " << exact << ", lipschitz_bound() = " << sn.lipschitz_bound());
      CHECK(exact <= 0.9 * (1 + 1e-6));
      CHECK(exact >= 0.9 * (1 - 1e-6));
      CHECK(std::abs(sn.lipschitz_bound() - 0.9) < 1e-12);
      // The forward convolves with W_eff.
      CHECK(test::max_abs_error(y, ops::conv2d(x, w_eff, nullptr, sn.params)) < 1e-14);
    };
    if (stride == 1) run.template operator()<k3s1>();
    else run.template operator()<k3s2>();
  }
  // sigma < c: W is left unchanged.
  Generator g(33);
  nn::SNConv2d<2, 3, k3s1, double> sn(g, 100.0);
  sn.prepare(5, 5, g);
  sn.power_iterations(50, g);
  CHECK(test::max_abs_error(sn.effective_weight(), sn.weight.value) == 0);
  CHECK(sn.lipschitz_bound() == sn.sigma());
}

TEST_CASE("SNConv2d: one step from a fresh vector under-estimates sigma (pitfall 2)") {
  // Mean over fresh vectors of the one-step estimate: clearly below the truth, so c W / sigma_1
  // would not be a contraction. Persistence (above) is what makes the estimate converge.
  Generator g(41);
  nn::SNConv2d<4, 4, k3s1, double> sn(g);
  nn::init::kaiming_normal_fan_out(sn.weight.value, g);
  const double exact = exact_norm(sn.weight.value, sn.params, 4, 8, 8);
  double mean = 0;
  const int trials = 20;
  for (int t = 0; t < trials; ++t) {
    nn::SNConv2d<4, 4, k3s1, double> fresh(g);
    fresh.weight.value = sn.weight.value.clone();
    fresh.prepare(8, 8, g);
    fresh.power_iterations(1, g);
    mean += fresh.sigma() / exact / trials;
  }
  MESSAGE("one step from a fresh vector: mean sigma_1 / exact = " << mean);
  CHECK(mean < 0.97);
}

TEST_CASE("SNConv2d: the reshaped-matrix norm is not the operator norm (pitfall 1)") {
  Generator g(51);
  nn::SNConv2d<4, 4, k3s1, double> sn(g);
  nn::init::kaiming_normal_fan_out(sn.weight.value, g);
  // The C_out x (C_in k k) matrix of the weight.
  const Tensor<double>& w = sn.weight.value;
  Eigen::MatrixXd m(4, 36);
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 36; ++j) m(i, j) = w.data()[i * 36 + j];
  const double matrix = largest_singular_value(m);
  const double op = exact_norm(w, sn.params, 4, 8, 8);
  sn.prepare(8, 8, g);
  sn.power_iterations(300, g);
  MESSAGE("3x3 conv 4->4 on 8x8: reshaped-matrix norm " << matrix << ", operator norm " << op << ", SNConv2d sigma "
                                                        << sn.sigma());
  CHECK(op > 1.1 * matrix);  // normalising the matrix would leave an operator norm > c
  CHECK(std::abs(sn.sigma() - op) <= 1e-6 * op);
}

TEST_CASE("SNConv2d: zero-initialised weights do not kill the vectors (pitfall 3)") {
  Generator g(61);
  nn::SNConv2d<2, 3, k3s1, double> sn(g);
  sn.weight.value.fill(0);  // Fixup's last conv
  auto x = test::random({2, 2, 5, 5}, 62);
  context train{phase::train, &g};
  for (int i = 0; i < 5; ++i) {
    const Tensor<double> y = sn.forward(x, train);
    CHECK(test::max_abs_error(y, Tensor<double>(y.shape())) == 0);  // W_eff = 0: no normalisation, no NaN
    CHECK(sn.sigma() == 0);
    CHECK(std::abs(norm(sn.u()) - 1) < 1e-12);  // re-drawn, unit norm
    CHECK(std::abs(norm(sn.v()) - 1) < 1e-12);
  }
  // The weights grow: the iteration resumes from the re-drawn vectors and normalises them.
  sn.weight.value = well_separated_weight({3, 2, 3, 3}, sn.params, 5, 5, 63, -2, 2);
  for (int i = 0; i < 300; ++i) sn.forward(x, train);
  const double exact = exact_norm(sn.weight.value, sn.params, 2, 5, 5);
  CHECK(std::abs(sn.sigma() - exact) <= 1e-6 * exact);
  CHECK(exact_norm(sn.effective_weight(), sn.params, 2, 5, 5) <= 0.9 * (1 + 1e-6));
  // Non-finite vectors (e.g. after a NaN weight) are re-drawn as well.
  sn.weight.value.data()[0] = NAN;
  sn.forward(x, train);
  sn.weight.value.data()[0] = 1;
  sn.forward(x, train);
  CHECK(std::isfinite(norm(sn.u())));
  CHECK(std::isfinite(sn.sigma()));
}

TEST_CASE("SNConv2d: vectors follow the train-time spatial size (pitfall 4)") {
  Generator g(71);
  nn::SNConv2d<2, 3, k3s2, double> sn(g);
  context train{phase::train, &g}, eval{phase::eval, &g};
  sn.forward(test::random({1, 2, 6, 6}, 72), train);
  CHECK(sn.v().shape() == Shape{1, 2, 6, 6});
  CHECK(sn.u().shape() == Shape{1, 3, 3, 3});
  sn.forward(test::random({1, 2, 7, 9}, 73), train);  // re-made at the new size
  CHECK(sn.v().shape() == Shape{1, 2, 7, 9});
  CHECK(sn.u().shape() == Shape{1, 3, 4, 5});
  sn.forward(test::random({1, 2, 12, 12}, 74), eval);  // eval keeps the training probe
  CHECK(sn.v().shape() == Shape{1, 2, 7, 9});
  // The zero-padded operator norm grows with the size (the spec's pitfall 4).
  const double n4 = exact_norm(sn.weight.value, sn.params, 2, 4, 4),
               n8 = exact_norm(sn.weight.value, sn.params, 2, 8, 8);
  MESSAGE("exact norm of the same weight on 4x4: " << n4 << ", on 8x8: " << n8);
  CHECK(n8 >= n4);
}

TEST_CASE("SNConv2d: recompute reuses the train forward's W_eff bit for bit") {
  Generator g(81);
  nn::SNConv2d<3, 3, k3s1, float, cpu> sn(g);
  scale_weight(sn, 4.0);
  auto x = test::random<float>({2, 3, 5, 5}, 82);
  context train{phase::train, &g}, recompute{phase::recompute, &g};
  const Tensor<float> y = sn.forward(x, train);
  const double sigma = sn.sigma();
  CHECK(sn.sigma() > sn.coeff);
  const Tensor<float> w_saved = sn.weight.value.clone();
  ops::scale_(sn.weight.value, 2.0f);  // even if W moved, recompute replays the forward's W_eff
  CHECK(test::max_abs_error(sn.forward(x, recompute), y) == 0);
  CHECK(sn.sigma() == sigma);
  sn.weight.value = w_saved;
  // Eval computes sigma from the current vectors: the same numbers as the train forward.
  context eval{phase::eval, &g};
  CHECK(test::max_abs_error(sn.forward(x, eval), y) == 0);
}

TEST_CASE("SNConv2d: backward equals finite differences, including the path through sigma (float64)") {
  auto x = test::random({2, 2, 5, 5}, 91);
  auto check_layer = [&](auto& sn, phase ph, double rtol, const char* what) {
    auto r = testing::check_gradients(sn, x, {.rtol = rtol, .mode = ph});
    CAPTURE(what);
    CHECK_MESSAGE(r.ok(), r.str());
  };
  {  // train phase with the power step disabled: u, v are the same in every evaluation.
    Generator g(92);
    nn::SNConv2d<2, 3, nn::conv_opts{.kernel = 3, .bias = true}, double> sn(g);
    scale_weight(sn, 4.0);
    sn.prepare(5, 5, g);
    sn.power_iterations(3, g);  // not converged: the sigma path is exact for any u, v
    sn.update_vectors = false;
    context train{phase::train, &g};
    sn.forward(x, train);
    CHECK(sn.sigma() > sn.coeff);
    check_layer(sn, phase::train, 1e-6, "train, frozen vectors, stride 1");
  }
  {
    Generator g(93);
    nn::SNConv2d<2, 3, nn::conv_opts{.kernel = 3, .stride = 2}, double> sn(g);
    scale_weight(sn, 4.0);
    sn.prepare(5, 5, g);
    sn.update_vectors = false;
    check_layer(sn, phase::train, 1e-6, "train, frozen vectors, stride 2");
    check_layer(sn, phase::eval, 1e-6, "eval");
  }
  {  // the normalisation inactive (sigma < c): W_eff = W.
    Generator g(94);
    nn::SNConv2d<2, 3, k3s1, double> sn(g, 50.0);
    sn.prepare(5, 5, g);
    check_layer(sn, phase::eval, 1e-6, "inactive");
  }
  {  // train phase WITH the power step: check_gradients restores u, v before every evaluation,
     // but the step then depends on W. At convergence u, v are stationary points of sigma, so
     // the hand-written gradient (u, v held constant) agrees to second order.
    Generator g(95);
    nn::SNConv2d<2, 3, k3s1, double> sn(g);
    scale_weight(sn, 4.0);
    sn.prepare(5, 5, g);
    sn.power_iterations(300, g);
    check_layer(sn, phase::train, 1e-5, "train, converged, with power step");
  }
}

TEST_CASE("SNConv2d: names, options and errors") {
  Generator g(101);
  nn::SNConv2d<2, 3, nn::conv_opts{.kernel = 3, .bias = true}> sn(g);
  std::string names;
  sn.for_each_parameter([&](const std::string& n, auto&) { names += n + " "; }, "conv1");
  sn.for_each_buffer([&](const std::string& n, auto&) { names += n + " "; }, "conv1");
  CHECK(names == "conv1.weight_orig conv1.bias conv1.weight_u conv1.weight_v ");
  CHECK(sn.weight.shape() == Shape{3, 2, 3, 3});
  CHECK(sn.u().empty());

  context train{phase::train, &g};
  CHECK_THROWS_AS(sn.forward(test::random<float>({1, 3, 5, 5}, 102), train), shape_error);
  CHECK_THROWS_AS(sn.forward(test::random<float>({2, 5, 5}, 103), train), shape_error);
  CHECK_THROWS_AS(sn.power_iterations(1), value_error);  // no vectors yet
  CHECK_THROWS_AS(sn.prepare(0, 5), shape_error);
  sn.coeff = 0;
  CHECK_THROWS_AS(sn.forward(test::random<float>({1, 2, 5, 5}, 104), train), value_error);
  sn.coeff = 0.9;
  CHECK_NOTHROW(sn.forward(test::random<float>({1, 2, 5, 5}, 104), train));
  try {
    sn.forward(test::random<float>({1, 4, 5, 5}, 105), train);
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("rev::nn::SNConv2d<2,3>") != std::string::npos);
  }
}
