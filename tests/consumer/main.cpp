// A downstream program, as a user of the installed (or added, or fetched) rev writes it: two
// additive couplings chained, forward then inverse on a random input. Exits non-zero when the
// reconstruction is off by more than 1e-4.
#include <rev/additive.hpp>
#include <rev/nn/conv2d.hpp>
#include <rev/nn/init.hpp>
#include <rev/silo.hpp>
#include <rev/testing/check_invertible.hpp>

#include <cstdio>

int main() {
  using F = rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;  // maps one channel half (4) to the other
  using Block = rev::Additive<F, F>;                                 // y1 = x1 + F(x2), y2 = x2 + G(y1)
  rev::Chain<Block, Block> net;

  rev::manual_seed(7);
  rev::Tensor<float> x({2, 8, 6, 6});  // [N, C, H, W], C = 2 * 4
  rev::nn::init::normal(x, 0.0, 1.0);

  rev::context ctx{rev::phase::eval};
  auto y = net.forward(x, ctx);
  auto back = net.inverse(y, ctx);

  // max |back - x| (a shape mismatch throws rev::shape_error) and how far forward moved x
  const double err = rev::testing::compare_states(back, x).max_abs;
  const double change = rev::testing::compare_states(y, x).max_abs;
  std::printf("rev_consumer: max |inverse(forward(x)) - x| = %g (forward moved x by up to %g)\n", err, change);
  return err <= 1e-4 && change > 0 ? 0 : 1;
}
