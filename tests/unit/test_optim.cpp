// AdamW, SGD parameter groups, the cosine schedule, gradient clipping, the weight EMA and the
// NaN guard against PyTorch 1.13 (tests/torch_ref/gen_optim.py, float64).
#include <limits>

#include "helpers.hpp"
#include "rev/core/transfer.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/train/adamw.hpp"
#include "rev/train/clip.hpp"
#include "rev/train/ema.hpp"
#include "rev/train/guard.hpp"
#include "rev/train/schedule.hpp"
#include "rev/train/sgd.hpp"

using namespace rev;

namespace {

// A "model" with a matrix and a scalar parameter and one buffer, for driving the optimisers.
struct tiny {
  Param<double> w{Shape{4, 3}}, b{Shape{1}};
  Tensor<double> r{Shape{2}};
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "w"), w);
    f(join_name(prefix, "b"), b);
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "r"), r);
  }
};

const io::file& ref() {
  static const io::file f = test::torch_reference("optim");
  return f;
}

tiny start() {
  tiny m;
  m.w.value = ref().tensor<double>("w0");
  m.b.value = ref().tensor<double>("b0");
  return m;
}

// Runs four steps of `opt` on the reference gradients and compares with PyTorch's weights.
template <class Opt>
void check_steps(const std::string& name, tiny& m, Opt& opt) {
  INFO(name);
  for (int i = 0; i < 4; ++i) {
    m.w.grad = ref().tensor<double>("gw" + std::to_string(i));
    m.b.grad = ref().tensor<double>("gb" + std::to_string(i));
    opt.step();
    const std::string s = std::to_string(i + 1);
    CHECK(test::max_abs_error(m.w.value, ref().tensor<double>(name + ".w" + s)) < 1e-14);
    CHECK(test::max_abs_error(m.b.value, ref().tensor<double>(name + ".b" + s)) < 1e-14);
  }
}

// Three gradients of different ranks, for clip_grad_norm_.
struct three {
  Param<double> a{Shape{4, 3}}, b{Shape{3}}, c{Shape{2, 2, 2}};
  template <class F>
  void for_each_parameter(F&& f, const std::string& = "") {
    f("a", a);
    f("b", b);
    f("c", c);
  }
};

const train::param_group scalars_at_lr_over_10{
    .name = "scalars", .match = train::scalars(), .lr_scale = 0.1, .weight_decay = 0.0};

}  // namespace

TEST_CASE("AdamW follows torch.optim.AdamW: defaults, amsgrad, and parameter groups") {
  {
    tiny m = start();
    train::AdamW<double> opt(m, {.lr = 1e-2});
    check_steps("adamw", m, opt);
    CHECK(opt.steps() == 4);
  }
  {
    tiny m = start();
    train::AdamW<double> opt(
        m, {.lr = 5e-3, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1, .amsgrad = true});
    check_steps("adamw_amsgrad", m, opt);
    io::file state;
    opt.save_state(state, "optim.");
    for (const char* s : {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
      CHECK(test::max_abs_error(state.tensor<double>(std::string("optim.w.") + s),
                                ref().tensor<double>(std::string("adamw_amsgrad.") + s)) < 1e-15);
  }
  {
    // torch: groups {w: lr 2e-2, weight_decay 0.05}, {b: lr 2e-3, weight_decay 0}
    tiny m = start();
    train::AdamW<double> opt(m, {.lr = 2e-2, .weight_decay = 0.05}, {scalars_at_lr_over_10});
    check_steps("adamw_groups", m, opt);
  }
}

TEST_CASE("SGD parameter groups follow torch.optim.SGD param_groups (Fixup's scalars at lr / 10)") {
  tiny m = start();
  train::SGD<double> opt(m, {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true},
                         {scalars_at_lr_over_10});
  CHECK(opt.lr_scale("b") == 0.1);
  CHECK(opt.lr_scale("w") == 1);
  check_steps("sgd_groups", m, opt);
}

TEST_CASE("Parameter groups: bad groups are rejected") {
  tiny m;
  CHECK_THROWS_WITH_AS(train::SGD<double>(m, {.lr = 0.1}, {{.name = "convs", .match = train::name_contains("conv")}}),
                       "rev::train::SGD: parameter group 'convs' matches no parameter", value_error);
  CHECK_THROWS_WITH_AS(train::AdamW<double>(m, {}, {{.name = "s", .match = train::scalars(), .lr_scale = -1}}),
                       "rev::train::AdamW: parameter group 's' has lr_scale -1, expected >= 0", value_error);
  CHECK_THROWS_WITH_AS(train::SGD<double>(m, {.lr = 0.1}, {{.name = "none"}}),
                       "rev::train::SGD: parameter group 'none' has no match predicate", value_error);
  CHECK_THROWS_AS(train::AdamW<double>(m, {}, {{.name = "s", .match = train::scalars(), .weight_decay = -0.5}}),
                  value_error);
  // The first matching group wins: b is a scalar and has rank <= 2.
  train::SGD<double> opt(m, {.lr = 0.1},
                         {{.name = "s", .match = train::scalars(), .lr_scale = 0.5},
                          {.name = "rank <= 2", .match = train::rank_at_most(2), .lr_scale = 3}});
  CHECK(opt.lr_scale("b") == 0.5);
  CHECK(opt.lr_scale("w") == 3);
  CHECK_THROWS_AS(opt.lr_scale("nope"), value_error);
}

TEST_CASE("AdamW: bad options are rejected") {
  tiny m;
  CHECK_THROWS_WITH_AS(train::AdamW<double>(m, {.beta2 = 1}), "rev::train::AdamW: betas (0.9, 1) must be in [0, 1)",
                       value_error);
  CHECK_THROWS_AS(train::AdamW<double>(m, {.lr = -1e-3}), value_error);
  CHECK_THROWS_AS(train::AdamW<double>(m, {.eps = -1}), value_error);
}

TEST_CASE("cosine_schedule matches SequentialLR(LinearLR, CosineAnnealingLR) and CosineAnnealingLR") {
  const train::cosine_schedule warm{
      .base_lr = 0.5, .warmup_steps = 5, .total_steps = 20, .warmup_lr = 0.05, .min_lr = 1e-3};
  const Tensor<double> lr = ref().tensor<double>("schedule.lr");
  for (int t = 0; t <= 20; ++t) {
    INFO("step ", t);
    CHECK(std::abs(warm.lr(t) - lr.data()[t]) < 1e-15);
  }
  CHECK(warm.lr(1000) == 1e-3);
  const train::cosine_schedule cold{.base_lr = 0.1, .total_steps = 10};
  const Tensor<double> lr0 = ref().tensor<double>("schedule_nowarmup.lr");
  for (int t = 0; t <= 10; ++t) {
    INFO("step ", t);
    CHECK(std::abs(cold.lr(t) - lr0.data()[t]) < 1e-15);
  }
  tiny m;
  train::SGD<double> opt(m, {.lr = 1});
  warm.apply(opt, 10);
  CHECK(opt.options().lr == warm.lr(10));

  CHECK_THROWS_WITH_AS((train::cosine_schedule{.warmup_steps = 10, .total_steps = 10}.lr(0)),
                       "rev::train::cosine_schedule: warmup_steps 10 must be in [0, total_steps = 10)", value_error);
  CHECK_THROWS_AS(warm.lr(-1), value_error);
  CHECK_THROWS_AS((train::cosine_schedule{.base_lr = -1}.check()), value_error);
}

TEST_CASE("clip_grad_norm_ follows torch.nn.utils.clip_grad_norm_ (2-norm, inf-norm, 3-norm, no clipping)") {
  const struct {
    const char* name;
    double max_norm, norm_type;
  } cases[] = {{"l2", 1.0, 2.0},
               {"l2_noclip", 100.0, 2.0},
               {"inf", 0.5, std::numeric_limits<double>::infinity()},
               {"l3", 0.7, 3.0}};
  for (const auto& c : cases) {
    INFO(c.name);
    three m;
    m.a.grad = ref().tensor<double>("clip.g0");
    m.b.grad = ref().tensor<double>("clip.g1");
    m.c.grad = ref().tensor<double>("clip.g2");
    const std::string k = std::string("clip.") + c.name;
    const double total = train::clip_grad_norm_(m, c.max_norm, c.norm_type);
    CHECK(std::abs(total - ref().tensor<double>(k + ".total").data()[0]) < 1e-14);
    CHECK(test::max_abs_error(m.a.grad, ref().tensor<double>(k + ".g0")) < 1e-15);
    CHECK(test::max_abs_error(m.b.grad, ref().tensor<double>(k + ".g1")) < 1e-15);
    CHECK(test::max_abs_error(m.c.grad, ref().tensor<double>(k + ".g2")) < 1e-15);
  }
  three m;
  CHECK_THROWS_WITH_AS(train::clip_grad_norm_(m, -1.0), "rev::train::clip_grad_norm_: max_norm -1 must be non-negative",
                       value_error);
  CHECK_THROWS_AS(train::clip_grad_norm_(m, 1.0, 0.0), value_error);
  m.b.grad.data()[1] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(train::clip_grad_norm_(m, 1.0, 2.0, true), value_error);
  CHECK(std::isnan(train::clip_grad_norm_(m, 1.0)));
}

TEST_CASE("ModelEMA averages parameters and buffers as timm's ModelEmaV2, with ModelEmaV3's warm-up") {
  for (const auto& [name, opts] : {std::pair<std::string, train::ema_options>{"plain", {.decay = 0.9}},
                                   {"warmup", {.decay = 0.99, .warmup = true}}}) {
    INFO(name);
    tiny m;
    m.w = Param<double>({3, 2});
    m.w.value = ref().tensor<double>("ema.w0");
    m.r = ref().tensor<double>("ema.r0");
    train::ModelEMA<double> ema(m, opts);
    for (int n = 1; n <= 5; ++n) {
      m.w.value = ref().tensor<double>("ema.w" + std::to_string(n));  // the EMA reads the model's tensor members
      m.r = ref().tensor<double>("ema.r" + std::to_string(n));
      ema.update();
      const std::string k = "ema." + name + ".";
      CHECK(test::max_abs_error(ema.average("w"), ref().tensor<double>(k + "w" + std::to_string(n))) < 1e-15);
      CHECK(test::max_abs_error(ema.average("r"), ref().tensor<double>(k + "r" + std::to_string(n))) < 1e-15);
    }
    CHECK(ema.updates() == 5);
  }
}

TEST_CASE("ModelEMA: swap, copy_to, buffers copied on request, bad options") {
  tiny m;
  m.w.value.fill(1);
  m.r.fill(1);
  train::ModelEMA<double> ema(m, {.decay = 0.75, .average_buffers = false});
  CHECK(ema.decay_at(1) == 0.75);
  m.w.value.fill(5);
  m.r.fill(5);
  ema.update();
  CHECK(ema.average("w").data()[0] == 2.0);  // 0.75 * 1 + 0.25 * 5
  CHECK(ema.average("r").data()[0] == 5.0);  // copied
  ema.swap();
  CHECK(m.w.value.data()[0] == 2.0);
  CHECK(ema.average("w").data()[0] == 5.0);
  ema.swap();
  CHECK(m.w.value.data()[0] == 5.0);
  tiny other;
  ema.copy_to(other);
  CHECK(other.w.value.data()[11] == 2.0);
  CHECK(other.b.value.data()[0] == 0.0);
  other.w = Param<double>({3, 4});
  CHECK_THROWS_WITH_AS(ema.copy_to(other),
                       "rev::train::ModelEMA::copy_to: 'w' has extents [3, 4] in the model, but [4, 3] in the average",
                       shape_error);
  CHECK_THROWS_AS(ema.average("x"), value_error);
  CHECK_THROWS_WITH_AS(train::ModelEMA<double>(m, {.decay = 1.5}),
                       "rev::train::ModelEMA: decay 1.5 and min_decay 0 must be in [0, 1]", value_error);
  CHECK_THROWS_AS(train::ModelEMA<double>(m, {.warmup = true, .warmup_gamma = 0}), value_error);
}

TEST_CASE("check_finite_loss stops at a NaN or infinite loss and names the step") {
  CHECK_NOTHROW(train::check_finite_loss(2.5, 7));
  CHECK_THROWS_WITH_AS(train::check_finite_loss(std::numeric_limits<double>::quiet_NaN(), 123),
                       "rev::train: the loss is nan at step 123; lower the learning rate, clip the gradient norm or "
                       "check the input data",
                       value_error);
  CHECK_THROWS_WITH_AS(train::check_finite_loss(std::numeric_limits<double>::infinity(), 4),
                       doctest::Contains("the loss is inf at step 4"), value_error);
  CHECK_THROWS_WITH_AS(train::check_finite_loss(-std::numeric_limits<double>::infinity(), 5),
                       doctest::Contains("the loss is -inf at step 5"), value_error);
}

TEST_CASE("step_guard: a refused NaN step leaves the model bit for bit as a run that never saw it") {
  using Net = nn::Sequential<nn::Conv2d<2, 4, nn::conv_opts{.kernel = 3, .padding = 1}, double>,
                             nn::BatchNorm2d<4, nn::bn_opts{}, double>>;
  Net a, b;
  copy_state(a, b);
  const Tensor<double> x = test::random<double>({3, 2, 5, 5}, 11), dy = test::random<double>({3, 4, 5, 5}, 12);
  Tensor<double> bad = x.clone();
  bad(1, 0, 2, 2) = std::numeric_limits<double>::quiet_NaN();
  // One training step: forward, the guard, backward, SGD.
  auto step = [&](Net& net, const Tensor<double>& input, std::int64_t t) {
    train::SGD<double> opt(net, train::sgd_options{.lr = 0.1});
    opt.zero_grad();
    train::step_guard guard(net);
    context ctx{phase::train};
    typename Net::cache cache;
    const Tensor<double> y = net.forward(input, ctx, cache);
    guard.check_loss(ops::dot(y, dy), t);
    net.backward(cache, dy);
    opt.step();
  };
  CHECK_THROWS_WITH_AS(step(a, bad, 1), doctest::Contains("the loss is nan at step 1"), value_error);
  step(a, x, 2);
  step(b, x, 2);
  auto same = [](Net& p, Net& q) {
    std::vector<Tensor<double>> values;
    p.for_each_parameter([&](const std::string&, auto& w) { values.push_back(w.value); });
    p.for_each_buffer([&](const std::string&, auto& t) { values.push_back(t); });
    std::size_t i = 0, differ = 0;
    auto compare = [&](const Tensor<double>& t) {
      const Tensor<double>& u = values[i++];
      differ += !std::equal(t.begin(), t.end(), u.begin(), u.end());
    };
    q.for_each_parameter([&](const std::string&, auto& w) { compare(w.value); });
    q.for_each_buffer([&](const std::string&, auto& t) { compare(t); });
    return differ == 0 && i == values.size();
  };
  CHECK(same(a, b));
  // Without the guard the refused batch would have left NaN running statistics.
  Net c;
  context ctx{phase::train};
  c.forward(bad, ctx);
  bool nan = false;
  c.for_each_buffer([&](const std::string&, auto& t) {
    for (double v : t) nan = nan || std::isnan(v);
  });
  CHECK(nan);
}
