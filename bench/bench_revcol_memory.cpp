// RevCol training-step memory vs the number of columns: peak activation bytes of one training
// step (forward + backward) of RevCol-T's widths and blocks (C = 64..512, B = 2-2-4-2, the final
// classifier only) at 2, 4, 8 and 16 columns, batch 8, 224x224, in Stored and Reversible mode.
// The official code keeps every column's four outputs even in its reversible mode (memory linear
// in the columns); rev keeps nothing of a column. Memory is rev's accounting (peak above the
// parameters, gradients and the input), cross-checked with the sampled resident set size; one
// step after one warm-up, its time alongside.
//
//   bench_revcol_memory [--batch 8] [--res 224] [--max-columns 16] [--out DIR]  -> JSON lines, DIR/*.svg
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "report.hpp"
#include "rev/models/revcol.hpp"
#include "rev/testing/check_gradients.hpp"
#include "step_memory.hpp"

using namespace rev;
using models::RevCol;
namespace rc = models::revcol;

namespace {

// RevCol-T with another number of columns, without the intermediate heads.
template <int Columns>
struct T_columns : rc::T {
  static constexpr int columns = Columns;
  static constexpr bool inter_supv = false;
};

template <int Columns>
void measure(index_t batch, index_t res, int max_columns, bench::line_chart& chart) {
  if (Columns > max_columns) return;
  RevCol<T_columns<Columns>> net;
  for (mode m : {mode::stored, mode::reversible}) {
    const char* mode_name = m == mode::stored ? "stored" : "reversible";
    const auto r = bench::measure_step(net, testing::random_uniform<float>({batch, 3, res, res}, 1),
                                       testing::random_uniform<float>({batch, 1000}, 2, -1e-3, 1e-3), m);
    bench::json_line()("bench", "revcol_memory")("model", "RevCol-T widths")("columns", Columns)("batch", batch)(
        "res", res)("mode", mode_name)("peak_activation_mb", r.rev_mb)("os_peak_rss_mb", r.os_mb)("step_s", r.step_s)
        .print();
    chart.series[mode_name].push_back({static_cast<double>(Columns), r.rev_mb});
  }
}

}  // namespace

int main(int argc, char** argv) {
  index_t batch = 8, res = 224;
  int max_columns = 16;
  std::string out = ".";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--res") && i + 1 < argc) res = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-columns") && i + 1 < argc) max_columns = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else {
      const bool help = !std::strcmp(argv[i], "--help");
      std::fprintf(help ? stdout : stderr,
                   "usage: bench_revcol_memory [--batch 8] [--res 224] [--max-columns 16] [--out DIR]\n");
      return help ? 0 : 2;
    }
  }
  if (batch < 1 || res < 32 || res % 32 != 0) {
    std::fprintf(stderr, "bench_revcol_memory: --batch must be >= 1 and --res a positive multiple of 32\n");
    return 2;
  }
  mallopt(M_MMAP_THRESHOLD, 1 << 16);  // freed buffers go back to the OS: RSS follows the accounting

  bench::line_chart chart{"RevCol-T training step vs number of columns (" + std::to_string(res) + "x" +
                              std::to_string(res) + ", batch " + std::to_string(batch) + ")",
                          "columns",
                          "peak activation MB",
                          true,
                          {}};
  measure<2>(batch, res, max_columns, chart);
  measure<4>(batch, res, max_columns, chart);
  measure<8>(batch, res, max_columns, chart);
  measure<16>(batch, res, max_columns, chart);
  chart.write(out + "/revcol_memory_columns.svg");
}
