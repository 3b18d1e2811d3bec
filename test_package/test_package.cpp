// Smoke test of an installed rev package: a two-block reversible network (additive couplings of
// 3x3 convolutions) must reconstruct its input from its output.
#include <cstdio>

#include <rev/nn/conv2d.hpp>
#include <rev/silo.hpp>
#include <rev/testing/check_gradients.hpp>
#include <rev/testing/check_invertible.hpp>

int main() {
  using F = rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;  // maps one half of the channels to the other
  rev::Chain<rev::Additive<F, F>, rev::Additive<F, F>> net;
  const rev::Tensor<float> x = rev::testing::random_uniform<float>({2, 8, 6, 6}, 7);  // [N, C, H, W]
  rev::context ctx{rev::phase::eval};
  const rev::Tensor<float> y = net.forward(x, ctx);
  const rev::Tensor<float> x_back = net.inverse(y, ctx);
  const double max_error = rev::testing::compare_states(x_back, x).max_abs;
  const double max_change = rev::testing::compare_states(y, x).max_abs;
  const bool ok = max_error <= 1e-4 && max_change > 1e-3;  // reconstructs, and is not the identity
#ifdef REV_WITH_CUDA
  std::printf("rev test_package: REV_WITH_CUDA=%d (the CUDA libraries are linked, not called)\n", REV_WITH_CUDA);
#endif
  std::printf("rev test_package: 2 additive blocks, max |inverse(forward(x)) - x| = %.3g, max |y - x| = %.3g: %s\n",
              max_error, max_change, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
