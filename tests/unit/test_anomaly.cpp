// Anomaly mode (rev::detect_anomaly) and the rule that a tape holds one forward for one backward.
#include <cmath>
#include <limits>

#include "helpers.hpp"
#include "rev/additive.hpp"
#include "rev/core/named.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/testing/check_invertible.hpp"

using namespace rev;
using doctest::Contains;

namespace {

using Half = nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3}, float>;
using Net = Chain<Named<"stem", nn::Conv2d<3, 4, nn::conv_opts{.kernel = 3}, float>>,
                  Named<"blocks", Repeat<3, Additive<Half, Half>>>,
                  Named<"head", nn::Conv2d<4, 4, nn::conv_opts{.kernel = 1}, float>>>;
constexpr float not_a_number = std::numeric_limits<float>::quiet_NaN();
constexpr float infinity = std::numeric_limits<float>::infinity();

}  // namespace

TEST_CASE("detect_anomaly: off by default; on, a NaN made in the forward pass is named by block, pass and step") {
  Net net;
  float& w = net.get<1>()[1].g().weight.value.data()[0];
  w = not_a_number;
  const auto x = test::random<float>({2, 3, 8, 8}, 1);
  context ctx{phase::train};
  CHECK_FALSE(detect_anomaly::enabled());
  {
    Net::cache tape{mode::reversible};
    CHECK(std::isnan(ops::sum(net.forward(x, ctx, tape))));
  }
  for (mode m : {mode::stored, mode::reversible}) {
    detect_anomaly anomaly(7);
    CHECK(detect_anomaly::enabled());
    Net::cache tape{m};
    CHECK_THROWS_WITH_AS(net.forward(x, ctx, tape),
                         "rev::detect_anomaly: NaN or infinity in block 'blocks.1' in the forward pass (its output) "
                         "(extents [2, 4, 8, 8]), step 7",
                         value_error);
    CHECK_THROWS_WITH_AS(net.forward(x, ctx), Contains("block 'blocks.1' in the forward pass"), value_error);
    // The path unwinds with the exception: the next report names its own block only.
    w = 0.5f;
    net.get<2>().weight.value.data()[3] = infinity;
    anomaly.set_step(8);
    CHECK_THROWS_WITH_AS(net.forward(x, ctx, tape), Contains("in block 'head' in the forward pass (its output) "),
                         value_error);
    CHECK_THROWS_WITH_AS(net.forward(x, ctx, tape), Contains("step 8"), value_error);
    net.get<2>().weight.value.data()[3] = 0.5f;
    w = not_a_number;
  }
  CHECK_FALSE(detect_anomaly::enabled());
}

TEST_CASE("detect_anomaly: a bad reconstruction and a bad gradient in the reversible backward are named") {
  Net net;
  const auto x = test::random<float>({2, 3, 8, 8}, 2);
  const auto dy = test::random<float>({2, 4, 8, 8}, 3);
  context ctx{phase::train};
  detect_anomaly anomaly(3);
  {
    // Block 2 of the stack changes after the forward: its walk back reconstructs a NaN input.
    Net::cache tape{mode::reversible};
    net.forward(x, ctx, tape);
    float& w = net.get<1>()[2].f().weight.value.data()[0];
    const float kept = w;
    w = not_a_number;
    CHECK_THROWS_WITH_AS(net.backward(tape, dy),
                         Contains("in block 'blocks.2' in the backward pass (the input the walk back reconstructed"),
                         value_error);
    w = kept;
  }
  for (mode m : {mode::stored, mode::reversible}) {
    // An infinite output gradient: the head's gradient is the first non-finite one.
    Net::cache tape{m};
    net.forward(x, ctx, tape);
    Tensor<float> bad = dy.clone();
    bad.data()[5] = infinity;
    CHECK_THROWS_WITH_AS(net.backward(tape, bad),
                         Contains("in block 'head' in the backward pass (the gradient with respect to its input)"),
                         value_error);
  }
}

TEST_CASE("detect_anomaly: finite values pass the checks unchanged") {
  Net net;
  const auto x = test::random<float>({2, 3, 8, 8}, 4);
  const auto dy = test::random<float>({2, 4, 8, 8}, 5);
  context ctx{phase::train};
  auto step = [&] {
    Net::cache tape{mode::reversible};
    net.forward(x, ctx, tape);
    return net.backward(tape, dy);
  };
  const Tensor<float> off = step();
  detect_anomaly anomaly;
  CHECK(test::max_abs_error(step(), off) == 0);
}

TEST_CASE("A tape holds one forward for one backward: a backward on an unused or consumed tape is refused") {
  Net net;
  const auto x = test::random<float>({2, 3, 8, 8}, 6);
  const auto dy = test::random<float>({2, 4, 8, 8}, 7);
  context ctx{phase::train};
  for (mode m : {mode::stored, mode::reversible}) {
    Net::cache tape{m};
    CHECK_THROWS_WITH_AS(net.backward(tape, dy),
                         Contains("rev::Chain::backward: backward on a tape that holds no forward"), value_error);
    net.forward(x, ctx, tape);
    const Tensor<float> dx = net.backward(tape, dy);
    CHECK_THROWS_WITH_AS(net.backward(tape, dy), Contains("an earlier backward consumed it"), value_error);
    net.forward(x, ctx, tape);
    CHECK(test::max_abs_error(net.backward(tape, dy), dx) == 0);
    Repeat<2, Additive<Half, Half>> stack;
    Repeat<2, Additive<Half, Half>>::cache inner{m};
    CHECK_THROWS_WITH_AS(stack.backward(inner, dy), Contains("rev::Repeat::backward: backward on a tape that holds no"),
                         value_error);
  }
}

TEST_CASE("compare_states: max |a - b| and its ratio to max |b|; a NaN or infinity makes them non-finite") {
  Tensor<double> b({2, 3});
  b.data()[0] = 2;
  b.data()[4] = -4;
  Tensor<double> a = b.clone();
  a.data()[1] = 0.5;
  testing::difference d = testing::compare_states(a, b);
  CHECK(d.max_abs == 0.5);
  CHECK(d.max_rel == 0.125);
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    Tensor<double> c = a.clone();
    c.data()[2] = bad;
    c.data()[5] = 3;  // a finite difference after the bad one does not hide it
    d = testing::compare_states(c, b);
    CHECK(std::isnan(d.max_abs) == std::isnan(bad));
    CHECK_FALSE(d.max_rel <= 1.0);
    CHECK_FALSE(testing::compare_states(Tensors<double, 2>{b, c}, Tensors<double, 2>{b, b}).max_rel <= 1.0);
  }
  CHECK_THROWS_WITH_AS(testing::compare_states(Tensor<double>({3, 2}), b),
                       "rev::testing::compare_states: states differ in extents: [3, 2] vs [2, 3]", shape_error);
  // An invertibility check of a coupling that makes NaNs fails.
  Additive<nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3}, double>, nn::Conv2d<2, 2, nn::conv_opts{.kernel = 3}, double>>
      block;
  block.f().weight.value.data()[0] = std::numeric_limits<double>::quiet_NaN();
  CHECK_FALSE(testing::check_invertible(block, test::random({2, 4, 6, 6}, 9)).ok(1e-6));
}
