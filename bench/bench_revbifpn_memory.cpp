// RevBiFPN-S0 training-step memory, the paper's Figures 5 and 6: peak activation bytes of one
// training step (forward + backward) at batch 8 in Stored and Reversible mode
//   (a) vs the extension depth d = 2, 4, 8, 16 at 224x224,
//   (b) vs the resolution 128 ... 512 (multiples of 32) at d = 2.
// Memory is rev's accounting (peak above parameters, gradients and the input), cross-checked with
// the sampled resident set size; step time is reported alongside (one step, after one warm-up).
//
//   bench_revbifpn_memory [--batch 8] [--max-res 512] [--out DIR]  -> JSON lines, DIR/*.svg
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "report.hpp"
#include "rev/models/revbifpn.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;
using models::RevBiFPN;
using models::revbifpn::S0;

namespace {

// S0 with another number of extension layers (each: two RevBlock groups and a 4-level silo).
template <int D>
struct S0_depth : S0 {
  static constexpr int depth = D;
};

struct result {
  double rev_mb, os_mb, step_s;
};

template <class Cfg>
result step(RevBiFPN<Cfg>& net, index_t batch, index_t res, mode m) {
  auto image = testing::random_uniform<float>({batch, 3, res, res}, 1);
  auto dlogits = testing::random_uniform<float>({batch, 1000}, 2, -1e-3, 1e-3);
  auto run = [&] {
    context ctx{phase::train};
    typename RevBiFPN<Cfg>::cache tape{m};
    auto logits = net.forward(image, ctx, tape);
    net.backward(tape, dlogits);
  };
  run();  // warm-up: first-touch page faults and lazily sized buffers
  bench::rss_sampler rss;
  peak_scope<cpu> scope;
  const auto t0 = std::chrono::steady_clock::now();
  run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {scope.peak_above_start() / 1048576.0, rss.peak_above_start() / 1048576.0, seconds};
}

template <class Cfg>
void measure(const char* sweep, double x, index_t batch, index_t res, int depth, bench::line_chart& chart) {
  RevBiFPN<Cfg> net(0.0);
  for (mode m : {mode::stored, mode::reversible}) {
    const char* mode_name = m == mode::stored ? "stored" : "reversible";
    auto r = step(net, batch, res, m);
    bench::json_line()("bench", "revbifpn_memory")("sweep", sweep)("model", "S0")("depth", depth)("batch", batch)(
        "res", res)("mode", mode_name)("peak_activation_mb", r.rev_mb)("os_peak_rss_mb", r.os_mb)("step_s", r.step_s)
        .print();
    chart.series[mode_name].push_back({x, r.rev_mb});
  }
}

template <int R>
void resolution(index_t batch, int max_res, bench::line_chart& chart) {
  if (R <= max_res) measure<S0>("resolution", R, batch, R, 2, chart);
}

}  // namespace

int main(int argc, char** argv) {
  index_t batch = 8;
  int max_res = 512;
  std::string out = ".";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-res") && i + 1 < argc) max_res = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else {
      const bool help = !std::strcmp(argv[i], "--help");
      std::fprintf(help ? stdout : stderr, "usage: bench_revbifpn_memory [--batch 8] [--max-res 512] [--out DIR]\n");
      return help ? 0 : 2;
    }
  }
  mallopt(M_MMAP_THRESHOLD, 1 << 16);  // freed buffers go back to the OS: RSS follows the accounting

  bench::line_chart depth{
      "RevBiFPN-S0 training step vs extension depth d (224x224, batch " + std::to_string(batch) + ")",
      "d (extension layers)",
      "peak activation MB",
      true,
      {}};
  measure<S0_depth<2>>("depth", 2, batch, 224, 2, depth);
  measure<S0_depth<4>>("depth", 4, batch, 224, 4, depth);
  measure<S0_depth<8>>("depth", 8, batch, 224, 8, depth);
  measure<S0_depth<16>>("depth", 16, batch, 224, 16, depth);
  depth.write(out + "/revbifpn_memory_depth.svg");

  bench::line_chart res{"RevBiFPN-S0 training step vs resolution (d = 2, batch " + std::to_string(batch) + ")",
                        "input resolution (pixels)",
                        "peak activation MB",
                        false,
                        {}};
  resolution<128>(batch, max_res, res);
  resolution<192>(batch, max_res, res);
  resolution<256>(batch, max_res, res);
  resolution<320>(batch, max_res, res);
  resolution<384>(batch, max_res, res);
  resolution<448>(batch, max_res, res);
  resolution<512>(batch, max_res, res);
  res.write(out + "/revbifpn_memory_resolution.svg");
}
