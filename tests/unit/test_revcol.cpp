#include "helpers.hpp"
#include "model_checks.hpp"
#include "rev/models/revcol.hpp"

#include <filesystem>
#include <map>
#include <vector>

using namespace rev;
using models::RevCol;
namespace rc = models::revcol;

namespace {

const std::string golden = std::string(REV_GOLDEN_DIR) + "/revcol/revcol_mini_b2_r64";

bool have_golden() { return std::filesystem::exists(golden + ".weights.safetensors"); }

// The golden case: C = (16, 32, 64, 128), B = (1, 1, 2, 1), 4 columns, 10 classes, with heads.
struct Mini {
  static constexpr const char* name = "mini";
  static constexpr std::array<int, 4> c{16, 32, 64, 128}, b{1, 1, 2, 1};
  static constexpr int columns = 4, classes = 10;
  static constexpr double drop_path = 0;
};

template <class Cfg>
constexpr bool counts_match() {
  return rc::parameter_count<rc::no_aux<Cfg>>() == Cfg::reference_parameters &&
         rc::parameter_count<Cfg>() == Cfg::reference_parameters_aux;
}

// The same widths at 8 columns (without heads: memory against the number of columns, next to
// no_aux<Mini>'s 4).
struct Mini8 : Mini {
  static constexpr int columns = 8;
};

// RevCol-H's structure at reduced width (tests/torch_ref/gen_revcol_huge.py: the official
// RevColHuge in float64): level 0 also reads the previous column's top level.
struct MiniH {
  static constexpr const char* name = "mini-h";
  static constexpr std::array<int, 4> c{4, 8, 12, 16}, b{1, 1, 2, 1};
  static constexpr int columns = 3, classes = 5;
  static constexpr double drop_path = 0;
  static constexpr bool inter_supv = false, huge = true;
};
const std::string huge_ref = std::string(REV_TEST_DATA_DIR) + "/revcol_huge";

// Other widths (a checkpoint of another variant).
struct Wide : Mini {
  static constexpr std::array<int, 4> c{24, 48, 96, 192};
};

using testing::worst;

std::vector<int> targets_of(const io::file& f) {
  const Tensor<double> t = f.tensor<double>("loss.targets");
  std::vector<int> y;
  for (index_t i = 0; i < t.numel(); ++i) y.push_back(static_cast<int>(t.data()[i]));
  return y;
}

// Every gradient of `net` against "<prefix><key>" of ref; returns the worst relative error.
template <class Net>
worst check_gradients(Net& net, const io::file& ref, const std::string& prefix, double tol) {
  worst w;
  int checked = 0;
  net.for_each_parameter([&](const std::string& k, auto& p) {
    const Tensor<float> r = ref.tensor<float>(prefix + k);
    INFO(k);
    const double abs = test::max_abs_error(p.grad, r);
    if (test::max_abs_error(r, Tensor<float>(r.shape())) == 0) {
      CHECK(abs <= 1e-6);  // parameters the loss does not reach
    } else {
      const double e = test::max_rel_error(p.grad, r);
      w.add(k, e);
      CHECK((e <= tol || abs <= 1e-6));
    }
    ++checked;
  });
  CHECK(checked == 423);
  return w;
}

}  // namespace

TEST_CASE("RevCol: parameter counts of T, S, B, L, XL, H equal the official models'") {
  static_assert(counts_match<rc::T>() && counts_match<rc::S>() && counts_match<rc::B>() && counts_match<rc::L>() &&
                counts_match<rc::XL>() && counts_match<rc::H>());
  RevCol<rc::T> tiny;  // the official 30,456,168 without the heads
  CHECK(parameter_count(tiny) == rc::parameter_count<rc::T>());
  CHECK(rc::parameter_count<rc::no_aux<rc::T>>() == 30456168);
  RevCol<Mini> mini;
  CHECK(parameter_count(mini) == rc::parameter_count<Mini>());
  CHECK(parameter_count(mini) == 1138232);  // the golden weights file's values
}

TEST_CASE("RevCol: official initialisation and stochastic-depth schedule") {
  RevCol<rc::T> net;
  auto& col = net.column_at<1>();
  CHECK(col.gamma(2).value.shape() == (Shape{1, 256, 1, 1}));
  CHECK(col.gamma(2).value.data()[7] == doctest::Approx(0.5));
  CHECK(col.template level<1>().body()[0].gamma.value.data()[3] == doctest::Approx(1e-6));
  // The rate of block j of level l is 0.1 * (b_0 + ... + b_{l-1} + j) / 9 in every column.
  std::vector<double> rates;
  apply(net.column_at<3>(), [&](nn::DropPath<float>& d) { rates.push_back(d.p()); });
  REQUIRE(rates.size() == 10);
  for (std::size_t i = 0; i < rates.size(); ++i) CHECK(rates[i] == doctest::Approx(0.1 * static_cast<double>(i) / 9));
  net.set_stochastic_depth(0);
  apply(net, [&](nn::DropPath<float>& d) { CHECK(d.p() == 0); });
  // Conv and Linear weights ~ N(0, 0.02), biases 0.
  const auto& w = net.column_at<0>().template level<2>().body()[1].inner().template get<2>().weight.value;
  double s = 0, s2 = 0;
  for (index_t i = 0; i < w.numel(); ++i) s += w.data()[i], s2 += double(w.data()[i]) * w.data()[i];
  CHECK(std::abs(s / static_cast<double>(w.numel())) < 1e-3);
  CHECK(std::sqrt(s2 / static_cast<double>(w.numel())) == doctest::Approx(0.02).epsilon(0.02));
}

TEST_CASE("RevCol-mini: keys and extents are those of the official state_dict") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  RevCol<Mini> net;
  auto ours = testing::keys_of(net);
  CHECK(ours.size() == 423);
  CHECK(ours.size() == weights.entries.size());
  for (const auto& [k, e] : weights.entries) {
    INFO(k);
    REQUIRE(ours.count(k) == 1);
    CHECK(ours[k] == e.shape);
  }
  CHECK(net.load(weights).ok());
  const io::file back = net.state_dict();
  CHECK(back.entries.size() == 423);
  CHECK(test::max_abs_error(back.tensor<float>("subnet2.level1.fusion.up.channel_reschedule.0.weight"),
                            weights.tensor<float>("subnet2.level1.fusion.up.channel_reschedule.0.weight")) == 0);
  // Without the heads, the file's head keys are unexpected.
  RevCol<rc::no_aux<Mini>> plain;
  CHECK_THROWS_AS(plain.load(weights), io_error);
  const io::load_report r = plain.load(weights, false);
  CHECK(r.missing.size() == 4);  // cls.classifier.{0,1}.{weight,bias}
}

TEST_CASE("RevCol-mini: golden parity in eval: stem, every column, heads, logits") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file ref = io::load(golden + ".io.safetensors");
  RevCol<Mini> net;
  net.load(io::load(golden + ".weights.safetensors"));
  const Tensor<float> image = ref.tensor<float>("input");
  context eval{phase::eval};

  worst w;
  Tensor<float> x = net.stem().forward(image, eval);
  w.add("eval.stem", test::max_rel_error(x, ref.tensor<float>("eval.stem")));
  Tensors<float, 5> state;
  for_each_index<4>([&](auto i) {
    if constexpr (i == 0) state = net.column_at<i>().forward(x, eval);
    else state = net.column_at<i>().forward(state, eval);
    for (int l = 0; l < 4; ++l) {
      const std::string k = "eval.col" + std::to_string(i()) + ".c" + std::to_string(l);
      w.add(k, test::max_rel_error(state[static_cast<std::size_t>(l) + 1], ref.tensor<float>(k)));
    }
    if constexpr (i < 3) {
      const auto out = net.head_tap<i>().head().forward(state[4], eval);
      const std::string k = std::to_string(i());
      w.add("eval.aux.cls." + k, test::max_rel_error(out[0], ref.tensor<float>("eval.aux.cls." + k)));
      w.add("eval.aux.img." + k, test::max_rel_error(out[1], ref.tensor<float>("eval.aux.img." + k)));
    }
  });
  w.add("eval.output", test::max_rel_error(net.forward(image, eval), ref.tensor<float>("eval.output")));
  const auto p = net.features(image, eval);
  w.add("features", test::max_rel_error(p[3], ref.tensor<float>("eval.col3.c3")));
  MESSAGE("eval: worst ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-4);
}

TEST_CASE("RevCol-mini: the reversible scaling is clamped to |alpha| >= 1e-3, sign kept") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file ref = io::load(golden + ".io.safetensors");
  RevCol<Mini> net;
  net.load(io::load(golden + ".weights.safetensors"));
  auto& alpha = net.column_at<3>().gamma(3).value;
  alpha = ref.tensor<float>("clamp.subnet3.alpha3").clone();
  context eval{phase::eval};
  CHECK(test::max_rel_error(net.forward(ref.tensor<float>("input"), eval), ref.tensor<float>("clamp.eval.output")) <=
        1e-4);
  for (index_t i = 0; i < alpha.numel(); ++i) CHECK(std::abs(alpha.data()[i]) == doctest::Approx(1e-3));
}

TEST_CASE_TEMPLATE("RevCol-mini: golden gradients, stored and reversible", T, float, double) {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  const io::file ref = io::load(golden + ".io.safetensors");
  const Tensor<T> image = ref.tensor<T>("input");
  // float32 chains the inverse through four columns (the official code stores every column's
  // outputs instead), so its reversible error grows column by column; float64 shows the
  // algorithm's error.
  const double tol = std::same_as<T, double> ? 1e-5 : 1e-3;
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    RevCol<Mini, T> net;
    net.load(weights);
    Generator gen(1);
    context train{phase::train, &gen};
    {  // the final head's loss only: the intermediate heads do not run
      typename RevCol<Mini, T>::cache tape{m};
      const Tensor<T> y = net.forward(image, train, tape);
      CHECK(test::max_rel_error(y, ref.tensor<float>("train.output")) <= 1e-4);
      const Tensor<T> dimage = net.backward(tape, ref.tensor<T>("dout"));
      const double input_err = test::max_rel_error(dimage, ref.tensor<float>("train.grad.input"));
      CHECK(input_err <= tol);
      const worst g = check_gradients(net, ref, "train.grad.", tol);
      MESSAGE(mode_name, " final head: input grad ", input_err, ", worst param grad ", g.rel, " (", g.key, ")");
    }
    zero_grad(net);
    {  // every head: the intermediate heads' output gradients enter at columns 0, 1, 2
      for_each_index<3>([&](auto k) {
        const std::string s = std::to_string(k());
        net.template head_tap<k>().on_output = [&ref, s](const Tensors<T, 2>& out) {
          CHECK(test::max_rel_error(out[0], ref.tensor<float>("train.aux.cls." + s)) <= 1e-4);
          CHECK(test::max_rel_error(out[1], ref.tensor<float>("train.aux.img." + s)) <= 1e-4);
          return Tensors<T, 2>{ref.tensor<T>("dout.aux.cls." + s), ref.tensor<T>("dout.aux.img." + s)};
        };
      });
      typename RevCol<Mini, T>::cache tape{m};
      net.forward(image, train, tape);
      const Tensor<T> dimage = net.backward(tape, ref.tensor<T>("dout"));
      const double input_err = test::max_rel_error(dimage, ref.tensor<float>("train.allheads.grad.input"));
      CHECK(input_err <= tol);
      const worst g = check_gradients(net, ref, "train.allheads.grad.", tol);
      MESSAGE(mode_name, " all heads: input grad ", input_err, ", worst param grad ", g.rel, " (", g.key, ")");
    }
  }
}

TEST_CASE("RevCol-mini: the compound loss equals the official one, its gradient is reversible") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file ref = io::load(golden + ".io.safetensors");
  const Tensor<double> image = ref.tensor<double>("input");
  const std::vector<int> y = targets_of(ref);
  std::map<std::string, Tensor<double>> grads[2];
  for (mode m : {mode::stored, mode::reversible}) {
    RevCol<Mini, double> net;
    net.load(io::load(golden + ".weights.safetensors"));
    rc::CompoundLoss loss(net);
    loss.set_batch(image, y);
    Generator gen(1);
    context train{phase::train, &gen};
    RevCol<Mini, double>::cache tape{m};
    const Tensor<double> logits = net.forward(image, train, tape);
    CHECK(test::max_rel_error(logits, ref.tensor<float>("train.output")) <= 1e-4);
    const double l = loss.finish(logits);
    CHECK(l == doctest::Approx(ref.tensor<double>("loss.compound").data()[0]).epsilon(1e-6));
    const Tensor<double> parts = ref.tensor<double>("loss.compound.parts");
    for (std::size_t i = 0; i < 4; ++i) CHECK(loss.parts()[i] == doctest::Approx(parts.data()[i]).epsilon(1e-6));
    CHECK(test::max_abs_error(loss.image_target(), ref.tensor<double>("loss.image")) <= 1e-6);
    CHECK(test::max_abs_error(image, ref.tensor<double>("input")) == 0);  // the caller's image is untouched
    net.backward(tape, loss.gradient(logits));
    net.for_each_parameter([&](const std::string& k, Param<double>& p) { grads[m == mode::reversible][k] = p.grad; });
  }
  // The first column's alphas multiply zeros: their stored gradient is exactly 0, the reversible
  // one sums the gradient against reconstructed zeros (rounding noise), as in the official code.
  worst w, zeros;
  for (const auto& [k, g] : grads[0]) {
    if (k.starts_with("subnet0.alpha")) zeros.add(k, test::max_abs_error(grads[1][k], g));
    else w.add(k, test::max_rel_error(grads[1][k], g));
  }
  MESSAGE("compound loss, reversible vs stored (float64): worst ", w.rel, " (", w.key, "); first column's alphas ",
          zeros.rel);
  CHECK(w.rel <= 1e-8);
  CHECK(zeros.rel <= 1e-10);
}

TEST_CASE("RevCol-H (reduced): keys, eval levels, logits and every gradient equal the official code's") {
  const io::file weights = io::load(huge_ref + ".weights.safetensors");
  const io::file ref = io::load(huge_ref + ".safetensors");
  const Tensor<double> image = ref.tensor<double>("x");  // [2, 3, 64, 32]: the top level is 2 x 1
  RevCol<MiniH, double> net;
  CHECK(parameter_count(net) == rc::parameter_count<MiniH>());
  CHECK(parameter_count(net) == 23325);  // the official model's
  CHECK(net.load(weights).ok());         // strict: the up2 keys of columns 1 and 2 included
  CHECK(weights.entries.count("subnet1.level0.fusion.up2.channel_reschedule.0.weight") == 1);
  context eval{phase::eval};
  worst w;
  const auto levels = net.features(image, eval);
  for (std::size_t l = 0; l < 4; ++l)
    w.add("features." + std::to_string(l),
          test::max_rel_error(levels[l], ref.tensor<double>("features." + std::to_string(l))));
  w.add("eval logits", test::max_rel_error(net.forward(image, eval), ref.tensor<double>("logits")));
  MESSAGE("RevCol-H eval: worst ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-10);
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    zero_grad(net);
    context train{phase::train};
    RevCol<MiniH, double>::cache tape{m};
    CHECK(test::max_rel_error(net.forward(image, train, tape), ref.tensor<double>("logits")) <= 1e-10);
    worst g;
    g.add("input", test::max_rel_error(net.backward(tape, ref.tensor<double>("dout")), ref.tensor<double>("dx")));
    int checked = 0;
    net.for_each_parameter([&](const std::string& k, Param<double>& p) {
      g.add(k, test::max_rel_error(p.grad, ref.tensor<double>("grad." + k)));
      ++checked;
    });
    CHECK(checked == 223);
    MESSAGE("RevCol-H ", mode_name, " gradients: worst ", g.rel, " (", g.key, ")");
    CHECK(g.rel <= 1e-8);
  }
}

TEST_CASE("RevCol: reversible memory does not grow with the number of columns") {
  // Peak bytes of one training step at 4 and 8 columns: stored grows, reversible stays.
  const Tensor<float> image = test::random<float>({2, 3, 64, 64}, 3);
  RevCol<rc::no_aux<Mini>> four;
  RevCol<rc::no_aux<Mini8>> eight;
  const auto peaks = testing::step_peaks(four, eight, image);
  MESSAGE("peak bytes, 4 vs 8 columns: ", peaks);
  CHECK(peaks.stored_grows());
  CHECK(peaks.reversible_flat());
}

TEST_CASE("RevCol: bad inputs and bad weight files") {
  RevCol<Mini> net;
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 3, 48, 64}), eval),
                       doctest::Contains("H and W must be positive multiples of 32"), shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 1, 64, 64}), eval), doctest::Contains("expected [N, 3, H, W]"),
                       shape_error);
  io::file f = net.state_dict();
  f.entries.erase("subnet1.alpha2");
  CHECK_THROWS_WITH_AS(net.load(f), doctest::Contains("missing key 'subnet1.alpha2'"), io_error);
  f = net.state_dict();
  // A checkpoint of another variant: other widths, other column count.
  CHECK_THROWS_WITH_AS(
      RevCol<Wide>().load(f),
      doctest::Contains("key 'stem.0.weight' has extents [16, 3, 4, 4] in the file, expected [24, 3, 4, 4]"), io_error);
  CHECK_THROWS_WITH_AS(RevCol<rc::no_aux<Mini8>>().load(f), doctest::Contains("missing key 'subnet4.alpha0'"),
                       io_error);
  f.put("subnet1.alpha2", Tensor<float>({64}));
  CHECK_THROWS_WITH_AS(net.load(f),
                       doctest::Contains("'subnet1.alpha2' has extents [64] in the file, expected [1, 64, 1, 1]"),
                       io_error);
}
