// Rev-ViT in both layouts: minREV's against the golden case revvit_tiny_b2 (minREV rev.py: patch
// 4, 32 x 32, C 64, depth 4, 2 heads, 10 classes, batch 2; spec revvit.md §6), SlowFast's (the
// official checkpoints') against tests/torch_ref/revvit_slowfast (gen_revvit_slowfast.py: the
// official blocks in float64, patch 4, 16 x 16, C 16, depth 3, 2 heads, 5 classes).
#include <filesystem>
#include <map>

#include "helpers.hpp"
#include "model_checks.hpp"
#include "rev/models/revvit.hpp"

using namespace rev;
using models::RevViT;
namespace rv = models::revvit;

namespace {

const std::string golden = std::string(REV_GOLDEN_DIR) + "/revvit/revvit_tiny_b2";
bool have_golden() { return std::filesystem::exists(golden + ".weights.safetensors"); }

struct Tiny {
  static constexpr const char* name = "tiny";
  static constexpr int patch = 4, image = 32, width = 64, depth = 4, heads = 2, mlp_ratio = 4, classes = 10;
};
struct Deep : Tiny {
  static constexpr int depth = 8;
};
struct Big : Tiny {
  static constexpr int image = 64;
};

struct Small {  // tests/torch_ref/gen_revvit_slowfast.py's
  static constexpr const char* name = "small";
  static constexpr int patch = 4, image = 16, width = 16, depth = 3, heads = 2, mlp_ratio = 4, classes = 5;
};
const std::string slowfast_ref = std::string(REV_TEST_DATA_DIR) + "/revvit_slowfast";

// minREV's layout (the golden data's).
template <class Cfg, class T = float>
using MinRev = RevViT<Cfg, rv::minrev, T>;

using testing::worst;

}  // namespace

TEST_CASE("Rev-ViT: parameter counts of S, B, L (spec §5)") {
  static_assert(rv::parameter_count<rv::S>() == 22434664 && rv::parameter_count<rv::B>() == 87335656 &&
                rv::parameter_count<rv::L>() == 305350632);
  MinRev<Tiny> net;
  CHECK(parameter_count(net) == rv::parameter_count<Tiny>());
  CHECK(parameter_count(net) == 208714);  // the golden weights file's values
}

TEST_CASE("Rev-ViT (minREV layout): keys, eval parity, streams and their inverse") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  const io::file ref = io::load(golden + ".io.safetensors");
  MinRev<Tiny> net;
  auto ours = testing::keys_of(net);
  CHECK(ours.size() == 55);
  CHECK(ours.size() == weights.entries.size());
  for (const auto& [k, e] : weights.entries) {
    INFO(k);
    REQUIRE(ours.count(k) == 1);
    CHECK(ours[k] == e.shape);
  }
  CHECK(net.load(weights).ok());

  const Tensor<float> image = ref.tensor<float>("input");
  context eval{phase::eval};
  worst w;
  const Tensor<float> stem = net.tokens(image, eval);
  w.add("stem", test::max_rel_error(stem, ref.tensor<float>("intermediate.stem")));
  const auto y = net.streams(image, eval);
  w.add("x1", test::max_rel_error(y[0], ref.tensor<float>("intermediate.x1")));
  w.add("x2", test::max_rel_error(y[1], ref.tensor<float>("intermediate.x2")));
  w.add("output", test::max_rel_error(net.forward(image, eval), ref.tensor<float>("output")));
  MESSAGE("eval: worst ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-5);
  // The blocks run backwards from the last streams give the stem's tokens on both streams.
  const auto x = net.layers().inverse(y, eval);
  CHECK(test::max_rel_error(x[0], stem) <= 1e-5);
  CHECK(test::max_rel_error(x[1], stem) <= 1e-5);
}

// minREV's keys mapped to SlowFast's (spec revvit-keys.txt): the packed in-projection split into
// q, k, v by rows, the MLP's "0" / "2" named fc1 / fc2, the head under "projection".
io::file to_slowfast(const io::file& minrev) {
  io::file f;
  for (const auto& [key, entry] : minrev.entries) {
    const Tensor<float> t = minrev.tensor<float>(key);
    std::string k = key;
    auto replace = [&](const std::string& from, const std::string& to) {
      if (const auto at = k.find(from); at != std::string::npos) k.replace(at, from.size(), to);
    };
    if (k.starts_with("layers.")) k = "rev_backbone." + k;
    replace("pos_embeddings", "pos_embed");
    replace("patch_embed.", "patch_embed.proj.");
    replace("head.", "head.projection.");
    replace("attn.out_proj.", "attn.proj.");
    replace("mlp.0.", "mlp.fc1.");
    replace("mlp.2.", "mlp.fc2.");
    if (k.ends_with("in_proj_weight") || k.ends_with("in_proj_bias")) {
      const bool weight = k.ends_with("weight");
      const index_t c = t.size(0) / 3, cols = weight ? t.size(1) : 1;
      const auto parts = ops::split_channels(t.reshape({1, 3 * c, cols}), {c, c, c});
      const std::string stem = k.substr(0, k.rfind("in_proj_"));
      const char* names[] = {"q", "k", "v"};
      for (std::size_t i = 0; i < 3; ++i)
        f.put(stem + names[i] + (weight ? ".weight" : ".bias"),
              weight ? parts[i].reshape({c, cols}) : parts[i].reshape({c}));
      continue;
    }
    f.put(k, t);
  }
  return f;
}

TEST_CASE("Rev-ViT: minREV's weights in SlowFast's layout give its streams; the termination differs (spec §1.7)") {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file weights = io::load(golden + ".weights.safetensors");
  const io::file ref = io::load(golden + ".io.safetensors");
  RevViT<Tiny, rv::slowfast> net;
  CHECK(net.load(to_slowfast(weights)).ok());    // strict: every key mapped, every extent right
  CHECK_THROWS_AS(net.load(weights), io_error);  // minREV's keys do not load into SlowFast's layout
  const Tensor<float> image = ref.tensor<float>("input");
  context eval{phase::eval};
  const auto y = net.streams(image, eval);
  // The blocks are the same computation but for G's LayerNorm eps (SlowFast 1e-6, minREV 1e-5).
  const double streams = std::max(test::max_rel_error(y[0], ref.tensor<float>("intermediate.x1")),
                                  test::max_rel_error(y[1], ref.tensor<float>("intermediate.x2")));
  // SlowFast normalises before the mean over tokens, minREV after: the logits differ.
  const double logits = test::max_rel_error(net.forward(image, eval), ref.tensor<float>("output"));
  MESSAGE("SlowFast layout with minREV's weights: streams ", streams, ", logits ", logits);
  CHECK(streams <= 2e-5);
  CHECK(logits >= 0.1);
}

TEST_CASE_TEMPLATE("Rev-ViT (minREV layout): golden gradients, stored and reversible", T, float, double) {
  if (!have_golden()) {
    MESSAGE("skipped: no golden data at ", golden);
    return;
  }
  const io::file ref = io::load(golden + ".io.safetensors");
  const Tensor<T> image = ref.tensor<T>("input");
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    MinRev<Tiny, T> net;
    net.load(io::load(golden + ".weights.safetensors"));
    context train{phase::train};
    typename MinRev<Tiny, T>::cache tape{m};
    CHECK(test::max_rel_error(net.forward(image, train, tape), ref.tensor<float>("output")) <= 1e-5);
    worst g;
    g.add("input", test::max_rel_error(net.backward(tape, ref.tensor<T>("dout")), ref.tensor<float>("grad.input")));
    int checked = 0;
    net.for_each_parameter([&](const std::string& k, Param<T>& p) {
      const Tensor<float> r = ref.tensor<float>("grad." + k);
      ++checked;
      if (k.ends_with("in_proj_bias")) {
        // The k part of the bias has a zero gradient (a constant per query leaves the softmax
        // unchanged): the reference holds float noise there. q and v are compared.
        const index_t C = Tiny::width;
        Tensor<double> ours({2 * C}), theirs({2 * C});
        for (index_t i = 0; i < C; ++i) {
          ours.data()[i] = p.grad.data()[i], theirs.data()[i] = r.data()[i];
          ours.data()[C + i] = p.grad.data()[2 * C + i], theirs.data()[C + i] = r.data()[2 * C + i];
          CHECK(std::abs(static_cast<double>(p.grad.data()[C + i])) <= 1e-5);
        }
        g.add(k + " (q, v)", test::max_rel_error(ours, theirs));
      } else {
        g.add(k, test::max_rel_error(p.grad, r));
      }
    });
    CHECK(checked == 55);
    MESSAGE(mode_name, ": worst gradient ", g.rel, " (", g.key, ")");
    CHECK(g.rel <= 1e-4);
  }
}

TEST_CASE("Rev-ViT (SlowFast layout): keys, tokens, streams, logits and every gradient equal the official code's") {
  const io::file weights = io::load(slowfast_ref + ".weights.safetensors");
  const io::file ref = io::load(slowfast_ref + ".safetensors");
  RevViT<Small, rv::slowfast, double> net;
  CHECK(parameter_count(net) == rv::parameter_count<Small>());
  CHECK(parameter_count(net) == 11109);
  CHECK(net.load(weights).ok());  // strict: rev_backbone.layers.<i>.F.attn.{q,k,v,proj}, head.projection, ...
  CHECK(weights.entries.count("rev_backbone.layers.2.F.attn.k.weight") == 1);
  const Tensor<double> image = ref.tensor<double>("x");
  context eval{phase::eval};
  worst w;
  w.add("tokens", test::max_rel_error(net.tokens(image, eval), ref.tensor<double>("tokens")));
  const auto y = net.streams(image, eval);
  w.add("x1", test::max_rel_error(y[0], ref.tensor<double>("x1")));
  w.add("x2", test::max_rel_error(y[1], ref.tensor<double>("x2")));
  w.add("logits", test::max_rel_error(net.forward(image, eval), ref.tensor<double>("logits")));
  MESSAGE("SlowFast layout eval: worst ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-12);
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    const worst g =
        testing::reference_step(net, ref, m, 55, [](const std::string& k) { return k.ends_with("attn.k.bias"); });
    MESSAGE("SlowFast layout ", mode_name, ": worst gradient ", g.rel, " (", g.key, ")");
    CHECK(g.rel <= 1e-10);
  }
}

TEST_CASE("Rev-ViT: drop-path rises linearly over the blocks; its masks are replayed in the reversible backward") {
  RevViT<Small, rv::slowfast, double> stored, reversible;
  reversible.load(stored.state_dict());
  stored.set_stochastic_depth(0.4);
  reversible.set_stochastic_depth(0.4);
  std::vector<double> rates;
  apply(stored.layers(), [&](nn::DropPath<double>& d) { rates.push_back(d.p()); });
  CHECK(rates == std::vector<double>{0, 0, 0.2, 0.2, 0.4, 0.4});  // F and G of blocks 0, 1, 2
  RevViT<rv::S> s;
  apply(s.layers()[11], [&](nn::DropPath<float>& d) { CHECK(d.p() == doctest::Approx(0.1)); });
  const Tensor<double> image = test::random({4, 3, 16, 16}, 5), dout = test::random({4, 5}, 6);
  Generator ga(9), gb(9);
  context ca{phase::train, &ga}, cb{phase::train, &gb};
  RevViT<Small, rv::slowfast, double>::cache ta{mode::stored}, tb{mode::reversible};
  CHECK(test::max_abs_error(stored.forward(image, ca, ta), reversible.forward(image, cb, tb)) == 0);
  CHECK(test::max_rel_error(reversible.backward(tb, dout), stored.backward(ta, dout)) <= 1e-10);
  CHECK(testing::gradient_gap(stored, reversible, [](const std::string& k) {
          return k.ends_with("attn.k.bias");
        }).rel <= 1e-10);
}

TEST_CASE("Rev-ViT: reversible memory does not grow with depth") {
  const Tensor<float> image = test::random<float>({2, 3, 32, 32}, 3);
  MinRev<Tiny> four;
  MinRev<Deep> eight;
  const auto peaks = testing::step_peaks(four, eight, image);
  MESSAGE("peak bytes, depth 4 vs 8: ", peaks);
  CHECK(peaks.stored_grows());
  CHECK(peaks.reversible_flat());
}

TEST_CASE("Rev-ViT: bad inputs and bad weight files") {
  MinRev<Tiny> net;
  context eval{phase::eval};
  // Another resolution is refused (the position embedding is not interpolated), naming both grids.
  CHECK_THROWS_WITH_AS(
      net.forward(Tensor<float>({1, 3, 64, 64}), eval),
      doctest::Contains("image has extents [1, 3, 64, 64], expected [N, 3, 32, 32] (it gives a 16 x 16 "
                        "token grid, the position embedding is made for a 8 x 8 token grid"),
      shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 3, 30, 30}), eval),
                       doctest::Contains("(30 x 30 is not a multiple of the patch stride 4; the position embedding is "
                                         "made for a 8 x 8 token grid)"),
                       shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<float>({1, 1, 32, 32}), eval), doctest::Contains("expected [N, 3, 32, 32]"),
                       shape_error);
  io::file f = net.state_dict();
  f.entries.erase("layers.2.G.mlp.0.weight");
  CHECK_THROWS_WITH_AS(net.load(f), doctest::Contains("missing key 'layers.2.G.mlp.0.weight'"), io_error);
  // A checkpoint made for another image size: its position embedding has other extents.
  CHECK_THROWS_WITH_AS(MinRev<Big>().load(net.state_dict()),
                       doctest::Contains("'pos_embeddings' has extents [1, 64, 64] in the file, expected [1, 256, 64]"),
                       io_error);
  CHECK_THROWS_WITH_AS(MinRev<Deep>().load(net.state_dict()), doctest::Contains("missing key 'layers.4."), io_error);
}
