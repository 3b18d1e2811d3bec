// Peak activation memory of a training step (forward + backward) vs depth, Stored vs
// Reversible mode, for a Chain of k Additive blocks on [8, 64, 56, 56] and a Chain of k
// Silo<4> blocks on a 4-level pyramid. Memory is rev's own accounting (peak bytes held by
// tensors above what was held before the step: parameters, gradients and the input are
// excluded), cross-checked with the peak resident set size sampled from the OS.
//
//   bench_coupling_memory [--max-depth 64] [--out DIR]   -> JSON lines on stdout, DIR/*.svg
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "report.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/resample.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/silo.hpp"

using namespace rev;

namespace {

using Half = nn::Sequential<nn::Conv2d<32, 32, nn::conv_opts{.kernel = 3}>, nn::BatchNorm2d<32>, nn::ReLU<>>;
using Block = Additive<Half, Half>;

constexpr int pow2(int k) { return 1 << k; }
using Pyramid = levels<16, 32, 64, 128>;
template <int I, int J>
using Down = nn::Sequential<
    nn::Conv2d<Pyramid::channels[I], Pyramid::channels[J], nn::conv_opts{.kernel = 3, .stride = pow2(J - I)}>,
    nn::BatchNorm2d<Pyramid::channels[J]>, nn::ReLU<>>;
template <int I, int J>
using Up = nn::Sequential<nn::Conv2d<Pyramid::channels[I], Pyramid::channels[J], nn::conv_opts{.kernel = 1}>,
                          nn::BatchNorm2d<Pyramid::channels[J]>, nn::UpsampleBilinear<pow2(I - J)>>;
using SiloBlock = Silo<Pyramid, Down, Up>;

struct measurement {
  double rev_mb, os_mb;
};

template <class Net>
measurement step(Net& net, const typename Net::input_type& x, mode m) {
  context ctx{phase::train};
  bench::rss_sampler rss;
  peak_scope<cpu> scope;
  {
    typename Net::cache tape{m};
    auto y = net.forward(x, ctx, tape);
    auto dy = y;
    if constexpr (requires { dy.fill(0.f); }) dy = Tensor<float>::full(y.shape(), 1e-3f);
    else
      for (auto& t : dy) t = Tensor<float>::full(t.shape(), 1e-3f);
    net.backward(tape, dy);
  }
  return {scope.peak_above_start() / 1048576.0, rss.peak_above_start() / 1048576.0};
}

template <class Net, class Input>
void sweep_one(const char* name, int depth, const Input& x, bench::line_chart& chart) {
  auto net = std::make_unique<Net>();
  for (mode m : {mode::stored, mode::reversible}) {
    const char* mode_name = m == mode::stored ? "stored" : "reversible";
    auto r = step(*net, x, m);
    bench::json_line()("bench", "coupling_memory")("chain", name)("depth", depth)("mode", mode_name)(
        "peak_activation_mb", r.rev_mb)("os_peak_rss_mb", r.os_mb)
        .print();
    chart.series[mode_name].push_back({static_cast<double>(depth), r.rev_mb});
  }
}

template <int... K>
void sweep_additive(int max_depth, const std::string& out) {
  bench::line_chart chart{
      "Chain of k Additive blocks, [8, 64, 56, 56], one training step", "k (blocks)", "peak activation MB", true, {}};
  auto x = testing::random_uniform<float>({8, 64, 56, 56}, 1);
  ((K <= max_depth ? sweep_one<Chain<Repeat<K, Block>>>("additive", K, x, chart) : void()), ...);
  chart.write(out + "/coupling_memory_additive.svg");
}

template <int... K>
void sweep_silo(int max_depth, const std::string& out) {
  bench::line_chart chart{"Chain of k Silo<4> blocks, levels 16/32/64/128 at 56/28/14/7, batch 8",
                          "k (silos)",
                          "peak activation MB",
                          true,
                          {}};
  Tensors<float, 4> x;
  for (int i = 0; i < 4; ++i) x[i] = testing::random_uniform<float>({8, Pyramid::channels[i], 56 >> i, 56 >> i}, 2 + i);
  ((K <= max_depth ? sweep_one<Chain<Repeat<K, SiloBlock>>>("silo4", K, x, chart) : void()), ...);
  chart.write(out + "/coupling_memory_silo.svg");
}

}  // namespace

int main(int argc, char** argv) {
  int max_depth = 64;
  std::string out = ".";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--max-depth") && i + 1 < argc) max_depth = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
  }
  // Large buffers always come from mmap and go back to the OS when freed, so the sampled
  // resident set follows rev's own accounting instead of malloc's free lists.
  mallopt(M_MMAP_THRESHOLD, 1 << 16);
  sweep_additive<2, 4, 8, 16, 32, 64>(max_depth, out);
  sweep_silo<2, 4, 8, 16, 32, 64>(max_depth, out);
}
