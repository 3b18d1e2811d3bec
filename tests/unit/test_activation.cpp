#include "helpers.hpp"
#include "rev/nn/activation.hpp"

using namespace rev;

namespace {

// PyTorch 1.13 is not consistent with itself exactly at x = +-3: hard-swish's derivative at 3
// is 1.5 in its scalar kernel and 1.0 in its vectorised one. rev follows the scalar (documented)
// convention, so the comparison leaves the points x = +-3 out; the test case "PyTorch's
// derivative conventions" checks them. PyTorch's float64 hard-sigmoid derivative uses the float
// constant 1/6 (error 5e-9), hence the looser gradient tolerance there.
template <class A>
void check_against_torch(const char* name, double grad_tol = 1e-14) {
  INFO(std::string(name));
  auto ref = test::torch_reference("activation");
  auto x = ref.tensor<double>("x"), dout = ref.tensor<double>("dout");
  auto dx = ops::activation_backward<A>(x, dout), dx_ref = ref.tensor<double>(std::string(name) + ".dx");
  for (index_t i = 0; i < x.numel(); ++i)
    if (std::abs(x.data()[i]) == 3) dx.data()[i] = dx_ref.data()[i] = 0;
  CHECK(test::max_abs_error(ops::activation<A>(x), ref.tensor<double>(std::string(name) + ".y")) < 1e-14);
  CHECK(test::max_abs_error(dx, dx_ref) < grad_tol);
  // float follows the same definitions to float rounding.
  auto xf = ops::cast<float>(x);
  CHECK(test::max_rel_error(ops::activation<A>(xf), ref.tensor<double>(std::string(name) + ".y")) < 1e-6);
}

template <class A>
void check_finite_differences(const char* name) {
  INFO(std::string(name));
  // Away from the kinks at 0 and +-3, where one-sided derivatives differ.
  auto x = test::random({2, 3, 4, 5}, 11, -5, 5);
  for (double& v : x) {
    for (double kink : {-3.0, 0.0, 3.0})
      if (std::abs(v - kink) < 1e-3) v += 2e-3;
  }
  nn::Activation<A, double> layer;
  auto r = testing::check_gradients(layer, x);
  CHECK_MESSAGE(r.ok(), r.str());
}

}  // namespace

TEST_CASE("activations: forward matches the definitions") {
  using namespace ops::act;
  CHECK(relu::value(-1.0) == 0.0);
  CHECK(relu::value(2.0) == 2.0);
  CHECK(hardswish::value(-3.0) == 0.0);
  CHECK(hardswish::value(1.0) == doctest::Approx(1.0 * 4 / 6));
  CHECK(hardswish::value(4.0) == 4.0);
  CHECK(hardsigmoid::value(0.0) == 0.5);
  CHECK(hardsigmoid::value(5.0) == 1.0);
  CHECK(gelu::value(1.0) == doctest::Approx(0.8413447460685429));
  CHECK(sigmoid::value(-800.0) == 0.0);  // no overflow for large |x|
  CHECK(sigmoid::value(800.0) == 1.0);
  CHECK(silu::value(2.0) == doctest::Approx(2.0 / (1 + std::exp(-2.0))));
}

TEST_CASE("activations: float GELU (vectorised erf, A&S 7.1.26) stays within a few ulps of the double definition") {
  const index_t n = 200001;
  Tensor<float> x({n});
  for (index_t i = 0; i < n; ++i) x.data()[i] = static_cast<float>(-10.0 + 20.0 * static_cast<double>(i) / (n - 1));
  const Tensor<double> xd = ops::cast<double>(x), ones = Tensor<double>::full({n}, 1.0);
  const Tensor<double> y = ops::gelu(xd), dy = ops::activation_backward<ops::act::gelu>(xd, ones);
  const Tensor<float> yf = ops::gelu(x), dyf = ops::activation_backward<ops::act::gelu>(x, ops::cast<float>(ones));
  double forward = 0, backward = 0;
  for (index_t i = 0; i < n; ++i) {
    forward = std::max(forward, std::abs(yf.data()[i] - y.data()[i]) / std::max(1.0, std::abs(y.data()[i])));
    backward = std::max(backward, std::abs(dyf.data()[i] - dy.data()[i]));
  }
  MESSAGE("float GELU on [-10, 10]: forward ", forward, ", derivative ", backward);
  CHECK(forward <= 5e-7);
  CHECK(backward <= 5e-7);
}

TEST_CASE("activations: PyTorch's derivative conventions at the kinks") {
  using namespace ops::act;
  CHECK(relu::derivative(0.0) == 0.0);
  CHECK(hardswish::derivative(-3.0) == -0.5);
  CHECK(hardswish::derivative(3.0) == 1.5);
  CHECK(hardswish::derivative(3.5) == 1.0);
  CHECK(hardsigmoid::derivative(-3.0) == 0.0);
  CHECK(hardsigmoid::derivative(3.0) == 0.0);
  CHECK(hardsigmoid::derivative(2.9) == doctest::Approx(1.0 / 6));
}

TEST_CASE("activations: forward and backward equal PyTorch's") {
  using namespace ops::act;
  check_against_torch<relu>("relu");
  check_against_torch<hardswish>("hardswish");
  check_against_torch<hardsigmoid>("hardsigmoid", 1e-7);
  check_against_torch<gelu>("gelu");
  check_against_torch<sigmoid>("sigmoid");
  check_against_torch<silu>("silu");
}

TEST_CASE("activations: backward equals finite differences") {
  using namespace ops::act;
  check_finite_differences<relu>("relu");
  check_finite_differences<hardswish>("hardswish");
  check_finite_differences<hardsigmoid>("hardsigmoid");
  check_finite_differences<gelu>("gelu");
  check_finite_differences<sigmoid>("sigmoid");
  check_finite_differences<silu>("silu");
}

namespace {
struct wrong_square {
  static double value(double x) { return x * x; }
  static double derivative(double x) { return x; }  // should be 2x
};
}  // namespace

TEST_CASE("activations: the gradient checker notices a wrong backward") {
  using wrong = wrong_square;
  nn::Activation<wrong, double> layer;
  auto r = testing::check_gradients(layer, test::random({3, 4}, 5));
  CHECK_FALSE(r.ok());
}

TEST_CASE("elementwise ops reject mismatched extents") {
  Tensor<float> a({2, 3}), b({3, 2});
  CHECK_THROWS_AS(ops::add(a, b), shape_error);
  CHECK_THROWS_WITH_AS(ops::activation_backward<ops::act::relu>(a, b),
                       "rev::ops::activation_backward: second operand has extents [3, 2], expected [2, 3]",
                       shape_error);
}
