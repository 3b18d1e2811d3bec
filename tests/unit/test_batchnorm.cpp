#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/batchnorm.hpp"

using namespace rev;

namespace {

// Plain-loop batch-norm: two-pass batch statistics in double, then the affine normalisation.
struct naive_bn {
  std::vector<double> mean, var;

  template <class T>
  explicit naive_bn(const Tensor<T>& x) {
    const index_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const double n = static_cast<double>(N * H * W);
    mean.assign(static_cast<std::size_t>(C), 0.0);
    var.assign(static_cast<std::size_t>(C), 0.0);
    for (index_t c = 0; c < C; ++c) {
      double s = 0, v = 0;
      for (index_t i = 0; i < N; ++i)
        for (index_t h = 0; h < H; ++h)
          for (index_t w = 0; w < W; ++w) s += x(i, c, h, w);
      s /= n;
      for (index_t i = 0; i < N; ++i)
        for (index_t h = 0; h < H; ++h)
          for (index_t w = 0; w < W; ++w) v += (x(i, c, h, w) - s) * (x(i, c, h, w) - s);
      mean[static_cast<std::size_t>(c)] = s;
      var[static_cast<std::size_t>(c)] = v / n;
    }
  }
};

// y = (x - mean) / sqrt(var + eps) * weight + bias, in double.
template <class T>
Tensor<double> naive_normalise(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                               const std::vector<double>& mean, const std::vector<double>& var, double eps) {
  Tensor<double> y(x.shape());
  for (index_t i = 0; i < x.size(0); ++i)
    for (index_t c = 0; c < x.size(1); ++c)
      for (index_t h = 0; h < x.size(2); ++h)
        for (index_t w = 0; w < x.size(3); ++w) {
          const auto k = static_cast<std::size_t>(c);
          y(i, c, h, w) = (x(i, c, h, w) - mean[k]) / std::sqrt(var[k] + eps) * weight(c) + bias(c);
        }
  return y;
}

// x with per-channel offsets far from zero (the case where a naive sum of squares cancels).
template <class T = double>
Tensor<T> offset_input(const Shape& s, std::uint64_t seed) {
  Tensor<T> x = test::random<T>(s, seed, -2, 2);
  for (index_t i = 0; i < s[0]; ++i)
    for (index_t c = 0; c < s[1]; ++c)
      for (index_t h = 0; h < s[2]; ++h)
        for (index_t w = 0; w < s[3]; ++w) x(i, c, h, w) += static_cast<T>(10 * (c % 3) - 7);
  return x;
}

bool bitwise_equal(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

template <int C, nn::bn_opts O, class T>
void load(nn::BatchNorm2d<C, O, T>& bn, const io::file& ref, const std::string& prefix) {
  bn.for_each_parameter([&](const std::string& name, Param<T>& p) { p.value = ref.tensor<T>(name); }, prefix);
  bn.for_each_buffer([&](const std::string& name, Tensor<T>& b) { b = ref.tensor<T>(name); }, prefix);
}

// One case of tests/torch_ref/gen_batchnorm.py, through the layer in T; tolerance `tol`.
template <int C, nn::bn_opts O, class T>
void check_torch_case(const std::string& name, double tol) {
  INFO(name, " ", std::string(sizeof(T) == 8 ? "double" : "float"));
  const auto ref = test::torch_reference("batchnorm");
  const std::string p = name + ".";
  REQUIRE(ref.tensor<double>(p + "eps")(0) == O.eps);
  REQUIRE(ref.tensor<double>(p + "momentum")(0) == O.momentum);
  const auto x = ref.tensor<T>(p + "x"), dout = ref.tensor<T>(p + "dout");
  for (phase mode : {phase::eval, phase::train}) {
    const std::string m = p + (mode == phase::train ? "train." : "eval.");
    nn::BatchNorm2d<C, O, T> bn;
    load(bn, ref, name);
    context ctx{mode};
    typename nn::BatchNorm2d<C, O, T>::cache cache;
    const auto y = bn.forward(x, ctx, cache);
    const auto dx = bn.backward(cache, dout);
    CHECK(test::max_rel_error(y, ref.tensor<double>(m + "y")) < tol);
    CHECK(test::max_rel_error(dx, ref.tensor<double>(m + "dx")) < tol);
    CHECK(test::max_rel_error(bn.weight.grad, ref.tensor<double>(m + "dweight")) < tol);
    CHECK(test::max_rel_error(bn.bias.grad, ref.tensor<double>(m + "dbias")) < tol);
    if (mode == phase::train) {
      // One update with the unbiased variance and PyTorch's momentum.
      CHECK(test::max_rel_error(bn.running_mean, ref.tensor<double>(m + "running_mean")) < tol);
      CHECK(test::max_rel_error(bn.running_var, ref.tensor<double>(m + "running_var")) < tol);
      CHECK(test::max_rel_error(bn.kept_statistics().mean, ref.tensor<double>(m + "mean")) < tol);
      CHECK(test::max_rel_error(bn.kept_statistics().invstd, ref.tensor<double>(m + "invstd")) < tol);
    } else {
      CHECK(test::max_abs_error(bn.running_mean, ref.tensor<T>(p + "running_mean")) == 0);
      CHECK(test::max_abs_error(bn.running_var, ref.tensor<T>(p + "running_var")) == 0);
    }
  }
}

template <int C, nn::bn_opts O = nn::bn_opts{}>
void check_layer_gradients(const Shape& shape, phase mode) {
  INFO("extents ", shape, mode == phase::train ? " train" : " eval");
  nn::BatchNorm2d<C, O, double> bn;
  bn.weight.value = test::random({C}, 21, 0.5, 1.5);
  bn.bias.value = test::random({C}, 22);
  bn.running_mean = test::random({C}, 23);
  bn.running_var = test::random({C}, 24, 0.5, 1.5);
  testing::gradient_check_options o;
  o.mode = mode;
  const auto r = testing::check_gradients(bn, offset_input(shape, 25), o);
  CHECK_MESSAGE(r.ok(), r.str());
}

}  // namespace

TEST_CASE("batch_norm_train and batch_norm_apply match a naive implementation") {
  for (const Shape& s : {Shape{4, 5, 3, 3}, Shape{2, 3, 1, 1}, Shape{1, 7, 5, 4}, Shape{8, 33, 17, 9}}) {
    INFO("extents ", s);
    const index_t C = s[1];
    const auto x = offset_input(s, 1);
    const auto w = test::random({C}, 2, 0.5, 1.5), b = test::random({C}, 3);
    const naive_bn ref(x);
    const double eps = 1e-3;

    ops::batch_stats<double> st;
    const auto y = ops::batch_norm_train(x, w, b, eps, st);
    CHECK(test::max_rel_error(y, naive_normalise(x, w, b, ref.mean, ref.var, eps)) < 1e-13);
    for (index_t c = 0; c < C; ++c) {
      CHECK(st.mean(c) == doctest::Approx(ref.mean[static_cast<std::size_t>(c)]).epsilon(1e-14));
      CHECK(st.invstd(c) == doctest::Approx(1 / std::sqrt(ref.var[static_cast<std::size_t>(c)] + eps)).epsilon(1e-13));
    }
    // float: statistics accumulated in double, so only the float rounding of x and y remains.
    const auto xf = ops::cast<float>(x), wf = ops::cast<float>(w), bf = ops::cast<float>(b);
    const naive_bn reff(xf);
    ops::batch_stats<float> stf;
    const auto yf = ops::batch_norm_train(xf, wf, bf, eps, stf);
    CHECK(test::max_rel_error(yf, naive_normalise(xf, wf, bf, reff.mean, reff.var, eps)) < 2e-6);

    // apply with arbitrary statistics
    std::vector<double> m(static_cast<std::size_t>(C)), v(static_cast<std::size_t>(C));
    ops::batch_stats<double> given{Tensor<double>({C}), Tensor<double>({C}), Tensor<double>()};
    for (index_t c = 0; c < C; ++c) {
      m[static_cast<std::size_t>(c)] = 0.3 * static_cast<double>(c) - 1;
      v[static_cast<std::size_t>(c)] = 0.5 + 0.1 * static_cast<double>(c);
      given.mean(c) = m[static_cast<std::size_t>(c)];
      given.invstd(c) = 1 / std::sqrt(v[static_cast<std::size_t>(c)] + eps);
    }
    CHECK(test::max_rel_error(ops::batch_norm_apply(x, w, b, given), naive_normalise(x, w, b, m, v, eps)) < 1e-13);
  }
}

TEST_CASE("batch_norm_update_running: momentum and the unbiased variance") {
  Tensor<double> rm = Tensor<double>::from({2}, {1.0, -2.0}), rv = Tensor<double>::from({2}, {0.5, 2.0});
  const double eps = 1e-3;
  ops::batch_stats<double> st{Tensor<double>::from({2}, {3.0, 4.0}),
                              Tensor<double>::from({2}, {1 / std::sqrt(0.25 + eps), 1 / std::sqrt(4.0 + eps)}),
                              Tensor<double>::from({2}, {0.25, 4.0})};
  ops::batch_norm_update_running(rm, rv, st, 5, 0.1);
  CHECK(rm(0) == doctest::Approx(0.9 * 1 + 0.1 * 3).epsilon(1e-15));
  CHECK(rm(1) == doctest::Approx(0.9 * -2 + 0.1 * 4).epsilon(1e-15));
  CHECK(rv(0) == doctest::Approx(0.9 * 0.5 + 0.1 * 0.25 * 5 / 4).epsilon(1e-14));
  CHECK(rv(1) == doctest::Approx(0.9 * 2.0 + 0.1 * 4.0 * 5 / 4).epsilon(1e-14));
}

// The running variance of a batch whose variance is far below eps (1e-10 against 1e-3 in channel
// 0): PyTorch's nn.BatchNorm2d(3, eps=1e-3, momentum=0.1) in float64 on the same float32 input,
// running_mean = [0.5, -1, 2], running_var = 0, one train-mode forward.
TEST_CASE("BatchNorm2d: the running variance keeps a batch variance far below eps (PyTorch)") {
  constexpr index_t N = 2, C = 3, H = 2, W = 3;
  const double base[C] = {1.0, -2.0, 0.25}, step[C] = {1e-5, 3e-3, 0.5};
  Tensor<float> x({N, C, H, W});
  for (index_t n = 0; n < N; ++n)
    for (index_t c = 0; c < C; ++c)
      for (index_t h = 0; h < H; ++h)
        for (index_t w = 0; w < W; ++w)
          x(n, c, h, w) =
              static_cast<float>(base[c] + step[c] * static_cast<double>((n * 7 + h * 3 + w * 5 + c) % 11 - 5));
  nn::BatchNorm2d<C, nn::bn_opts{1e-3, 0.1}> bn;
  bn.running_mean = Tensor<float>::from({C}, {0.5f, -1.0f, 2.0f});
  bn.running_var.fill(0.0f);
  context ctx{phase::train};
  bn.forward(x, ctx);
  const double torch_mean[C] = {0.5500004167358081, -1.1001250038544337, 1.8083333333333333};
  const double torch_var[C] = {1.2081935990391738e-10, 1.0875065955468785e-05, 0.2833333333333333};
  for (index_t c = 0; c < C; ++c) {
    // Relative errors (doctest::Approx would also allow 1e-5 in absolute terms).
    CHECK(std::abs(bn.running_mean(c) - torch_mean[c]) <= 1e-6 * std::abs(torch_mean[c]));
    CHECK(std::abs(bn.running_var(c) - torch_var[c]) <= 1e-5 * torch_var[c]);
  }
}

TEST_CASE("batch-norm backward equals finite differences") {
  check_layer_gradients<5>({4, 5, 3, 3}, phase::train);
  check_layer_gradients<3, nn::bn_opts{1e-3, 0.1}>({2, 3, 1, 1}, phase::train);
  check_layer_gradients<7>({1, 7, 2, 3}, phase::train);
  check_layer_gradients<5>({4, 5, 3, 3}, phase::eval);
  check_layer_gradients<3>({1, 3, 1, 1}, phase::eval);

  // The ops on their own, with only some of the gradients wanted.
  const auto x = offset_input({3, 4, 2, 3}, 31), w = test::random({4}, 32, 0.5, 1.5), b = test::random({4}, 33);
  auto fwd = [](const std::vector<Tensor<double>>& in) {
    ops::batch_stats<double> st;
    return ops::batch_norm_train(in[0], in[1], in[2], 1e-5, st);
  };
  auto bwd = [](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    ops::batch_stats<double> st;
    ops::batch_norm_train(in[0], in[1], in[2], 1e-5, st);
    Tensor<double> dw({4});
    auto dx = ops::batch_norm_backward_train(in[0], in[1], st, dy, &dw, nullptr);
    return std::vector<Tensor<double>>{dx, dw, Tensor<double>()};
  };
  const auto r = testing::check_gradients(fwd, bwd, {x, w, b});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("BatchNorm2d equals PyTorch's nn.BatchNorm2d (train and eval, forward and backward)") {
  constexpr nn::bn_opts a{1e-5, 0.1}, b{1e-3, 0.1}, c{1e-3, 0.25}, d{1e-5, 0.1};
  check_torch_case<5, a, double>("a", 1e-12);
  check_torch_case<3, b, double>("b", 1e-12);
  check_torch_case<7, c, double>("c", 1e-12);
  check_torch_case<2, d, double>("d", 1e-12);
  check_torch_case<5, a, float>("a", 1e-5);
  check_torch_case<3, b, float>("b", 1e-5);
  check_torch_case<7, c, float>("c", 1e-5);
  check_torch_case<2, d, float>("d", 1e-5);
}

TEST_CASE("BatchNorm2d phases: train, recompute, eval") {
  using BN = nn::BatchNorm2d<6, nn::bn_opts{1e-3, 0.1}>;
  const auto x = offset_input<float>({3, 6, 4, 5}, 41);
  const auto dy = test::random<float>({3, 6, 4, 5}, 42);
  BN bn;
  bn.weight.value = test::random<float>({6}, 43, 0.5, 1.5);
  bn.bias.value = test::random<float>({6}, 44);
  const auto rm0 = bn.running_mean.clone(), rv0 = bn.running_var.clone();
  context train{phase::train}, recompute{phase::recompute}, eval{phase::eval};

  SUBCASE("recompute before any train forward is an error") {
    CHECK_THROWS_WITH_AS(
        bn.forward(x, recompute),
        "rev::nn::BatchNorm2d: recompute phase without batch statistics (no train-phase forward ran before)",
        value_error);
  }

  SUBCASE("track_running_stats = false leaves the running statistics unchanged") {
    bn.track_running_stats = false;
    bn.forward(x, train);
    CHECK(bitwise_equal(bn.running_mean, rm0));
    CHECK(bitwise_equal(bn.running_var, rv0));
    CHECK_FALSE(bn.kept_statistics().mean.empty());
  }

  SUBCASE("train updates once; recompute reproduces it bit for bit and updates nothing") {
    BN::cache ct, cr;
    const auto yt = bn.forward(x, train, ct);
    const auto rm1 = bn.running_mean.clone(), rv1 = bn.running_var.clone();
    CHECK_FALSE(bitwise_equal(rm1, rm0));
    CHECK_FALSE(bitwise_equal(rv1, rv0));
    const auto yr = bn.forward(x, recompute, cr);
    CHECK(bitwise_equal(yt, yr));
    CHECK(bitwise_equal(bn.running_mean, rm1));
    CHECK(bitwise_equal(bn.running_var, rv1));

    // Backward after recompute is the train backward with the kept statistics.
    const auto dxt = bn.backward(ct, dy);
    const auto gw = bn.weight.grad.clone(), gb = bn.bias.grad.clone();
    zero_grad(bn);
    const auto dxr = bn.backward(cr, dy);
    CHECK(bitwise_equal(dxt, dxr));
    CHECK(bitwise_equal(gw, bn.weight.grad));
    CHECK(bitwise_equal(gb, bn.bias.grad));
    ops::batch_stats<float> st;
    ops::batch_norm_train(x, bn.weight.value, bn.bias.value, 1e-3, st);
    CHECK(bitwise_equal(dxt, ops::batch_norm_backward_train(x, bn.weight.value, st, dy, nullptr, nullptr)));
  }

  SUBCASE("recompute on a perturbed input uses the kept statistics") {
    bn.forward(x, train);
    auto x2 = x.clone();
    for (float& v : x2) v *= 1.01f;
    x2(0, 0, 0, 0) += 0.5f;
    const auto yr = bn.forward(x2, recompute);
    CHECK(bitwise_equal(yr, ops::batch_norm_apply(x2, bn.weight.value, bn.bias.value, bn.kept_statistics())));
    ops::batch_stats<float> fresh;
    CHECK(test::max_abs_error(yr, ops::batch_norm_train(x2, bn.weight.value, bn.bias.value, 1e-3, fresh)) > 1e-3);
  }

  SUBCASE("the cache records which statistics its forward used") {
    BN::cache c1;
    bn.forward(x, train, c1);
    const auto dx1 = bn.backward(c1, dy);
    // A later train forward on another batch and an eval forward replace the kept statistics
    // and move the running ones; c1's backward is unchanged.
    bn.forward(offset_input<float>({2, 6, 3, 3}, 45), train);
    BN::cache c2;
    bn.forward(x, eval, c2);
    CHECK(bitwise_equal(dx1, bn.backward(c1, dy)));
    CHECK_FALSE(c2.batch_statistics);
    CHECK(c1.batch_statistics);
  }

  SUBCASE("eval normalises with the running statistics") {
    bn.running_mean = test::random<float>({6}, 46);
    bn.running_var = test::random<float>({6}, 47, 0.5, 1.5);
    std::vector<double> m(6), v(6);
    for (int c = 0; c < 6; ++c) {
      m[static_cast<std::size_t>(c)] = bn.running_mean(c);
      v[static_cast<std::size_t>(c)] = bn.running_var(c);
    }
    CHECK(test::max_rel_error(bn.forward(x, eval), naive_normalise(x, bn.weight.value, bn.bias.value, m, v, 1e-3)) <
          1e-6);
  }
}

TEST_CASE("BatchNorm2d: names, initial values, one value per channel") {
  nn::BatchNorm2d<4> bn;
  static_assert(nn::BatchNorm2d<4>::in_channels == 4 && nn::BatchNorm2d<4>::out_channels == 4);
  static_assert(Layer<nn::BatchNorm2d<4>>);
  std::vector<std::string> names;
  bn.for_each_parameter([&](const std::string& n, Param<float>&) { names.push_back(n); }, "norm");
  bn.for_each_buffer([&](const std::string& n, Tensor<float>&) { names.push_back(n); }, "norm");
  CHECK(names == std::vector<std::string>{"norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"});
  for (int c = 0; c < 4; ++c) {
    CHECK(bn.weight.value(c) == 1);
    CHECK(bn.bias.value(c) == 0);
    CHECK(bn.running_mean(c) == 0);
    CHECK(bn.running_var(c) == 1);
  }
  // PyTorch: "Expected more than 1 value per channel when training".
  context train{phase::train}, eval{phase::eval};
  CHECK_THROWS_WITH_AS(bn.forward(Tensor<float>({1, 4, 1, 1}), train),
                       "rev::nn::BatchNorm2d: expected more than 1 value per channel when training, got input "
                       "extents [1, 4, 1, 1]",
                       value_error);
  CHECK(bn.kept_statistics().mean.empty());
  CHECK(bn.forward(Tensor<float>({1, 4, 1, 1}), eval).shape() == Shape{1, 4, 1, 1});
}

TEST_CASE("batch-norm errors") {
  const Tensor<float> x({2, 3, 4, 4}), w({3}), dy({2, 3, 4, 4});
  ops::batch_stats<float> st{Tensor<float>({3}), Tensor<float>::full({3}, 1), Tensor<float>({3})};
  CHECK_THROWS_WITH_AS(ops::batch_norm_train(Tensor<float>({2, 3, 4}), w, w, 1e-5, st),
                       "rev::ops::batch_norm_train: input has rank 3 (extents [2, 3, 4]), expected rank 4 [N, C, H, W]",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_train(x, Tensor<float>({4}), w, 1e-5, st),
                       "rev::ops::batch_norm_train: weight has extents [4], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_train(x, w, Tensor<float>({1, 3}), 1e-5, st),
                       "rev::ops::batch_norm_train: bias has extents [1, 3], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_train(Tensor<float>({1, 3, 1, 1}), w, w, 1e-5, st),
                       "rev::ops::batch_norm_train: expected more than 1 value per channel when training, got input "
                       "extents [1, 3, 1, 1]",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_train(x, w, w, -1.0, st),
                       "rev::ops::batch_norm_train: eps must be finite and >= 0, got -1", value_error);
  ops::batch_stats<float> bad{Tensor<float>({2}), Tensor<float>({3})};
  CHECK_THROWS_WITH_AS(ops::batch_norm_apply(x, w, w, bad),
                       "rev::ops::batch_norm_apply: stats.mean has extents [2], expected [3]", shape_error);
  ops::batch_stats<float> bad2{Tensor<float>({3}), Tensor<float>()};
  CHECK_THROWS_WITH_AS(ops::batch_norm_apply(x, w, w, bad2),
                       "rev::ops::batch_norm_apply: stats.invstd has extents [], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_backward_train(x, w, st, Tensor<float>({2, 3, 4, 5}), nullptr, nullptr),
                       "rev::ops::batch_norm_backward_train: dy has extents [2, 3, 4, 5], expected [2, 3, 4, 4]",
                       shape_error);
  Tensor<float> dw({2});
  CHECK_THROWS_WITH_AS(ops::batch_norm_backward_train(x, w, st, dy, &dw, nullptr),
                       "rev::ops::batch_norm_backward_train: dweight has extents [2], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_backward_eval(x, w, st, dy, nullptr, &dw),
                       "rev::ops::batch_norm_backward_eval: dbias has extents [2], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_backward_eval(x, Tensor<float>({2}), st, dy, nullptr, nullptr),
                       "rev::ops::batch_norm_backward_eval: weight has extents [2], expected [3]", shape_error);
  Tensor<float> rm({3}), rv({3}), rbad({4});
  CHECK_THROWS_WITH_AS(ops::batch_norm_update_running(rm, rv, st, 1, 0.1),
                       "rev::ops::batch_norm_update_running: the unbiased variance needs more than 1 value per "
                       "channel, got n = 1",
                       value_error);
  ops::batch_stats<float> st2{Tensor<float>({1, 3}), Tensor<float>({3}), Tensor<float>({3})},
      st3{Tensor<float>({3}), Tensor<float>({4}), Tensor<float>({3})};
  CHECK_THROWS_WITH_AS(ops::batch_norm_update_running(rm, rv, st2, 4, 0.1),
                       "rev::ops::batch_norm_update_running: stats.mean has extents [1, 3], expected rank 1",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_update_running(rm, rv, st3, 4, 0.1),
                       "rev::ops::batch_norm_update_running: stats.invstd has extents [4], expected [3]", shape_error);
  const ops::batch_stats<float> no_var{st.mean, st.invstd, Tensor<float>()};
  CHECK_THROWS_WITH_AS(ops::batch_norm_update_running(rm, rv, no_var, 4, 0.1),
                       "rev::ops::batch_norm_update_running: stats.var is empty; the running update needs the "
                       "statistics of batch_norm_train, which sets it",
                       value_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_update_running(rbad, rv, st, 4, 0.1),
                       "rev::ops::batch_norm_update_running: running_mean has extents [4], expected [3]", shape_error);
  CHECK_THROWS_WITH_AS(ops::batch_norm_update_running(rm, rbad, st, 4, 0.1),
                       "rev::ops::batch_norm_update_running: running_var has extents [4], expected [3]", shape_error);

  nn::BatchNorm2d<3> bn;
  context ctx{phase::train};
  CHECK_THROWS_WITH_AS(bn.forward(Tensor<float>({2, 4, 3, 3}), ctx),
                       "rev::nn::BatchNorm2d: input has extents [2, 4, 3, 3], expected [N, 3, H, W]", shape_error);
  CHECK_THROWS_WITH_AS(bn.forward(Tensor<float>({2, 3, 3}), ctx),
                       "rev::nn::BatchNorm2d: input has extents [2, 3, 3], expected [N, 3, H, W]", shape_error);
  nn::BatchNorm2d<3>::cache c;
  bn.forward(x, ctx, c);
  CHECK_THROWS_WITH_AS(bn.backward(c, Tensor<float>({2, 4, 4, 4})),
                       "rev::nn::BatchNorm2d: dy has extents [2, 4, 4, 4], expected [N, 3, H, W]", shape_error);
  CHECK_THROWS_WITH_AS(bn.backward(c, Tensor<float>({2, 3, 4, 5})),
                       "rev::ops::batch_norm_backward_train: dy has extents [2, 3, 4, 5], expected [2, 3, 4, 4]",
                       shape_error);
}
