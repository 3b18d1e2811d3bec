// RevNet-38/110/164 (spec revup-revnet.md §2): parameter counts of the official topology, the
// non-reversible transition unit against finite differences, stored vs reversible training
// steps, activation memory flat in the number of units, keys, and bad input.
#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/models/revnet.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;
using models::RevNet;
namespace rn = models::revnet;

namespace {

// Small CIFAR-style configurations for the float64 and memory checks.
template <rn::block K, int Units>
struct tiny {
  static constexpr const char* name = "tiny";
  static constexpr rn::block kind = K;
  static constexpr int units = Units;
  static constexpr int stem = 8;
  static constexpr std::array<int, 3> c =
      K == rn::block::basic ? std::array<int, 3>{8, 16, 24} : std::array<int, 3>{16, 32, 48};
  static constexpr std::array<int, 3> stride{1, 2, 2};
  static constexpr int classes = 5;
};

template <class Net>
std::vector<Tensor<typename Net::value_type>> gradients(Net& net) {
  std::vector<Tensor<typename Net::value_type>> g;
  net.for_each_parameter([&](const std::string&, Param<typename Net::value_type>& p) { g.push_back(p.grad.clone()); });
  return g;
}

}  // namespace

TEST_CASE("RevNet-38/110/164: parameter counts equal the official topology's") {
  RevNet<rn::R38> r38;
  RevNet<rn::R110> r110;
  RevNet<rn::R164> r164;
  CHECK(parameter_count(r38) == 464890);
  CHECK(parameter_count(r110) == 1729194);
  CHECK(parameter_count(r164) == 1748778);
  CHECK(rn::R164::reference_parameters == 1748778);
}

TEST_CASE("RevNet: transition units match finite differences (float64, train-phase BN)") {
  SUBCASE("basic, stride 2, zero-padded shortcut") {
    rn::Transition<rn::block::basic, 8, 16, 2, true, double> t;
    const auto r = testing::check_gradients(t, test::random({2, 8, 6, 6}, 1));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  SUBCASE("basic, stride 1, identity shortcut, no leading BN-ReLU in F") {
    rn::Transition<rn::block::basic, 8, 8, 1, false, double> t;
    const auto r = testing::check_gradients(t, test::random({2, 8, 5, 5}, 2));
    CHECK_MESSAGE(r.ok(), r.str());
  }
  SUBCASE("bottleneck, stride 2, projection shortcuts") {
    rn::Transition<rn::block::bottleneck, 8, 16, 2, true, double> t;
    const auto r = testing::check_gradients(t, test::random({2, 8, 4, 4}, 3));
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("RevNet: the basic shortcut is average pooling then zero channels on both sides of each half") {
  // F = G = 0 isolates the shortcut: y1 = sc(x1), y2 = sc(x2).
  rn::Transition<rn::block::basic, 4, 8, 2, true, double> t;
  t.for_each_parameter([](const std::string&, Param<double>& p) { p.value.fill(0); });
  const Tensor<double> x = test::random({2, 4, 2, 2}, 4);  // two samples: train-phase BN needs two values
  context ctx{phase::train};
  const Tensor<double> y = t.forward(x, ctx);
  REQUIRE(y.shape() == Shape{2, 8, 1, 1});
  auto mean = [&](index_t c) { return (x(0, c, 0, 0) + x(0, c, 0, 1) + x(0, c, 1, 0) + x(0, c, 1, 1)) / 4; };
  const std::array<double, 8> expected{0, mean(0), mean(1), 0, 0, mean(2), mean(3), 0};
  for (index_t c = 0; c < 8; ++c)
    CHECK(y(0, c, 0, 0) == doctest::Approx(expected[static_cast<std::size_t>(c)]).epsilon(1e-15));
}

TEST_CASE("RevNet: reversible and stored training steps give the same gradients") {
  SUBCASE("float64, basic") {
    RevNet<tiny<rn::block::basic, 3>, double> a, b;
    b.load(a.state_dict());
    const Tensor<double> x = test::random({2, 3, 8, 8}, 5), dy = test::random({2, 5}, 6);
    context ctx{phase::train};
    decltype(a)::cache ta{mode::stored}, tb{mode::reversible};
    CHECK(test::max_abs_error(a.forward(x, ctx, ta), b.forward(x, ctx, tb)) == 0);
    CHECK(test::max_rel_error(b.backward(tb, dy), a.backward(ta, dy)) < 1e-10);
    const auto ga = gradients(a), gb = gradients(b);
    for (std::size_t i = 0; i < ga.size(); ++i) CHECK(test::max_abs_error(ga[i], gb[i]) < 1e-10);
    CHECK(test::max_abs_error(a.state_dict().at("stage2.units.0.g.0.running_mean").to_tensor<double>(),
                              b.state_dict().at("stage2.units.0.g.0.running_mean").to_tensor<double>()) == 0);
  }
  SUBCASE("float32, RevNet-164") {
    RevNet<rn::R164> a, b;
    b.load(a.state_dict());
    const Tensor<float> x = test::random<float>({2, 3, 16, 16}, 7), dy = test::random<float>({2, 10}, 8);
    context ctx{phase::train};
    decltype(a)::cache ta{mode::stored}, tb{mode::reversible};
    CHECK(test::max_abs_error(a.forward(x, ctx, ta), b.forward(x, ctx, tb)) == 0);
    const Tensor<float> da = a.backward(ta, dy), db = b.backward(tb, dy);
    CHECK(test::max_rel_error(db, da, 1e-6) < 1e-3);
    const auto ga = gradients(a), gb = gradients(b);
    double worst = 0;
    for (std::size_t i = 0; i < ga.size(); ++i) {
      const double scale = std::max(1e-6, test::max_abs_error(ga[i], Tensor<float>(ga[i].shape())));
      worst = std::max(worst, test::max_abs_error(ga[i], gb[i]) / scale);
    }
    MESSAGE("RevNet-164 float32, reversible vs stored: worst parameter gradient error (relative to its max) ", worst);
    CHECK(worst < 1e-3);
  }
}

TEST_CASE("RevNet: reversible activation memory does not grow with the number of units") {
  auto peak = [](auto& net, mode m) {
    const Tensor<float> x = test::random<float>({8, 3, 32, 32}, 9), dy = test::random<float>({8, 5}, 10);
    context ctx{phase::train};
    typename std::remove_reference_t<decltype(net)>::cache tape{m};
    peak_scope<cpu> s;
    net.forward(x, ctx, tape);
    net.backward(tape, dy);
    return static_cast<double>(s.peak_above_start());
  };
  RevNet<tiny<rn::block::basic, 3>> shallow;
  RevNet<tiny<rn::block::basic, 12>> deep;
  const double rs = peak(shallow, mode::reversible), rd = peak(deep, mode::reversible);
  const double ss = peak(shallow, mode::stored), sd = peak(deep, mode::stored);
  MESSAGE("peak bytes, 3 vs 12 units per stage: reversible ", rs, " vs ", rd, ", stored ", ss, " vs ", sd);
  CHECK(rd <= 1.05 * rs);
  CHECK(sd > 3 * ss);
}

TEST_CASE("RevNet: keys and a state_dict round trip") {
  RevNet<rn::R38> a;
  const io::file f = a.state_dict();
  for (const char* key :
       {"init.0.weight", "init.1.running_var", "stage1.transition.f.0.weight", "stage1.transition.g.2.weight",
        "stage2.transition.f.0.weight", "stage3.units.1.g.5.weight", "head.0.weight", "head.4.weight", "head.4.bias"})
    CHECK_MESSAGE(f.contains(key), key);
  CHECK(f.at("stage1.transition.f.0.weight").shape == Shape{16, 16, 3, 3});  // first unit: no leading BN in F
  CHECK(f.at("stage2.transition.f.0.weight").shape == Shape{16});            // BN over the 16-channel half
  CHECK(f.at("stage3.transition.f.2.weight").shape == Shape{56, 32, 3, 3});
  CHECK(f.at("head.4.weight").shape == Shape{10, 112});
  RevNet<rn::R38> b;
  b.load(f);
  CHECK(test::max_abs_error(b.state_dict().at("stage3.units.1.g.5.weight").to_tensor<float>(),
                            f.at("stage3.units.1.g.5.weight").to_tensor<float>()) == 0);
  RevNet<rn::R164> bottleneck;
  const io::file fb = bottleneck.state_dict();
  CHECK(fb.at("stage1.transition.shortcut.0.weight").shape == Shape{64, 16, 1, 1});
  CHECK(fb.at("stage3.units.0.f.2.weight").shape == Shape{64, 256, 1, 1});
}

TEST_CASE("RevNet: bad input gives clear errors") {
  RevNet<rn::R38> net;
  context ctx{phase::eval};
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 1, 32, 32}), ctx),
                       "rev::models::RevNet<revnet-38>: image has extents [1, 1, 32, 32], expected [B, 3, H, W]",
                       shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 3, 30, 32}), ctx),
                       "rev::models::RevNet<revnet-38>: image has extents [1, 3, 30, 32], H and W must be positive "
                       "multiples of 4",
                       shape_error);
  RevNet<rn::R110> other;
  const io::file before = net.state_dict();
  CHECK_THROWS_WITH_AS(
      net.load(other.state_dict()),
      "rev::models::RevNet<revnet-38>::load: key 'stage3.transition.f.2.weight' has extents [64, 32, 3, 3] in "
      "the file, expected [56, 32, 3, 3]",
      io_error);
  // A failed strict load leaves the model as it was, though the stage-1 keys of RevNet-110 fit.
  const io::file after = net.state_dict();
  REQUIRE(after.entries.size() == before.entries.size());
  for (const auto& [key, e] : before.entries) CHECK_MESSAGE(after.at(key).bytes == e.bytes, key);
  const auto report = net.load(other.state_dict(), false);
  CHECK(report.unexpected.size() > 0);
  CHECK(report.mismatched.size() > 0);
  decltype(net)::cache tape{mode::reversible};
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 3, 32, 32}), ctx, tape),
                       doctest::Contains("needs a train-phase context"), value_error);
  decltype(net)::cache stored{mode::stored};
  net.forward(Tensor<float>({1, 3, 32, 32}), ctx, stored);
  CHECK_THROWS_WITH_AS(net.backward(stored, Tensor<float>({1, 1000})),
                       "rev::nn::Linear<112,10>: output gradient has extents [1, 1000], expected [..., 10]",
                       shape_error);
}
