// The `rev` command-line tool: what every model entry provides, and the generic implementations
// of `summary`, `run` and `bench` for a model type. Each model is compiled in its own translation
// unit (model.cpp, once per model), so the build parallelises over the model zoo.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "report.hpp"
#include "rev/core/op_count.hpp"
#include "rev/cpu.hpp"
#include "rev/graph/chain.hpp"
#include "rev/io/state_dict.hpp"
#include "rev/testing/check_gradients.hpp"

namespace rev::cli {

/// Parameters and forward ops of one part of a model (stem, stage, neck, head, ...).
struct part_summary {
  std::string name;
  std::int64_t parameters = 0;
  op_counts ops;
};
struct summary {
  int res = 0;
  std::vector<part_summary> parts;
};

struct run_options {
  std::string weights, io, out;
  bool train = false;
  mode m = mode::stored;
};

struct bench_options {
  index_t batch = 8;
  index_t res = 0;
  int steps = 5;
  mode m = mode::stored;
  bool detect_anomaly = false;  // every step in anomaly mode (graph/anomaly.hpp), to measure its cost
};
struct bench_result {
  std::vector<double> step_s;       // wall time of each timed step
  std::size_t peak_activation = 0;  // rev's accounting: peak bytes above parameters, gradients, input
  std::size_t peak_rss = 0;         // the OS's view: sampled resident-set peak above the start (after the
                                    // warm-up step, so memory the C allocator keeps for reuse is not counted)
};

struct model_entry {
  std::string name;       // e.g. "revbifpn-s0"
  std::string family;     // e.g. "RevBiFPN-S0"
  int default_res = 224;  // the paper's resolution
  int size_multiple = 32;
  int image_channels = 3;
  int classes = 1000;
  std::function<summary(int res)> summarize;
  std::function<void(const run_options&)> run;
  std::function<bench_result(const bench_options&)> bench;
};

/// The models compiled into this tool, filled by the model translation units at start-up.
inline std::vector<model_entry>& registry() {
  static std::vector<model_entry> models;
  return models;
}
struct registrar {
  explicit registrar(model_entry e) { registry().push_back(std::move(e)); }
};

// ---- generic implementations, used by model.cpp -------------------------------------------

/// Parameters per part: part_of(key) names the part a parameter belongs to.
template <class Model, class PartOf>
std::map<std::string, std::int64_t> parameters_by_part(Model& net, PartOf&& part_of) {
  std::map<std::string, std::int64_t> n;
  net.for_each_parameter(
      [&](const std::string& key, Param<typename Model::value_type>& p) { n[part_of(key)] += p.value.numel(); });
  return n;
}

/// Runs f(step) once as warm-up and `steps` times timed, measuring memory over the timed steps.
template <class Step>
bench_result time_steps(int steps, Step&& step) {
  step();  // warm-up: first-touch page faults, and the C allocator's heap grows to its working size
  bench_result r;
  bench::rss_sampler rss;
  peak_scope<cpu> scope;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    r.step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  r.peak_activation = scope.peak_above_start();
  r.peak_rss = rss.peak_above_start();
  return r;
}

/// `rev run`: one eval forward or one training step on the IO file's `input` (and `dout`), with
/// the golden files' output names.
template <class Model>
void run_model(Model& net, const run_options& o) {
  using T = typename Model::value_type;
  net.load(io::load(o.weights));
  const io::file in = io::load(o.io);
  check<io_error>(in.contains("input"), o.io, ": no tensor named 'input'");
  const Tensor<T> x = in.at("input").template to_tensor<T>();
  io::file out;
  if (!o.train) {
    context ctx{phase::eval};
    out.put("eval.output", net.forward(x, ctx));
  } else {
    check<io_error>(in.contains("dout"), o.io, ": train mode needs a tensor named 'dout' (d loss / d output)");
    const Tensor<T> dout = in.at("dout").template to_tensor<T>();
    zero_grad(net);
    context ctx{phase::train};
    typename Model::cache tape{o.m};
    out.put("train.output", net.forward(x, ctx, tape));
    out.put("train.grad.input", net.backward(tape, dout));
    net.for_each_parameter([&](const std::string& key, Param<T>& p) { out.put("train.grad." + key, p.grad); });
    net.for_each_buffer([&](const std::string& key, Tensor<T>& b) { out.put("train.after." + key, b); });
  }
  io::save(out, o.out);
}

/// `rev bench`: training steps (forward + backward of a fixed random d loss / d logits).
template <class Model>
bench_result bench_model(Model& net, const bench_options& o, int image_channels, int classes) {
  using T = typename Model::value_type;
  const Tensor<T> image = testing::random_uniform<T>({o.batch, image_channels, o.res, o.res}, 1);
  const Tensor<T> dlogits = testing::random_uniform<T>({o.batch, classes}, 2, -1e-3, 1e-3);
  return time_steps(o.steps, [&] {
    std::optional<detect_anomaly> anomaly;
    if (o.detect_anomaly) anomaly.emplace();
    context ctx{phase::train};
    typename Model::cache tape{o.m};
    net.forward(image, ctx, tape);
    net.backward(tape, dlogits);
  });
}

}  // namespace rev::cli
