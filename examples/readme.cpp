// The ten-line example of README.md, compiled so that the README stays true.
#include <rev/additive.hpp>
#include <rev/nn/conv2d.hpp>

int main() {
  using F = rev::nn::Conv2d<16, 16, {.kernel = 3}>;            // any layer maps x2 -> x1's shape
  rev::Chain<rev::Repeat<8, rev::Additive<F, F>>> net;         // y1 = x1 + F(x2); y2 = x2 + G(y1)
  rev::Tensor<float> x({4, 32, 28, 28});                       // [N, C, H, W]; C = 2 * 16
  rev::context ctx{rev::phase::train};
  decltype(net)::cache tape{rev::mode::reversible};            // keep no activations
  auto y  = net.forward(x, ctx, tape);
  auto dx = net.backward(tape, rev::Tensor<float>(y.shape())); // inputs recomputed from outputs
  return dx.shape() == x.shape() ? 0 : 1;
}
