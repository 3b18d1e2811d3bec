#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"

using namespace rev;

namespace {

Tensor<double> naive_softmax(const Tensor<double>& x) {
  Tensor<double> y(x.shape());
  const index_t K = x.size(-1);
  for (index_t r = 0; r < x.numel() / K; ++r) {
    double m = -INFINITY, s = 0;
    for (index_t k = 0; k < K; ++k) m = std::max(m, x.data()[r * K + k]);
    for (index_t k = 0; k < K; ++k) s += std::exp(x.data()[r * K + k] - m);
    for (index_t k = 0; k < K; ++k) y.data()[r * K + k] = std::exp(x.data()[r * K + k] - m) / s;
  }
  return y;
}

// -sum_k q_k log p_k averaged over the batch, with q = (1 - s) onehot + s / K.
double naive_cross_entropy(const Tensor<double>& z, const std::vector<int>& t, double s) {
  const Tensor<double> p = naive_softmax(z);
  const index_t N = z.size(0), K = z.size(1);
  double loss = 0;
  for (index_t n = 0; n < N; ++n)
    for (index_t k = 0; k < K; ++k) {
      const double q = s / static_cast<double>(K) + (k == t[static_cast<std::size_t>(n)] ? 1 - s : 0);
      loss -= q * std::log(p(n, k));
    }
  return loss / static_cast<double>(N);
}

std::vector<int> to_targets(const Tensor<double>& t) { return std::vector<int>(t.begin(), t.end()); }

}  // namespace

TEST_CASE("softmax matches a naive implementation and does not overflow") {
  for (const Shape& s : {Shape{4, 7}, Shape{2, 3, 1}, Shape{9}, Shape{3, 2, 5}, Shape{5, 1000}}) {
    INFO("extents ", s);
    const auto x = test::random(s, 1, -5, 5);
    CHECK(test::max_rel_error(ops::softmax(x), naive_softmax(x)) < 1e-14);
    CHECK(test::max_rel_error(ops::softmax(ops::cast<float>(x)), naive_softmax(x)) < 1e-6);
  }
  const auto big = Tensor<double>::from({2, 3}, {1000, 1001, 999, -1000, -1002, -1001});
  const auto y = ops::softmax(big);
  CHECK(test::max_rel_error(y, naive_softmax(big)) < 1e-14);
  CHECK(y(0, 1) == doctest::Approx(1 / (1 + std::exp(-1.0) + std::exp(-2.0))));
  const auto yf = ops::softmax(ops::cast<float>(big));
  for (float v : yf) CHECK(std::isfinite(v));
}

TEST_CASE("float softmax: exp accurate over its whole range; masked entries are exactly 0") {
  // Rows {0, t1..t7}: y_j / y_0 = exp(t_j) with t_j in [-90, 0].
  const index_t rows = 2000;
  Tensor<float> x({rows, 8});
  for (index_t r = 0; r < rows; ++r) {
    x(r, 0) = 0;
    for (index_t j = 1; j < 8; ++j) x(r, j) = -90.0f * static_cast<float>(r * 7 + j) / static_cast<float>(rows * 7);
  }
  const auto y = ops::softmax(x);
  double worst = 0;
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 1; j < 8; ++j) {
      const double t = x(r, j), ratio = static_cast<double>(y(r, j)) / static_cast<double>(y(r, 0));
      if (t > -87.3) worst = std::max(worst, std::abs(ratio - std::exp(t)) / std::exp(t));
      else if (t < -87.34) CHECK(y(r, j) == 0);
    }
  CHECK(worst < 4e-7);
  // Odd extents (vector body and scalar tail), -inf entries and NaN propagation.
  Tensor<float> m = Tensor<float>::from({2, 7}, {1, -INFINITY, 2, 3, -INFINITY, 0.5f, -1, 1, 2, NAN, 0, 0, 0, 0});
  const auto ym = ops::softmax(m);
  CHECK(ym(0, 1) == 0);
  CHECK(ym(0, 4) == 0);
  CHECK(ym(0, 3) ==
        doctest::Approx(std::exp(0.0) / (std::exp(-2.0) + std::exp(-1.0) + 1 + std::exp(-2.5) + std::exp(-4.0))));
  for (index_t j = 0; j < 7; ++j) CHECK(std::isnan(ym(1, j)));
}

TEST_CASE("softmax backward equals finite differences") {
  auto fwd = [](const std::vector<Tensor<double>>& in) { return ops::softmax(in[0]); };
  auto bwd = [](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    return std::vector<Tensor<double>>{ops::softmax_backward(ops::softmax(in[0]), dy)};
  };
  for (const Shape& s : {Shape{4, 7}, Shape{2, 3, 1}, Shape{1, 10}}) {
    INFO("extents ", s);
    const auto r = testing::check_gradients(fwd, bwd, {test::random(s, 2, -3, 3)});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("softmax equals PyTorch's") {
  const auto ref = test::torch_reference("softmax");
  for (std::string name : {"a", "b", "c", "d"}) {
    INFO(name);
    const std::string p = "softmax." + name + ".";
    const auto x = ref.tensor<double>(p + "x"), dout = ref.tensor<double>(p + "dout");
    const auto y = ops::softmax(x);
    CHECK(test::max_rel_error(y, ref.tensor<double>(p + "y")) < 1e-13);
    CHECK(test::max_rel_error(ops::softmax_backward(y, dout), ref.tensor<double>(p + "dx")) < 1e-12);
    const auto yf = ops::softmax(ref.tensor<float>(p + "x"));
    CHECK(test::max_rel_error(yf, ref.tensor<double>(p + "y")) < 1e-5);
    CHECK(test::max_rel_error(ops::softmax_backward(yf, ref.tensor<float>(p + "dout")), ref.tensor<double>(p + "dx")) <
          1e-5);
  }
}

TEST_CASE("cross_entropy matches the definition, with and without label smoothing") {
  const auto z = test::random({6, 5}, 3, -4, 4);
  const std::vector<int> t{0, 4, 2, 2, 1, 3};
  for (double s : {0.0, 0.1, 0.5, 1.0}) {
    INFO("label smoothing ", s);
    CHECK(ops::cross_entropy(z, std::span<const int>(t), s) ==
          doctest::Approx(naive_cross_entropy(z, t, s)).epsilon(1e-14));
    CHECK(ops::cross_entropy(ops::cast<float>(z), std::span<const int>(t), s) ==
          doctest::Approx(naive_cross_entropy(z, t, s)).epsilon(1e-6));
  }
  // Logits far beyond exp's range are fine.
  const auto big = Tensor<double>::from({1, 3}, {1000, -1000, 999});
  const std::vector<int> t0{2};
  CHECK(ops::cross_entropy(big, std::span<const int>(t0)) == doctest::Approx(1 + std::log1p(std::exp(-1.0))));
}

TEST_CASE("cross_entropy backward equals finite differences") {
  const std::vector<int> t{0, 4, 2, 1};
  for (double s : {0.0, 0.2}) {
    INFO("label smoothing ", s);
    auto fwd = [&](const std::vector<Tensor<double>>& in) {
      return Tensor<double>::full({1}, ops::cross_entropy(in[0], std::span<const int>(t), s));
    };
    auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
      return std::vector<Tensor<double>>{ops::cross_entropy_backward(in[0], std::span<const int>(t), s, dy(0))};
    };
    const auto r = testing::check_gradients(fwd, bwd, {test::random({4, 5}, 4, -3, 3)});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("cross_entropy equals PyTorch's F.cross_entropy") {
  const auto ref = test::torch_reference("softmax");
  for (std::string name : {"a", "b", "c", "d", "e"}) {
    INFO(name);
    const std::string p = "ce." + name + ".";
    const auto z = ref.tensor<double>(p + "logits");
    const auto t = to_targets(ref.tensor<double>(p + "targets"));
    const double s = ref.tensor<double>(p + "label_smoothing")(0), loss = ref.tensor<double>(p + "loss")(0);
    CHECK(std::abs(ops::cross_entropy(z, std::span<const int>(t), s) - loss) <= 1e-13 * std::max(1.0, std::abs(loss)));
    const auto dz = ops::cross_entropy_backward(z, std::span<const int>(t), s, 0.7);
    CHECK(test::max_rel_error(dz, ref.tensor<double>(p + "dlogits")) < 1e-12);
    const auto zf = ref.tensor<float>(p + "logits");
    CHECK(std::abs(ops::cross_entropy(zf, std::span<const int>(t), s) - loss) <= 1e-5 * std::max(1.0, std::abs(loss)));
    CHECK(test::max_rel_error(ops::cross_entropy_backward(zf, std::span<const int>(t), s, 0.7),
                              ref.tensor<double>(p + "dlogits")) < 1e-5);
  }
}

TEST_CASE("softmax and cross-entropy errors") {
  CHECK_THROWS_WITH_AS(ops::softmax(Tensor<float>()), "rev::ops::softmax: input has rank 0, expected [..., K]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::softmax_backward(Tensor<float>({2, 3}), Tensor<float>({3, 2})),
                       "rev::ops::softmax_backward: dy has extents [3, 2], expected [2, 3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::softmax_backward(Tensor<float>(), Tensor<float>()),
                       "rev::ops::softmax_backward: output has rank 0, expected [..., K]", shape_error);

  const Tensor<float> z({3, 4});
  const std::vector<int> ok{0, 3, 1}, two{0, 1}, bad{0, 4, 1}, neg{-1, 0, 0};
  CHECK_THROWS_WITH_AS(ops::cross_entropy(Tensor<float>({3, 4, 1}), std::span<const int>(ok)),
                       "rev::ops::cross_entropy: logits have rank 3 (extents [3, 4, 1]), expected rank 2 [N, K]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(z, std::span<const int>(two)),
                       "rev::ops::cross_entropy: 2 targets for logits [3, 4], expected 3", shape_error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(Tensor<float>({0, 4}), std::span<const int>()),
                       "rev::ops::cross_entropy: logits have extents [0, 4], expected N > 0 and K > 0", shape_error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(z, std::span<const int>(bad)),
                       "rev::ops::cross_entropy: target 4 of sample 1 is out of range [0, 4)", value_error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy_backward(z, std::span<const int>(neg)),
                       "rev::ops::cross_entropy_backward: target -1 of sample 0 is out of range [0, 4)", value_error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(z, std::span<const int>(ok), 1.5),
                       "rev::ops::cross_entropy: label_smoothing must be in [0, 1], got 1.5", value_error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy_backward(z, std::span<const int>(two)),
                       "rev::ops::cross_entropy_backward: 2 targets for logits [3, 4], expected 3", shape_error);
  Tensor<float> inf({3, 4});
  inf(2, 1) = INFINITY;
  CHECK_THROWS_WITH_AS(
      ops::cross_entropy(inf, std::span<const int>(ok)),
      "rev::ops::cross_entropy: the loss of sample 2 is not finite; its logits hold an infinity or a NaN", value_error);
}

TEST_CASE("bce_with_logits: value and gradient equal the definition and finite differences") {
  const Tensor<double> z = test::random({2, 3, 4}, 40);
  Tensor<double> t = test::random({2, 3, 4}, 41);
  for (double& v : t) v = 0.5 + 0.45 * v / (1 + std::abs(v));
  double naive = 0;
  for (index_t i = 0; i < z.numel(); ++i) {
    const double p = 1 / (1 + std::exp(-z.data()[i]));
    naive -= t.data()[i] * std::log(p) + (1 - t.data()[i]) * std::log(1 - p);
  }
  naive /= static_cast<double>(z.numel());
  CHECK(ops::bce_with_logits(z, t) == doctest::Approx(naive).epsilon(1e-12));
  const Tensor<double> dz = ops::bce_with_logits_backward(z, t, 2.5);
  for (index_t i : {index_t{0}, index_t{7}, index_t{23}}) {
    Tensor<double> up = z.clone(), down = z.clone();
    up.data()[i] += 1e-6;
    down.data()[i] -= 1e-6;
    const double fd = 2.5 * (ops::bce_with_logits(up, t) - ops::bce_with_logits(down, t)) / 2e-6;
    CHECK(dz.data()[i] == doctest::Approx(fd).epsilon(1e-6));
  }
  // Large logits stay finite (the log1p(exp(-|z|)) form).
  Tensor<double> big({2});
  big.data()[0] = 800, big.data()[1] = -800;
  Tensor<double> half({2});
  half.fill(0.5);
  CHECK(ops::bce_with_logits(big, half) == doctest::Approx(400));
  CHECK_THROWS_WITH_AS(
      ops::bce_with_logits(z, test::random({2, 3}, 1)),
      "rev::ops::bce_with_logits: logits have extents [2, 3, 4], the target [2, 3]; they must be equal", shape_error);
  big.data()[0] = std::nan("");
  CHECK_THROWS_AS(ops::bce_with_logits(big, half), value_error);
}
