#include "helpers.hpp"
#include "rev/models/revbifpn.hpp"
#include "revbifpn_golden.hpp"

#include <filesystem>
#include <map>
#include <vector>

using namespace rev;
using models::RevBiFPN;
namespace rb = models::revbifpn;

namespace {

const std::string golden = std::string(REV_GOLDEN_DIR) + "/revbifpn/revbifpn_s0_b2_r64";

bool have_golden() { return std::filesystem::exists(golden + ".weights.safetensors"); }

template <class Cfg>
constexpr bool counts_match() {
  return rb::parameter_count<Cfg>() == Cfg::reference_parameters;
}

using testing::worst;
using testing::zero_gradient;

}  // namespace

TEST_CASE("RevBiFPN: parameter counts of S0..S6 equal spec §11") {
  static_assert(counts_match<rb::S0>() && counts_match<rb::S1>() && counts_match<rb::S2>() && counts_match<rb::S3>() &&
                counts_match<rb::S4>() && counts_match<rb::S5>() && counts_match<rb::S6>());
  CHECK(rb::parameter_count<rb::S0>() == 3419196);
  CHECK(rb::parameter_count<rb::S6>() == 142307972);
  RevBiFPN<rb::S0> net;
  CHECK(parameter_count(net) == 3419196);
}

TEST_CASE("RevBiFPN-S0: keys and extents are those of the official state_dict") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  RevBiFPN<rb::S0> net;
  auto ours = testing::keys_of(net);
  CHECK(ours.size() == 1628);
  CHECK(ours.size() == weights.entries.size());
  for (const auto& [k, e] : weights.entries) {
    INFO(k);
    REQUIRE(ours.count(k) == 1);
    CHECK(ours[k] == e.shape);
  }
  CHECK(net.load(weights).ok());
  const io::file back = net.state_dict();
  CHECK(back.entries.size() == 1628);
  CHECK(test::max_abs_error(back.tensor<float>("head.fc.weight"), weights.tensor<float>("head.fc.weight")) == 0);
}

TEST_CASE("RevBiFPN-S0: golden parity with the official model (both modes)") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  const io::file ref = io::load(golden + ".io.safetensors");
  const Tensor<float> image = ref.tensor<float>("input");

  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    RevBiFPN<rb::S0> net(0.0);
    net.load(weights);

    context eval{phase::eval};
    const double eval_err = test::max_rel_error(net.forward(image, eval), ref.tensor<float>("eval.output"));
    CHECK(eval_err <= 1e-4);
    worst feat;
    const auto p = net.features(image, eval);
    for (int s = 0; s < 4; ++s) {
      const std::string k = "eval.features." + std::to_string(s);
      feat.add(k, test::max_rel_error(p[s], ref.tensor<float>(k)));
    }
    CHECK(feat.rel <= 1e-4);

    Generator gen(1);
    context train{phase::train, &gen};
    RevBiFPN<rb::S0>::cache tape{m};
    const double train_err = test::max_rel_error(net.forward(image, train, tape), ref.tensor<float>("train.output"));
    CHECK(train_err <= 1e-4);
    const Tensor<float> dimage = net.backward(tape, ref.tensor<float>("dout"));
    const double input_err = test::max_rel_error(dimage, ref.tensor<float>("train.grad.input"));
    CHECK(input_err <= 5e-4);

    worst grads, zero_abs, stats;
    int checked = 0;
    net.for_each_parameter([&](const std::string& k, Param<float>& prm) {
      const Tensor<float> r = ref.tensor<float>("train.grad." + k);
      INFO(k);
      if (zero_gradient(k)) {
        const double a = test::max_abs_error(prm.grad, r);
        zero_abs.add(k, a);
        CHECK(a <= 1e-6);
      } else {
        const double e = test::max_rel_error(prm.grad, r);
        grads.add(k, e);
        CHECK((e <= 5e-4 || test::max_abs_error(prm.grad, r) <= 1e-6));
      }
      ++checked;
    });
    CHECK(checked == 1136);
    net.for_each_buffer([&](const std::string& k, Tensor<float>& b) {
      const double e = test::max_rel_error(b, ref.tensor<float>("train.after_norev." + k));
      INFO(k);
      stats.add(k, e);
      CHECK(e <= 1e-4);
    });
    MESSAGE(mode_name, ": eval logits ", eval_err, ", eval features ", feat.rel, ", train logits ", train_err,
            ", input grad ", input_err, ", worst param grad ", grads.rel, " (", grads.key,
            "), zero-grad tensors max abs ", zero_abs.rel, ", BN running stats ", stats.rel, " (", stats.key, ")");
  }
}

TEST_CASE("RevBiFPN: bad inputs and bad weight files") {
  RevBiFPN<rb::S0> net(0.0);
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 3, 48, 64}), eval), doctest::Contains("multiples of 32"),
                       shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 4, 64, 64}), eval), doctest::Contains("expected [B, 3, H, W]"),
                       shape_error);

  io::file f = net.state_dict();
  // An S1 file has [32, 1, 3, 3] for this key (c_0 / 2 = 32 channels).
  const std::string key = "rev_stack.1.rev_transform_0.f.xform_0_1.dw_conv.conv.weight";
  f.put(key, Tensor<float>({32, 1, 3, 3}));
  CHECK_THROWS_WITH_AS(
      net.load(f), doctest::Contains((key + "' has extents [32, 1, 3, 3] in the file, expected [24, 1, 3, 3]").c_str()),
      io_error);
  f.put("rev_stack.1.num_batches_tracked", Tensor<float>({1}));  // ignored
  f.put("head.extra", Tensor<float>({2}));
  f.entries.erase("head.fc.bias");
  const auto report = net.load(f, false);
  CHECK(report.mismatched == std::vector<std::string>{key});
  CHECK(report.unexpected == std::vector<std::string>{"head.extra"});
  CHECK(report.missing == std::vector<std::string>{"head.fc.bias"});
  f.entries.erase(key);
  CHECK_THROWS_WITH_AS(net.load(f), doctest::Contains("missing key"), io_error);
}

TEST_CASE("RevBiFPN-S0: the backbone is invertible (the image comes back from the pyramid)") {
  RevBiFPN<rb::S0> net(0.0);
  context eval{phase::eval};
  const Tensor<float> image = test::random<float>({2, 3, 64, 64}, 11);
  const auto p = net.features(image, eval);
  CHECK(p[0].shape() == Shape{2, 48, 16, 16});
  CHECK(p[3].shape() == Shape{2, 160, 2, 2});
  CHECK(test::max_rel_error(net.backbone().inverse(p, eval), image) < 1e-4);
}
