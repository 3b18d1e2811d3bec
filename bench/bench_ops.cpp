// bench_ops: forward and backward times of rev's CPU conv2d, batch-norm and linear ops at the
// layer shapes of RevBiFPN-S0 on 224x224 images, batch 8 (../shared/specs/revbifpn.md §6:
// scales 0..3 are 56, 28, 14 and 7 pixels wide).
//
//   bench_ops [--threads N] [--filter TEXT] [--min-time SECONDS] [--clock wall|cpu] [--list]
//
// --clock cpu times the process's CPU time instead of wall-clock time: with --threads 1 on a
// machine shared with other work, it measures the op rather than the scheduler.
// Prints one JSON line per case and pass:
//   {"op":..., "name":..., "shape":..., "pass":"fwd"|"bwd", "ms": median, "threads": n, "gflops": ..., "peak_bytes":
//   ...}
// --list prints the cases instead (one JSON object each), which bench/torch_ops.py reads so
// that both sides time the same shapes. The backward computes every gradient (input, weight,
// bias) as a training step does.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "rev/core/memory.hpp"
#include "rev/core/parallel.hpp"
#include "rev/cpu.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;

namespace {

constexpr index_t batch = 8;

struct bench_case {
  std::string op;    // conv2d, batchnorm, linear
  std::string name;  // where the shape occurs in RevBiFPN-S0
  index_t n = batch, c_in = 0, h = 1, w = 1, c_out = 0;
  int k = 1, stride = 1, groups = 1;
  bool bias = false;

  int pad() const { return (k - 1) / 2; }
  index_t ho() const { return (h + 2 * pad() - k) / stride + 1; }
  index_t wo() const { return (w + 2 * pad() - k) / stride + 1; }
  // The key both benchmarks print, e.g. "x[8,24,56,56] w[24,1,3,3] s1 p1 g24".
  std::string shape() const {
    auto s = [](index_t v) { return std::to_string(v); };
    if (op == "batchnorm") return "x[" + s(n) + "," + s(c_in) + "," + s(h) + "," + s(w) + "]";
    if (op == "linear")
      return "x[" + s(n) + "," + s(c_in) + "] w[" + s(c_out) + "," + s(c_in) + "]" + (bias ? " bias" : "");
    return "x[" + s(n) + "," + s(c_in) + "," + s(h) + "," + s(w) + "] w[" + s(c_out) + "," + s(c_in / groups) + "," +
           s(k) + "," + s(k) + "] s" + s(stride) + " p" + s(pad()) + " g" + s(groups) + (bias ? " bias" : "");
  }
  // Multiply-adds x 2 of the forward; the backward (dx and dw) does twice as many.
  double flops() const {
    if (op == "batchnorm") return 0;
    if (op == "linear") return 2.0 * double(n * c_in * c_out);
    return 2.0 * double(n * c_out * ho() * wo() * (c_in / groups) * k * k);
  }
  std::string json() const {
    char buf[512];
    std::snprintf(
        buf, sizeof buf,
        R"({"op":"%s","name":"%s","shape":"%s","n":%lld,"c_in":%lld,"h":%lld,"w":%lld,"c_out":%lld,"k":%d,"stride":%d,"pad":%d,"groups":%d,"bias":%s})",
        op.c_str(), name.c_str(), shape().c_str(), (long long)n, (long long)c_in, (long long)h, (long long)w,
        (long long)c_out, k, stride, pad(), groups, bias ? "true" : "false");
    return buf;
  }
};

bench_case conv(std::string name, index_t c_in, index_t c_out, index_t hw, int k, int stride = 1, int groups = 1,
                bool bias = false) {
  bench_case c;
  c.op = "conv2d", c.name = std::move(name), c.c_in = c_in, c.c_out = c_out, c.h = c.w = hw, c.k = k, c.stride = stride;
  c.groups = groups, c.bias = bias;
  return c;
}
bench_case depthwise(std::string name, index_t c, index_t hw, int k, int stride) {
  return conv(std::move(name), c, c, hw, k, stride, int(c));
}
bench_case squeeze(std::string name, index_t c_in, index_t c_out) {
  return conv(std::move(name), c_in, c_out, 1, 1, 1, 1, true);
}
bench_case batchnorm(index_t c, index_t hw) {
  bench_case b;
  b.op = "batchnorm", b.name = "BN after a conv", b.c_in = b.c_out = c, b.h = b.w = hw;
  return b;
}

std::vector<bench_case> cases() {
  return {
      // 1x1 expansion / projection convs (scale: 0 = 56, 1 = 28, 2 = 14, 3 = 7 pixels)
      conv("RevBlock s0 proj", 24, 24, 56, 1),
      conv("neck0 proj", 48, 48, 56, 1),
      conv("RevBlock s1 proj", 32, 32, 28, 1),
      conv("F0->1 proj", 48, 64, 28, 1),
      conv("neck1 expand", 64, 128, 28, 1),
      conv("neck1 proj", 128, 64, 28, 1),
      conv("RevBlock s2 expand", 40, 80, 14, 1),
      conv("RevBlock s2 proj", 80, 40, 14, 1),
      conv("neck2 proj", 160, 128, 14, 1),
      conv("RevBlock s3 expand", 80, 160, 7, 1),
      conv("RevBlock s3 proj", 160, 80, 7, 1),
      conv("G3->2 proj", 320, 80, 7, 1),
      conv("neck3 proj", 320, 320, 7, 1),
      // depthwise convs
      depthwise("RevBlock s0 dw", 24, 56, 3, 1),
      depthwise("neck0 dw", 48, 56, 5, 1),
      depthwise("RevBlock s1 dw", 32, 28, 5, 1),
      depthwise("neck1 dw", 128, 28, 5, 1),
      depthwise("RevBlock s2 dw", 80, 14, 5, 1),
      depthwise("RevBlock s3 dw", 160, 7, 5, 1),
      depthwise("G3->2 dw", 320, 7, 5, 1),
      depthwise("F0->1 dw", 48, 56, 3, 2),
      depthwise("F0->2 dw", 48, 56, 7, 4),
      depthwise("F0->3 dw", 48, 56, 15, 8),
      depthwise("F1->2 dw", 64, 28, 3, 2),
      depthwise("F1->3 dw", 64, 28, 7, 4),
      depthwise("F2->3 dw", 160, 14, 3, 2),
      depthwise("head0 dw", 48, 56, 5, 2),
      depthwise("head1 dw", 128, 28, 5, 2),
      // squeeze-excite convs on the pooled [N, C, 1, 1] map (with bias)
      squeeze("RevBlock s0 SE reduce", 24, 6),
      squeeze("RevBlock s0 SE expand", 6, 24),
      squeeze("RevBlock s2 SE reduce", 80, 5),
      squeeze("RevBlock s2 SE expand", 5, 80),
      squeeze("G3->0 SE reduce", 160, 40),
      squeeze("G3->0 SE expand", 40, 160),
      // dense 3x3
      conv("dense 3x3", 64, 64, 56, 3),
      conv("dense 3x3 stride 2", 64, 128, 56, 3, 2),
      // batch norm after the convs above
      batchnorm(24, 56),
      batchnorm(48, 56),
      batchnorm(32, 28),
      batchnorm(128, 28),
      batchnorm(80, 14),
      batchnorm(160, 14),
      batchnorm(160, 7),
      batchnorm(320, 7),
      // classifier
      [] {
        bench_case l;
        l.op = "linear", l.name = "head FC", l.c_in = 1280, l.c_out = 1000, l.bias = true;
        return l;
      }(),
  };
}

struct timing {
  double ms;
  std::size_t peak_bytes;
};

bool cpu_clock = false;

// Milliseconds on the chosen clock.
double now_ms() {
  if (cpu_clock) {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The median time of f over enough runs to fill about min_time seconds (at least 5), after
// two warm-up runs; and the bytes f allocates at its peak.
timing time_it(const std::function<void()>& f, double min_time) {
  f();
  peak_scope<cpu> scope;
  const double t0 = now_ms();
  f();
  const double first = (now_ms() - t0) * 1e-3;
  const std::size_t peak = scope.peak_above_start();
  const int reps = std::clamp(int(min_time / std::max(first, 1e-6)), 5, 200);
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const double s = now_ms();
    f();
    ms.push_back(now_ms() - s);
  }
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return {ms[static_cast<std::size_t>(reps / 2)], peak};
}

void print(const bench_case& c, const char* pass, const timing& t, double flops) {
  std::printf(R"({"op":"%s","name":"%s","shape":"%s","pass":"%s","ms":%.4f,"threads":%d,"gflops":)", c.op.c_str(),
              c.name.c_str(), c.shape().c_str(), pass, t.ms, num_threads());
  if (flops > 0) std::printf("%.2f", flops / (t.ms * 1e6));
  else std::printf("null");
  std::printf(R"(,"peak_bytes":%zu})"
              "\n",
              t.peak_bytes);
  std::fflush(stdout);
}

void run(const bench_case& c, double min_time) {
  std::uint64_t seed = 1;
  auto rnd = [&](const Shape& s) { return testing::random_uniform<float>(s, seed++); };
  if (c.op == "conv2d") {
    const ops::conv2d_params p{c.stride, c.stride, c.pad(), c.pad(), 1, 1, c.groups};
    const auto x = rnd({c.n, c.c_in, c.h, c.w}), w = rnd({c.c_out, c.c_in / c.groups, c.k, c.k}), b = rnd({c.c_out});
    const auto dy = rnd({c.n, c.c_out, c.ho(), c.wo()});
    Tensor<float> dw(w.shape()), db(b.shape());
    const Tensor<float>* bias = c.bias ? &b : nullptr;
    print(c, "fwd", time_it([&] { ops::conv2d(x, w, bias, p); }, min_time), c.flops());
    print(c, "bwd", time_it([&] { ops::conv2d_backward(x, w, dy, p, &dw, c.bias ? &db : nullptr); }, min_time),
          2 * c.flops());
  } else if (c.op == "batchnorm") {
    const auto x = rnd({c.n, c.c_in, c.h, c.w}), dy = rnd(x.shape());
    const auto weight = rnd({c.c_in}), bias = rnd({c.c_in});
    ops::batch_stats<float> stats;
    Tensor<float> dweight({c.c_in}), dbias({c.c_in});
    print(c, "fwd", time_it([&] { ops::batch_norm_train(x, weight, bias, 1e-3, stats); }, min_time), 0);
    print(c, "bwd", time_it([&] { ops::batch_norm_backward_train(x, weight, stats, dy, &dweight, &dbias); }, min_time),
          0);
  } else if (c.op == "linear") {
    const auto x = rnd({c.n, c.c_in}), w = rnd({c.c_out, c.c_in}), b = rnd({c.c_out}), dy = rnd({c.n, c.c_out});
    Tensor<float> dw(w.shape()), db(b.shape());
    print(c, "fwd", time_it([&] { ops::linear(x, w, c.bias ? &b : nullptr); }, min_time), c.flops());
    print(c, "bwd", time_it([&] { ops::linear_backward(x, w, dy, &dw, c.bias ? &db : nullptr); }, min_time),
          2 * c.flops());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string filter;
  double min_time = 0.25;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) set_num_threads(std::atoi(argv[++i]));
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--min-time" && i + 1 < argc) min_time = std::atof(argv[++i]);
    else if (a == "--clock" && i + 1 < argc) cpu_clock = std::string(argv[++i]) == "cpu";
    else if (a == "--list") list = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--filter TEXT] [--min-time SECONDS] [--clock wall|cpu] [--list]\n",
                   argv[0]);
      return 2;
    }
  }
  for (const auto& c : cases()) {
    if (!filter.empty() && (c.op + " " + c.name + " " + c.shape()).find(filter) == std::string::npos) continue;
    if (list) std::printf("%s\n", c.json().c_str());
    else run(c, min_time);
  }
  return 0;
}
