// Reconstruction drift: how far the input a reversible stack reconstructs from its output is from
// the true input, against depth. A Repeat of k Additive couplings (F and G: 3x3 conv -> ReLU on
// 16 of 32 channels, no normalisation) on [4, 32, 16, 16], in float32 and float64, at the
// default initialisation and with every weight scaled by 0.1; x^ = inverse(forward(x)) and
//   drift = max |x^ - x| / max |x|,   growth = (max |y| / max |x|)^(1/k) (per block).
// A float32 stack whose activations overflow reports "overflow". The chart leaves off drifts >= 1.
//
//   bench_drift [--out DIR]   -> JSON lines on stdout, DIR/drift.svg (log10 drift against depth)
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "report.hpp"
#include "rev/additive.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/testing/check_gradients.hpp"
#include "rev/testing/check_invertible.hpp"

using namespace rev;

namespace {

template <class T>
using Half = nn::Sequential<nn::Conv2d<16, 16, nn::conv_opts{.kernel = 3}, T>, nn::ReLU<T>>;

template <class T>
double max_abs(const Tensor<T>& t) {
  double m = 0;
  for (index_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(t.data()[i])));
  return m;
}

template <class T, int K>
void measure(const char* dtype, double scale, bench::line_chart& chart) {
  auto net = std::make_unique<Repeat<K, Additive<Half<T>, Half<T>>>>();
  if (scale != 1)
    net->for_each_parameter([&](const std::string&, Param<T>& p) { ops::scale_(p.value, static_cast<T>(scale)); });
  const Tensor<T> x = testing::random_uniform<T>({4, 32, 16, 16}, 1);
  context ctx{phase::eval};
  const Tensor<T> y = net->forward(x, ctx);
  const Tensor<T> back = net->inverse(y, ctx);
  const double growth = std::pow(max_abs(y) / max_abs(x), 1.0 / K);
  const double drift = testing::compare_states(back, x).max_rel;
  const std::string init = scale == 1 ? "default" : "scaled 0.1";
  bench::json_line line;
  line("bench", "drift")("dtype", dtype)("init", init)("depth", K);
  if (std::isfinite(drift) && std::isfinite(growth)) {
    line("max_abs_y", max_abs(y))("growth_per_block", growth)("drift", drift);
    if (drift < 1)  // beyond, the reconstruction is noise: left off the chart
      chart.series[std::string(dtype) + ", " + init].push_back({static_cast<double>(K), std::log10(drift + 1e-300)});
  } else {
    line("max_abs_y", "overflow")("growth_per_block", "overflow")("drift", "overflow");
  }
  line.print();
}

template <class T>
void sweep(const char* dtype, bench::line_chart& chart) {
  for (double scale : {1.0, 0.1}) {
    measure<T, 10>(dtype, scale, chart);
    measure<T, 100>(dtype, scale, chart);
    measure<T, 1000>(dtype, scale, chart);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = ".";
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
  bench::line_chart chart{"Reconstruction drift of k Additive couplings (no normalisation; drifts under 1)",
                          "k (blocks)",
                          "16 + log10 max|x^ - x| / max|x|",
                          true,
                          {}};
  sweep<float>("float32", chart);
  sweep<double>("float64", chart);
  // The chart's y axis starts at 0: plot log10 drift + 16 (float64's unit roundoff is 1e-16).
  for (auto& [name, points] : chart.series)
    for (auto& [k, y] : points) y += 16;
  chart.write(out + "/drift.svg");
}
