// RevBiFPN-S0 on the GPU against the official model's golden tensors (batch 2, 64x64), in Stored and
// Reversible mode: the checks and tolerances of the CPU test (tests/unit/test_revbifpn.cpp), with the
// weights loaded on a CPU model and copied to the device. Also: the two modes' gradients agree on the
// device, and the Reversible step's peak device bytes are below the Stored step's.
#include <doctest/doctest.h>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "helpers.hpp"
#include "rev/models/revbifpn.hpp"
#include "revbifpn_golden.hpp"

using namespace rev;
namespace rb = models::revbifpn;
using HostNet = models::RevBiFPN<rb::S0, float>;
using DeviceNet = models::RevBiFPN<rb::S0, float, cuda>;

namespace {

const std::string golden = std::string(REV_GOLDEN_DIR) + "/revbifpn/revbifpn_s0_b2_r64";

bool have_golden() {
  return std::filesystem::exists(golden + ".weights.safetensors") &&
         std::filesystem::exists(golden + ".io.safetensors");
}

using testing::worst;
using testing::zero_gradient;

// What one training step on the device leaves behind, brought to the host.
struct step_result {
  Tensor<float> dimage;
  std::map<std::string, Tensor<float>> grads;
  std::size_t peak_bytes = 0;  // rev::memory<cuda>'s peak above the bytes held before the step
};

}  // namespace

// The model bound to the GPU in one place.
static_assert(std::is_same_v<rev::model<rev::models::RevBiFPN<rev::models::revbifpn::S0>, float, rev::cuda>,
                             rev::models::RevBiFPN<rev::models::revbifpn::S0, float, rev::cuda>>);

TEST_CASE("cuda: RevBiFPN-S0 golden parity with the official model (both modes)") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  const io::file ref = io::load(golden + ".io.safetensors");
  HostNet host(0.0);
  host.load(weights);
  const Tensor<float, cuda> image = to_device(ref.tensor<float>("input"));
  const Tensor<float, cuda> dout = to_device(ref.tensor<float>("dout"));

  std::map<mode, step_result> steps;
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    DeviceNet net(0.0);  // a fresh model per mode: the training step updates the BN running statistics
    copy_state(host, net);

    context eval{phase::eval};
    const double eval_err = test::max_rel_error(to_host(net.forward(image, eval)), ref.tensor<float>("eval.output"));
    CHECK(eval_err <= 1e-4);
    worst feat;
    const auto p = net.features(image, eval);
    for (int s = 0; s < 4; ++s) {
      const std::string k = "eval.features." + std::to_string(s);
      feat.add(k, test::max_rel_error(to_host(p[s]), ref.tensor<float>(k)));
    }
    CHECK(feat.rel <= 1e-4);

    Generator gen(1);
    context train{phase::train, &gen};
    DeviceNet::cache tape{m};
    step_result& r = steps[m];
    gpu::synchronize();
    Tensor<float> logits;
    {
      peak_scope<cuda> scope;
      logits = to_host(net.forward(image, train, tape));
      r.dimage = to_host(net.backward(tape, dout));
      r.peak_bytes = scope.peak_above_start();
    }
    const double train_err = test::max_rel_error(logits, ref.tensor<float>("train.output"));
    CHECK(train_err <= 1e-4);
    const double input_err = test::max_rel_error(r.dimage, ref.tensor<float>("train.grad.input"));
    CHECK(input_err <= 5e-4);

    worst grads, zero_abs, stats;
    int checked = 0;
    net.for_each_parameter([&](const std::string& k, auto& prm) {
      const Tensor<float> g = to_host(prm.grad);
      const Tensor<float> want = ref.tensor<float>("train.grad." + k);
      INFO(k);
      if (zero_gradient(k)) {
        const double a = test::max_abs_error(g, want);
        zero_abs.add(k, a);
        CHECK(a <= 1e-6);
      } else {
        const double e = test::max_rel_error(g, want);
        grads.add(k, e);
        CHECK((e <= 5e-4 || test::max_abs_error(g, want) <= 1e-6));
      }
      r.grads.emplace(k, g);
      ++checked;
    });
    CHECK(checked == 1136);
    net.for_each_buffer([&](const std::string& k, auto& b) {
      const double e = test::max_rel_error(to_host(b), ref.tensor<float>("train.after_norev." + k));
      INFO(k);
      stats.add(k, e);
      CHECK(e <= 1e-4);
    });
    MESSAGE(mode_name, ": eval logits ", eval_err, ", eval features ", feat.rel, ", train logits ", train_err,
            ", input grad ", input_err, ", worst param grad ", grads.rel, " (", grads.key,
            "), zero-grad tensors max abs ", zero_abs.rel, ", BN running stats ", stats.rel, " (", stats.key,
            "), peak device bytes of the step ", r.peak_bytes);
  }

  // Stored and Reversible compute the same gradients; they differ only by the reconstruction's rounding.
  const step_result& stored = steps[mode::stored];
  const step_result& reversible = steps[mode::reversible];
  const double input_diff = test::max_rel_error(reversible.dimage, stored.dimage);
  CHECK(input_diff <= 5e-4);
  worst diff;
  REQUIRE(reversible.grads.size() == stored.grads.size());
  for (const auto& [k, g] : reversible.grads) {
    INFO(k);
    const Tensor<float>& s = stored.grads.at(k);
    const double e = test::max_rel_error(g, s);
    diff.add(k, e);
    CHECK((e <= 5e-4 || test::max_abs_error(g, s) <= 1e-6));
  }
  MESSAGE("reversible vs stored on the device: input grad ", input_diff, ", worst param grad ", diff.rel, " (",
          diff.key, "); peak step bytes reversible ", reversible.peak_bytes, " vs stored ", stored.peak_bytes);
  CHECK(reversible.peak_bytes < stored.peak_bytes);
}
