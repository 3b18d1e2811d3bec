// The flagship example for now: a small reversible network trained for a few steps on random
// data, in Stored and in Reversible mode from the same initial weights. Prints the loss of each
// step and the peak activation memory of each mode, measured by rev's allocator accounting.
#include <cstdio>
#include <vector>

#include "rev/additive.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/flatten.hpp"
#include "rev/nn/init.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/train/sgd.hpp"

using namespace rev;

// y1 = x1 + F(x2), y2 = x2 + G(y1), F and G: conv 3x3 -> BatchNorm -> ReLU on 16 channels.
using Half = nn::Sequential<nn::Conv2d<16, 16, nn::conv_opts{.kernel = 3}>, nn::BatchNorm2d<16>, nn::ReLU<>>;
using Net =
    Chain<nn::Sequential<nn::Conv2d<3, 32, nn::conv_opts{.kernel = 3}>, nn::BatchNorm2d<32>, nn::ReLU<>>,  // stem
          Repeat<8, Additive<Half, Half>>,                                          // reversible body
          nn::Sequential<nn::GlobalAvgPool<>, nn::Flatten<>, nn::Linear<32, 10>>>;  // head

int main() {
  constexpr int batch = 32, size = 32, steps = 8;
  Generator data(2024);
  std::vector<float> losses[2];
  double peak_mb[2];
  for (mode m : {mode::stored, mode::reversible}) {
    manual_seed(1);  // the same initial weights in both modes
    Net net;
    train::SGD<float> opt(net, {.lr = 0.02, .momentum = 0.9});
    data.seed(7);  // and the same batches
    const auto k = static_cast<int>(m);
    std::printf("%s mode\n", m == mode::stored ? "Stored" : "Reversible");
    memory<cpu>::reset_peak();
    std::size_t held_before = 0, peak = 0;
    for (int step = 0; step < steps; ++step) {
      Tensor<float> x({batch, 3, size, size});
      nn::init::normal(x, 0, 1, data);
      // A learnable rule: the class is the sign pattern of the three channel means (8 classes).
      std::vector<int> labels(batch);
      for (int i = 0; i < batch; ++i) {
        int label = 0;
        for (int c = 0; c < 3; ++c) {
          double mean = 0;
          for (int p = 0; p < size * size; ++p) mean += x.data()[(i * 3 + c) * size * size + p];
          label |= (mean > 0) << c;
        }
        labels[static_cast<std::size_t>(i)] = label;
      }

      held_before = memory<cpu>::current();
      memory<cpu>::reset_peak();
      context ctx{phase::train};
      Net::cache tape{m};
      Tensor<float> logits = net.forward(x, ctx, tape);
      const double loss = ops::cross_entropy(logits, labels);
      opt.zero_grad();
      net.backward(tape, ops::cross_entropy_backward(logits, labels));
      opt.step();
      peak = std::max(peak, memory<cpu>::peak() - held_before);
      losses[k].push_back(static_cast<float>(loss));
      std::printf("  step %d  loss %.6f\n", step, loss);
    }
    peak_mb[k] = peak / 1048576.0;
    std::printf("  peak activation memory of a training step: %.2f MB\n", peak_mb[k]);
  }
  std::printf("Reversible / Stored peak activation memory: %.2f\n", peak_mb[1] / peak_mb[0]);
  float worst = 0;
  for (int i = 0; i < steps; ++i)
    worst = std::max(worst, std::abs(losses[0][static_cast<std::size_t>(i)] - losses[1][static_cast<std::size_t>(i)]));
  std::printf("largest loss difference between the modes over %d steps: %.2e\n", steps, worst);
  return worst < 1e-3f ? 0 : 1;
}
