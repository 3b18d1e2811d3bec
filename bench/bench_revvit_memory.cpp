// Rev-ViT training-step memory (SlowFast layout, drop-path off): peak activation bytes of one
// training step (forward + backward), Stored and Reversible, in rev's accounting (the peak above
// the parameters, gradients and the input; the sampled resident set alongside).
//   1. Rev-ViT-S's width at depth 6, 12 and 24 (batch 4, 224x224): Stored grows with depth,
//      Reversible stays flat (only the two streams at the end and one block's recomputation live).
//   2. Memory per image of Rev-ViT-S, -B and -L at 224x224: the peak divided by the batch, beside
//      the paper's Table 1 (Rev-ViT 8.8 / 17.0 / 22.6 MB per image, ViT 66.5 / 129.7 / 349.3,
//      measured on a GPU with PyTorch; Stored here is the ViT-like baseline).
//
//   bench_revvit_memory [--batch 4] [--models SBL] [--out DIR]  -> JSON lines, DIR/revvit_memory_depth.svg
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "report.hpp"
#include "rev/models/revvit.hpp"
#include "rev/testing/check_gradients.hpp"
#include "step_memory.hpp"

using namespace rev;
using models::RevViT;
namespace rv = models::revvit;

namespace {

template <int Depth>
struct S_depth : rv::S {
  static constexpr int depth = Depth;
  static constexpr double drop_path = 0;
};

template <class Cfg>
bench::step_memory step(RevViT<Cfg>& net, index_t batch, mode m) {
  return bench::measure_step(net, testing::random_uniform<float>({batch, 3, Cfg::image, Cfg::image}, 1),
                             testing::random_uniform<float>({batch, Cfg::classes}, 2, -1e-3, 1e-3), m);
}

template <int Depth>
void depth_point(index_t batch, bench::line_chart& chart) {
  RevViT<S_depth<Depth>> net;
  for (mode m : {mode::stored, mode::reversible}) {
    const char* mode_name = m == mode::stored ? "stored" : "reversible";
    const auto r = step(net, batch, m);
    bench::json_line()("bench", "revvit_memory_depth")("model", "Rev-ViT-S width")("depth", Depth)("batch", batch)(
        "res", 224)("mode", mode_name)("peak_activation_mb", r.rev_mb)("os_peak_rss_mb", r.os_mb)("step_s", r.step_s)
        .print();
    chart.series[mode_name].push_back({static_cast<double>(Depth), r.rev_mb});
  }
}

template <class Cfg>
void per_image(index_t batch, double paper_rev_mb, double paper_vit_mb) {
  RevViT<Cfg> net;
  net.set_stochastic_depth(0);
  for (mode m : {mode::stored, mode::reversible}) {
    const auto r = step(net, batch, m);
    bench::json_line()("bench", "revvit_memory_per_image")("model", std::string("Rev-ViT-") + Cfg::name)(
        "batch", batch)("res", 224)("mode", m == mode::stored ? "stored" : "reversible")(
        "peak_activation_mb", r.rev_mb)("mb_per_image", r.rev_mb / static_cast<double>(batch))(
        "os_peak_rss_mb", r.os_mb)("step_s", r.step_s)("paper_mb_per_image",
                                                       m == mode::stored ? paper_vit_mb : paper_rev_mb)
        .print();
  }
}

}  // namespace

int main(int argc, char** argv) {
  index_t batch = 4;
  std::string models = "SBL", out = ".";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
    else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else {
      const bool help = !std::strcmp(argv[i], "--help");
      std::fprintf(help ? stdout : stderr, "usage: bench_revvit_memory [--batch 4] [--models SBL] [--out DIR]\n");
      return help ? 0 : 2;
    }
  }
  if (batch < 1) {
    std::fprintf(stderr, "bench_revvit_memory: --batch must be >= 1\n");
    return 2;
  }
  mallopt(M_MMAP_THRESHOLD, 1 << 16);  // freed buffers go back to the OS: RSS follows the accounting

  bench::line_chart chart{"Rev-ViT-S width, training step vs depth (224x224, batch " + std::to_string(batch) + ")",
                          "depth (blocks)",
                          "peak activation MB",
                          true,
                          {}};
  depth_point<6>(batch, chart);
  depth_point<12>(batch, chart);
  depth_point<24>(batch, chart);
  chart.write(out + "/revvit_memory_depth.svg");
  if (models.find('S') != std::string::npos) per_image<rv::S>(batch, 8.8, 66.5);
  if (models.find('B') != std::string::npos) per_image<rv::B>(batch, 17.0, 129.7);
  if (models.find('L') != std::string::npos) per_image<rv::L>(batch, 22.6, 349.3);
}
