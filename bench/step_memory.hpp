// One training step of a zoo model measured as the memory benchmarks do: a warm-up step (first-touch
// page faults, lazily sized buffers), then one step under rev's peak-byte accounting (the peak
// above the parameters, gradients and inputs) and the sampled resident set size, and its time.
#pragma once

#include <chrono>

#include "report.hpp"
#include "rev/cpu.hpp"

namespace rev::bench {

struct step_memory {
  double rev_mb, os_mb, step_s;
};

/// forward + backward of `net` (a model with a `cache` tape) on image with output gradient dout.
template <class Net>
step_memory measure_step(Net& net, const Tensor<float>& image, const Tensor<float>& dout, mode m) {
  auto run = [&] {
    Generator gen(3);
    context ctx{phase::train, &gen};
    typename Net::cache tape{m};
    net.forward(image, ctx, tape);
    net.backward(tape, dout);
  };
  run();
  rss_sampler rss;
  peak_scope<cpu> scope;
  const auto t0 = std::chrono::steady_clock::now();
  run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {scope.peak_above_start() / 1048576.0, rss.peak_above_start() / 1048576.0, seconds};
}

}  // namespace rev::bench
