// RevBiFPN variants other than S0: channel stacking and its gradient folding (S1, C_in = 4) and stochastic depth, its
// schedule and its replay in the reversible backward (S3).
#include "helpers.hpp"
#include "rev/models/revbifpn.hpp"

using namespace rev;
using models::RevBiFPN;
namespace rb = models::revbifpn;

// The models rebind as a whole: rev::model<RevBiFPN<S0>, double> is RevBiFPN<S0, double>.
static_assert(std::same_as<model<models::RevBiFPN<models::revbifpn::S0>, double>,
                           models::RevBiFPN<models::revbifpn::S0, double>>);

TEST_CASE("RevBiFPN-S1: image gradient through the stacked channels matches finite differences (float64)") {
  RevBiFPN<rb::S1, double> net(0.0);
  CHECK(parameter_count(net) == 5112300);
  const Tensor<double> image = test::random({2, 3, 32, 32}, 21);
  const Tensor<double> w = test::random({2, 1000}, 22);
  const Tensor<double> v = test::random({2, 3, 32, 32}, 23);
  context eval{phase::eval};
  RevBiFPN<rb::S1, double>::cache tape{mode::stored};
  net.forward(image, eval, tape);
  const double analytic = ops::dot(net.backward(tape, w), v);
  const double eps = 1e-7;
  auto loss = [&](double t) {
    Tensor<double> x = image.clone();
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] += t * v.data()[i];
    return ops::dot(net.forward(x, eval), w);
  };
  const double numeric = (loss(eps) - loss(-eps)) / (2 * eps);
  MESSAGE("S1 <d loss / d image, v>: analytic ", analytic, ", numeric ", numeric);
  CHECK(std::abs(analytic - numeric) <= 1e-4 * std::abs(numeric));
  RevBiFPN<rb::S1, double>::cache reversible{mode::reversible};
  CHECK_THROWS_WITH_AS(net.forward(image, eval, reversible), doctest::Contains("needs a train-phase context"),
                       value_error);
}

TEST_CASE("RevBiFPN-S3: stochastic depth p * l / L in layer l, set at run time on every path that drops") {
  const Generator kept = default_generator();  // the next test's weights stay those it was tuned with
  RevBiFPN<rb::S3> net(0.0);
  default_generator() = kept;
  // Blocks 3(l-1)+1 .. 3l of the backbone are layer l's two RevBlock groups and its silo; S3 has
  // L = 6 layers. Paths that drop: both MBConvs of each RevBlock, every G_{i->j}, and the
  // F_{i->j} except those into the level a growing silo (l = 1, 2, 3) creates: per layer
  // 4 + 0 + 1, 8 + 1 + 3, 12 + 3 + 6, then 16 + 6 + 6 three times.
  auto rates = [&](double p) {
    int paths = 0;
    for_each_index<18>([&](auto k) {
      const double expected = p * static_cast<double>(k / 3 + 1) / 6;
      apply(net.backbone().template get<k + 1>(), [&](nn::DropPath<float>& d) {
        ++paths;
        CHECK(d.p() == doctest::Approx(expected).epsilon(1e-12));
      });
    });
    return paths;
  };
  CHECK(rates(0.05) == 5 + 12 + 21 + 3 * 28);
  net.set_stochastic_depth(0.2);
  CHECK(rates(0.2) == 122);
  net.set_stochastic_depth(0.05);
}

TEST_CASE("RevBiFPN-S3: stored and reversible training steps agree with stochastic depth on") {
  const Tensor<float> image = test::random<float>({2, 3, 64, 64}, 31);
  const Tensor<float> dlogits = test::random<float>({2, 1000}, 32);
  RevBiFPN<rb::S3> a(0.0), b(0.0);
  b.load(a.state_dict());
  Generator ga(5), gb(5);
  context ca{phase::train, &ga}, cb{phase::train, &gb};
  RevBiFPN<rb::S3>::cache ta{mode::stored}, tb{mode::reversible};
  CHECK(test::max_abs_error(a.forward(image, ca, ta), b.forward(image, cb, tb)) == 0);
  CHECK(test::max_rel_error(b.backward(tb, dlogits), a.backward(ta, dlogits)) < 1e-3);
  std::vector<Tensor<float>> grads;
  a.for_each_parameter([&](const std::string&, Param<float>& p) { grads.push_back(p.grad); });
  std::size_t i = 0;
  double worst = 0;
  b.for_each_parameter([&](const std::string& k, Param<float>& p) {
    const Tensor<float>& ref = grads[i++];
    const double err =
        test::max_abs_error(p.grad, ref) / std::max(1e-3, test::max_abs_error(ref, Tensor<float>(ref.shape())));
    INFO(k);
    CHECK(err < 5e-3);  // float32 reconstruction error of 6 layers at random init
    worst = std::max(worst, err);
  });
  MESSAGE("S3 reversible vs stored, worst parameter gradient ", worst);
}
