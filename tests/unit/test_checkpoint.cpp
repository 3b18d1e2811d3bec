// Checkpoints: training N steps equals training N/2, saving, loading into fresh objects and
// training N/2 more, bit for bit (weights, buffers, optimiser state, EMA, data order and
// augmentation, dropout masks); checkpoints of other models or optimisers are refused.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "helpers.hpp"
#include "rev/data/fashion_mnist.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/dropout.hpp"
#include "rev/nn/flatten.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/train.hpp"

using namespace rev;
namespace fs = std::filesystem;

namespace {

// conv -> BN -> ReLU -> pool -> dropout -> linear, times a learnable scalar (Fixup style).
template <int Classes = 10>
struct Net {
  nn::Sequential<nn::Conv2d<1, 4, nn::conv_opts{.kernel = 3, .stride = 2}>, nn::BatchNorm2d<4>, nn::ReLU<>,
                 nn::GlobalAvgPool<>, nn::Flatten<>>
      features;
  nn::Dropout<> drop{0.25};
  nn::Linear<4, Classes> head;
  Param<float> scale = [] {
    Param<float> p({1});
    p.value.fill(1);
    return p;
  }();

  struct cache {
    decltype(features)::cache f;
    nn::Dropout<>::cache d;
    nn::Linear<4, Classes>::cache h;
    Tensor<float> z;
  };
  Tensor<float> forward(const Tensor<float>& x, context& ctx, cache& c) {
    c.z = head.forward(drop.forward(features.forward(x, ctx, c.f), ctx, c.d), ctx, c.h);
    Tensor<float> y = c.z.clone();
    for (float& v : y) v *= scale.value.data()[0];
    return y;
  }
  void backward(cache& c, const Tensor<float>& dy) {
    Tensor<float> dz = dy.clone();
    for (index_t i = 0; i < dz.numel(); ++i) {
      scale.grad.data()[0] += dy.data()[i] * c.z.data()[i];
      dz.data()[i] *= scale.value.data()[0];
    }
    features.backward(c.f, drop.backward(c.d, head.backward(c.h, dz)));
  }
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    features.for_each_parameter(f, join_name(prefix, "features"));
    head.for_each_parameter(f, join_name(prefix, "head"));
    f(join_name(prefix, "scale"), scale);
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    features.for_each_buffer(f, join_name(prefix, "features"));
  }
};

// Net without its scalar parameter.
struct no_scale {
  Net<> net;
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    net.features.for_each_parameter(f, join_name(prefix, "features"));
    net.head.for_each_parameter(f, join_name(prefix, "head"));
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    net.for_each_buffer(f, prefix);
  }
};

// Net with one more parameter.
struct extra {
  Net<> net;
  Param<float> bias2{Shape{3}};
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    net.for_each_parameter(f, prefix);
    f(join_name(prefix, "bias2"), bias2);
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    net.for_each_buffer(f, prefix);
  }
};

const data::image_set& images() {
  static const data::image_set s = [] {
    data::image_set d{40, 28, 28, {}, {}};
    for (int i = 0; i < 40 * 784; ++i) d.pixels.push_back(static_cast<std::uint8_t>((i * 37 + i / 784 * 11) % 256));
    for (int i = 0; i < 40; ++i) d.labels.push_back(i * 7 % 10);
    return d;
  }();
  return s;
}

const data::loader_options loader_opts{.batch_size = 8, .shift = 2, .flip = true, .seed = 5};
const train::cosine_schedule schedule{.base_lr = 0.05, .warmup_steps = 3, .total_steps = 12};
const std::vector<train::param_group> groups{
    {.name = "scalars", .match = train::scalars(), .lr_scale = 0.1, .weight_decay = 0.0}};

// Everything a training run holds.
template <class Opt>
struct run {
  Net<> net;
  Opt opt;
  train::ModelEMA<float> ema;
  data::Loader loader;
  std::int64_t step = 0;

  template <class Options>
  explicit run(Options o)
      : opt(net, o, groups), ema(net, {.decay = 0.9, .warmup = true}), loader(images(), loader_opts) {}

  void train(std::int64_t until) {
    data::batch b;
    for (; step < until; ++step) {
      if (!loader.next(b)) REQUIRE(loader.next(b));
      schedule.apply(opt, step);
      context ctx{.mode = phase::train};
      typename Net<>::cache c;
      opt.zero_grad();
      const Tensor<float> logits = net.forward(b.images, ctx, c);
      const double loss = ops::cross_entropy(logits, b.labels, 0.1);
      train::check_finite_loss(loss, step);
      net.backward(c, ops::cross_entropy_backward(logits, b.labels, 0.1));
      train::clip_grad_norm_(net, 0.5);
      opt.step();
      ema.update();
    }
  }
  auto parts() {
    return std::tuple{train::part("model", net), train::part("optim", opt), train::part("ema", ema),
                      train::part("data", loader)};
  }
};

// Every parameter, buffer, optimiser state and EMA value, as one checkpoint image.
template <class Opt>
io::file snapshot(run<Opt>& r) {
  return std::apply([&](const auto&... p) { return train::make_checkpoint(r.step, p...); }, r.parts());
}

void check_identical(const io::file& a, const io::file& b) {
  REQUIRE(a.entries.size() == b.entries.size());
  for (const auto& [key, e] : a.entries) {
    INFO(key);
    REQUIRE(b.contains(key));
    CHECK(e.shape == b.at(key).shape);
    CHECK(e.bytes == b.at(key).bytes);
  }
}

struct temp_file {
  std::string path =
      (fs::temp_directory_path() / ("rev_test_checkpoint_" + std::to_string(::getpid()) + ".safetensors")).string();
  ~temp_file() { fs::remove(path); }
};

template <class Opt, class Options>
void check_resume(Options o) {
  manual_seed(1);
  run<Opt> straight(o);
  straight.train(12);
  const rng_state rng_after = default_generator().state();

  manual_seed(1);
  temp_file file;
  {
    run<Opt> first(o);
    first.train(6);
    std::apply([&](const auto&... p) { train::save_checkpoint(file.path, first.step, p...); }, first.parts());
  }
  manual_seed(77);  // the fresh objects start elsewhere: everything must come from the checkpoint
  run<Opt> resumed(o);
  resumed.step = std::apply([&](const auto&... p) { return train::load_checkpoint(file.path, p...); }, resumed.parts());
  CHECK(resumed.step == 6);
  resumed.train(12);

  CHECK(default_generator().state() == rng_after);
  const io::file a = snapshot(straight), b = snapshot(resumed);
  check_identical(a, b);
  CHECK(a.contains("model.features.1.running_mean"));
  CHECK(a.contains("ema.features.1.running_var"));
  CHECK(a.contains("data.rng"));
  CHECK(test::max_abs_error(straight.net.head.weight.value, resumed.net.head.weight.value) == 0);
}

}  // namespace

TEST_CASE("Checkpoint: resume is bit-for-bit with AdamW (groups, schedule, clipping, EMA, dropout, augmentation)") {
  check_resume<train::AdamW<float>>(train::adamw_options{.weight_decay = 0.05});
}

TEST_CASE("Checkpoint: resume is bit-for-bit with SGD (Nesterov momentum, groups)") {
  check_resume<train::SGD<float>>(train::sgd_options{.momentum = 0.9, .weight_decay = 5e-4, .nesterov = true});
}

TEST_CASE("Checkpoint: another model, optimiser or file is refused with an io_error naming the key and extents") {
  manual_seed(3);
  temp_file file;
  run<train::AdamW<float>> r(train::adamw_options{});
  r.train(2);
  std::apply([&](const auto&... p) { train::save_checkpoint(file.path, r.step, p...); }, r.parts());

  {  // a head of other extents; the model is left as it was
    Net<5> other;
    const Tensor<float> before = other.features.get<0>().weight.value.clone();
    CHECK_THROWS_WITH_AS(
        train::load_checkpoint(file.path, train::part("model", other)),
        "rev::train::load_checkpoint: tensor 'model.head.weight' has extents [10, 4] in the checkpoint, "
        "but [5, 4] here; is it a checkpoint of another model?",
        io_error);
    CHECK(test::max_abs_error(other.features.get<0>().weight.value, before) == 0);
  }
  {  // a model without the scalar: the checkpoint's extra key is named
    no_scale m;
    CHECK_THROWS_WITH_AS(train::load_checkpoint(file.path, train::part("model", m), train::part("optim", r.opt),
                                                train::part("ema", r.ema), train::part("data", r.loader)),
                         doctest::Contains("unexpected tensor 'model.scale' with extents [1]"), io_error);
  }
  {  // a model with a parameter the checkpoint lacks
    extra m;
    CHECK_THROWS_WITH_AS(train::load_checkpoint(file.path, train::part("model", m)),
                         doctest::Contains("no tensor 'model.bias2' (expected extents [3])"), io_error);
  }
  // The optimiser state of another kind of optimiser.
  run<train::SGD<float>> sgd(train::sgd_options{.momentum = 0.9});
  CHECK_THROWS_WITH_AS(train::load_checkpoint(file.path, train::part("model", sgd.net), train::part("optim", sgd.opt),
                                              train::part("ema", sgd.ema), train::part("data", sgd.loader)),
                       doctest::Contains("rev::train::SGD::load_state: the checkpoint has no tensor "
                                         "'optim.features.0.weight.momentum_buffer'"),
                       io_error);
  // Only the parts named are loaded: here the weights, for evaluation.
  Net<> eval;
  CHECK(train::load_checkpoint(file.path, train::part("model", eval)) == 2);
  CHECK(test::max_abs_error(eval.head.weight.value, r.net.head.weight.value) == 0);
  CHECK(test::max_abs_error(eval.features.get<1>().running_var, r.net.features.get<1>().running_var) == 0);
  // A weights file is not a checkpoint.
  io::file weights;
  train::save_model_state(weights, r.net, "model.");
  io::save(weights, file.path);
  CHECK_THROWS_WITH_AS(train::load_checkpoint(file.path, train::part("model", r.net)),
                       "rev::train::load_checkpoint: the checkpoint has no entry 'meta.step' (expected I64 [1])",
                       io_error);
  // A truncated file.
  const auto bytes = io::serialize(snapshot(r));
  std::ofstream(file.path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() / 2));
  CHECK_THROWS_AS(train::load_checkpoint(file.path, train::part("model", r.net)), io_error);
}

TEST_CASE("Checkpoint: a Generator is a part, and loading restores the default generator") {
  Generator g(42);
  g.draw(10);
  const rng_state saved_g = g.state(), saved_default = default_generator().state();
  const io::file f = train::make_checkpoint(17, train::part("rng.data", g));
  CHECK(f.contains("rng.data.state"));
  g.draw(5);
  default_generator().draw(9);
  Generator h;
  CHECK(train::restore_checkpoint(f, train::part("rng.data", h)) == 17);
  CHECK(h.state() == saved_g);
  CHECK(default_generator().state() == saved_default);
}
