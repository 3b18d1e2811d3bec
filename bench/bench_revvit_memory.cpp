// Rev-ViT and Rev-MViT training-step memory (SlowFast layout, drop-path off): peak activation
// bytes of one training step (forward + backward), Stored and Reversible, in rev's accounting (the
// peak above the parameters, gradients and the input; the sampled resident set alongside).
//   1. Rev-ViT-B's width at depth 12, 24 and 48 (batch 4, 224x224): Stored grows with depth,
//      Reversible stays flat (only the two streams at the end and one block's recomputation live).
//   2. Memory per image of Rev-ViT-S, -B, -L and Rev-MViT-B at 224x224: the peak divided by the
//      batch, beside the paper's Table 1 (Rev-ViT 8.8 / 17.0 / 22.6 MB per image, ViT 66.5 / 129.7
//      / 349.3; Rev-MViT-B 66.8, MViT-B 153.6; measured on a GPU with PyTorch; Stored here is the
//      non-reversible baseline, with the same blocks).
//
//   bench_revvit_memory [--batch 4] [--models SBLM] [--depths 12,24,48] [--out DIR]
//     -> JSON lines, DIR/revvit_memory_depth.svg
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "report.hpp"
#include "rev/models/revmvit.hpp"
#include "rev/models/revvit.hpp"
#include "rev/testing/check_gradients.hpp"
#include "step_memory.hpp"

using namespace rev;
using models::RevViT;
namespace rv = models::revvit;

namespace {

template <int Depth>
struct B_depth : rv::B {
  static constexpr int depth = Depth;
  static constexpr double drop_path = 0;
};

template <class Net>
bench::step_memory step(Net& net, int image, index_t batch, mode m) {
  return bench::measure_step(net, testing::random_uniform<float>({batch, 3, image, image}, 1),
                             testing::random_uniform<float>({batch, Net::classes}, 2, -1e-3, 1e-3), m);
}

template <int Depth>
void depth_point(index_t batch, bench::line_chart& chart) {
  RevViT<B_depth<Depth>> net;
  for (mode m : {mode::stored, mode::reversible}) {
    const char* mode_name = m == mode::stored ? "stored" : "reversible";
    const auto r = step(net, 224, batch, m);
    bench::json_line()("bench", "revvit_memory_depth")("model", "Rev-ViT-B width")("depth", Depth)("batch", batch)(
        "res", 224)("mode", mode_name)("peak_activation_mb", r.rev_mb)("os_peak_rss_mb", r.os_mb)("step_s", r.step_s)
        .print();
    chart.series[mode_name].push_back({static_cast<double>(Depth), r.rev_mb});
  }
}

template <class Net>
void per_image(const std::string& model, index_t batch, double paper_rev_mb, double paper_vit_mb) {
  Net net;
  net.set_stochastic_depth(0);
  for (mode m : {mode::stored, mode::reversible}) {
    const auto r = step(net, 224, batch, m);
    bench::json_line()("bench", "revvit_memory_per_image")("model", model)("batch", batch)("res", 224)(
        "mode", m == mode::stored ? "stored" : "reversible")("peak_activation_mb", r.rev_mb)(
        "mb_per_image", r.rev_mb / static_cast<double>(batch))("os_peak_rss_mb", r.os_mb)("step_s", r.step_s)(
        "paper_mb_per_image", m == mode::stored ? paper_vit_mb : paper_rev_mb)
        .print();
  }
}

}  // namespace

int main(int argc, char** argv) {
  index_t batch = 4;
  std::string models = "SBLM", depths = "12,24,48", out = ".";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
    else if (!std::strcmp(argv[i], "--depths") && i + 1 < argc) depths = argv[++i];
    else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else {
      const bool help = !std::strcmp(argv[i], "--help");
      std::fprintf(help ? stdout : stderr,
                   "usage: bench_revvit_memory [--batch 4] [--models SBLM] [--depths 12,24,48] [--out DIR]\n");
      return help ? 0 : 2;
    }
  }
  if (batch < 1) {
    std::fprintf(stderr, "bench_revvit_memory: --batch must be >= 1\n");
    return 2;
  }
  mallopt(M_MMAP_THRESHOLD, 1 << 16);  // freed buffers go back to the OS: RSS follows the accounting

  bench::line_chart chart{"Rev-ViT-B width, training step vs depth (224x224, batch " + std::to_string(batch) + ")",
                          "depth (blocks)",
                          "peak activation MB",
                          true,
                          {}};
  if (depths.find("12") != std::string::npos) depth_point<12>(batch, chart);
  if (depths.find("24") != std::string::npos) depth_point<24>(batch, chart);
  if (depths.find("48") != std::string::npos) depth_point<48>(batch, chart);
  if (!chart.series.empty()) chart.write(out + "/revvit_memory_depth.svg");
  if (models.find('S') != std::string::npos) per_image<RevViT<rv::S>>("Rev-ViT-S", batch, 8.8, 66.5);
  if (models.find('B') != std::string::npos) per_image<RevViT<rv::B>>("Rev-ViT-B", batch, 17.0, 129.7);
  if (models.find('L') != std::string::npos) per_image<RevViT<rv::L>>("Rev-ViT-L", batch, 22.6, 349.3);
  if (models.find('M') != std::string::npos)
    per_image<models::RevMViT<models::revmvit::B>>("Rev-MViT-B", batch, 66.8, 153.6);
}
