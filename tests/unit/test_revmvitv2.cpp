// minREV's MViTv2-style Rev-MViT against tests/torch_ref/revmvit_minrev (gen_revmvit_minrev.py:
// minREV's ReversibleMViT with its forward corrected, float64, width 8, depth 7, last blocks
// (1, 4, 6), 24 x 24 images: windows with padding, resampled relative-position tables, stacks of
// two blocks), the attention against finite differences, counts, stacks of 1, 2, 3 and 5 blocks,
// memory and bad inputs.
#include <map>

#include "helpers.hpp"
#include "model_checks.hpp"
#include "rev/models/revmvitv2.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;
using models::RevMViTv2;
namespace rm = models::revmvitv2;

namespace {

struct Tiny {  // tests/torch_ref/gen_revmvit_minrev.py's
  static constexpr const char* name = "tiny";
  static constexpr int image = 24, patch_kernel = 3, patch_stride = 2, patch_padding = 1;
  static constexpr int width = 8, depth = 7, heads = 1;
  static constexpr std::array<int, 3> last_block_indexes{1, 4, 6};
  static constexpr int kv_stride = 2, window = 8, mlp_ratio = 4, classes = 5;
  static constexpr double drop_path = 0;
};
// Reversible stacks of 1, 2, 3 and 5 blocks, every attention windowed but the global ones at
// last_block_indexes[1:].
struct Deep : Tiny {
  static constexpr const char* name = "deep";
  static constexpr int depth = 14;
  static constexpr std::array<int, 4> last_block_indexes{0, 3, 7, 13};
};
// Tiny's stages with stacks of 4, 4 and 3 blocks: the same transitions, longer stacks.
struct Long : Tiny {
  static constexpr const char* name = "long";
  static constexpr int depth = 13;
  static constexpr std::array<int, 3> last_block_indexes{3, 8, 12};
};
// minREV's main.py CIFAR model (depth 4, last blocks (0, 2): it ends with a transition).
struct Cifar {
  static constexpr const char* name = "cifar";
  static constexpr int image = 32, patch_kernel = 3, patch_stride = 2, patch_padding = 1;
  static constexpr int width = 16, depth = 4, heads = 2;
  static constexpr std::array<int, 2> last_block_indexes{0, 2};
  static constexpr int kv_stride = 2, window = 16, mlp_ratio = 4, classes = 10;
  static constexpr double drop_path = 0.1;
};

const std::string minrev_ref = std::string(REV_TEST_DATA_DIR) + "/revmvit_minrev";

using testing::worst;

template <class Cfg>
using Net = RevMViTv2<Cfg, double>;  // one word inside the CHECK macros

// A bias of norm_k adds q . b to every score of a query: where no padded (zero) key takes part,
// the softmax removes it and its gradient is zero in exact arithmetic; compared absolutely.
bool zero_in_exact_arithmetic(const std::string& key) { return key.ends_with("norm_k.bias"); }
// So does a relative-position table of one row (built for a 1 x 1 grid: Deep's block 13): it adds
// the same q . r to every score of a query.
bool deep_zero_in_exact_arithmetic(const std::string& key) {
  return zero_in_exact_arithmetic(key) || key.starts_with("blocks.13.attn.rel_pos");
}

}  // namespace

TEST_CASE("Rev-MViT (minREV): the schedule and parameter counts of the default model (spec §5) and the test model") {
  static_assert(rm::parameter_count<rm::Default>() == rm::Default::reference_parameters);
  constexpr auto b = rm::blocks<Tiny>;
  // Blocks 0, 1: windows of 8, K/V stride 2, tables for a 12 grid; 2: the transition; 4: global, K/V doubled.
  static_assert(!b[0].transition && b[0].window == 8 && b[0].kv_stride == 2 && b[0].table == 23);
  static_assert(b[2].transition && b[2].width == 16 && b[2].heads == 2 && b[2].q_stride == 2 && b[2].kv_stride == 1);
  static_assert(b[3].window == 4 && b[4].window == 0 && b[4].kv_stride == 2 && b[4].table == 11);
  static_assert(b[5].transition && b[5].window == 4 && b[6].window == 0 && b[6].table == 5 &&
                rm::head_width<Tiny> == 64);
  static_assert(rm::segment_count<Tiny>() == 5 && rm::segment_count<Cifar>() == 4 && rm::head_width<Cifar> == 64);
  static_assert(rm::invalid<Deep>() == nullptr && rm::invalid<Long>() == nullptr);
  RevMViTv2<Tiny, double> net;
  CHECK(parameter_count(net) == rm::parameter_count<Tiny>());
  CHECK(parameter_count(net) == 41229);  // minREV's model at these sizes
  RevMViTv2<Cifar, float> cifar;
  CHECK(parameter_count(cifar) == rm::parameter_count<Cifar>());
  // minREV's initialisation: Linear weights N(0, 0.02), Linear biases 0, tables 0, norms 1 and 0.
  auto& attn = net.segments().template get<1>().template get<1>().inner().template get<1>();  // block 2's
  double s2 = 0;
  for (double v : attn.qkv_weight.value) s2 += v * v;
  CHECK(std::sqrt(s2 / static_cast<double>(attn.qkv_weight.value.numel())) == doctest::Approx(0.02).epsilon(0.2));
  CHECK(attn.qkv_bias.value.data()[0] == 0);
  CHECK(attn.rel_pos_h.value.data()[3] == 0);
  CHECK(attn.norm_weight[0].value.data()[0] == 1);
}

TEST_CASE("Rev-MViT (minREV): MViTv2 attention gradients match finite differences (float64)") {
  Generator g(3);
  auto randomize = [&](auto& layer) {
    layer.for_each_parameter([&](const std::string&, Param<double>& p) { nn::init::normal(p.value, 0.0, 0.5, g); });
  };
  // A 6 x 6 grid, 2 heads of 3: Q pooled at stride 2 in windows of 2 (3 x 3 -> padded 4 x 4), K/V
  // at stride 1 in windows of 4 (6 x 6 -> 8 x 8); tables of 5 rows resampled to 7.
  nn::MViTv2Attention<6, 2, 2, 1, 4, 5, double> windowed;
  randomize(windowed);
  // pool_k's gradients (~2e-3, through norm_k) sit beside outputs of ~10: the finite differences'
  // rounding (~3e-9) needs an absolute tolerance above the default 1e-9.
  const testing::gradient_check_options fd{.atol = 1e-8};
  auto r = testing::check_gradients(windowed, test::random({2, 36, 6}, 4), fd);
  CHECK_MESSAGE(r.ok(), r.str());
  // Global attention, K/V pooled at stride 2 (4 x 4 queries, 2 x 2 keys), tables as built.
  nn::MViTv2Attention<6, 3, 1, 2, 0, 7, double> global;
  randomize(global);
  r = testing::check_gradients(global, test::random({2, 16, 6}, 5), fd);
  CHECK_MESSAGE(r.ok(), r.str());
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(global.forward(Tensor<double>({1, 15, 6}), eval),
                       doctest::Contains("15 tokens are not a square grid"), shape_error);
  // Windows of 3 for the queries (5 x 5: 2 x 2 windows), of 1 for the keys pooled at stride 2
  // (3 x 3: 3 x 3 windows): no pairing.
  nn::MViTv2Attention<6, 2, 1, 2, 3, 5, double> unpaired;
  CHECK_THROWS_WITH_AS(
      unpaired.forward(Tensor<double>({1, 25, 6}), eval),
      doctest::Contains("on a 5 x 5 grid the queries (5 x 5 in windows of 3) give 4 windows but the keys "
                        "(3 x 3 in windows of 1) give 9"),
      shape_error);
}

TEST_CASE("Rev-MViT (minREV): keys, logits and every gradient equal minREV's (forward corrected)") {
  const io::file weights = io::load(minrev_ref + ".weights.safetensors");
  const io::file ref = io::load(minrev_ref + ".safetensors");
  RevMViTv2<Tiny, double> net;
  const auto keys = testing::keys_of(net);
  CHECK(keys.size() == 167);
  CHECK(keys.size() == weights.entries.size());
  for (const auto& [k, e] : weights.entries) {
    INFO(k);
    REQUIRE(keys.count(k) == 1);
    CHECK(keys.at(k) == e.shape);
  }
  CHECK(net.load(weights).ok());
  const Tensor<double> image = ref.tensor<double>("x");
  context eval{phase::eval};
  const double eval_error = test::max_rel_error(net.forward(image, eval), ref.tensor<double>("logits"));
  MESSAGE("eval logits: ", eval_error);
  CHECK(eval_error <= 1e-12);
  // The stem's tokens and the transitions' outputs ([B, H, W, C] channels-last in the reference:
  // the same memory as rev's tokens [B, H*W, C]).
  const Tensor<double> stem = net.stem().forward(image, eval);
  CHECK(test::max_rel_error(stem, ref.tensor<double>("intermediate.stem").reshape(stem.shape())) <= 1e-13);
  auto& seg = net.segments();
  const Tensor<double> t2 = seg.template get<1>().forward(seg.template get<0>().forward(stem, eval), eval);
  CHECK(test::max_rel_error(t2, ref.tensor<double>("intermediate.block.2").reshape(t2.shape())) <= 1e-12);
  const Tensor<double> t5 = seg.template get<3>().forward(seg.template get<2>().forward(t2, eval), eval);
  CHECK(test::max_rel_error(t5, ref.tensor<double>("intermediate.block.5").reshape(t5.shape())) <= 1e-12);
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    const worst g = testing::reference_step(net, ref, m, 167, zero_in_exact_arithmetic);
    MESSAGE(mode_name, ": worst gradient ", g.rel, " (", g.key, ")");
    CHECK(g.rel <= 1e-10);
  }
}

TEST_CASE("Rev-MViT (minREV): stacks of 1, 2, 3 and 5 blocks give the stored gradients; memory stays flat") {
  RevMViTv2<Deep, double> stored, reversible;
  reversible.load(stored.state_dict());
  const Tensor<double> image = test::random({2, 3, 24, 24}, 8), dout = test::random({2, 5}, 9);
  context ca{phase::train}, cb{phase::train};
  RevMViTv2<Deep, double>::cache ta{mode::stored}, tb{mode::reversible};
  CHECK(test::max_abs_error(stored.forward(image, ca, ta), reversible.forward(image, cb, tb)) == 0);
  CHECK(test::max_rel_error(reversible.backward(tb, dout), stored.backward(ta, dout)) <= 1e-10);
  static_assert(rm::blocks<Deep>[13].table == 1);
  const worst w = testing::gradient_gap(stored, reversible, deep_zero_in_exact_arithmetic);
  std::map<std::string, Tensor<double>> skipped;
  stored.for_each_parameter([&](const std::string& k, Param<double>& p) {
    if (deep_zero_in_exact_arithmetic(k)) skipped[k] = p.grad;
    if (k.starts_with("blocks.13.attn.rel_pos"))
      CHECK(test::max_abs_error(p.grad, Tensor<double>(p.grad.shape())) <= 1e-12);
  });
  reversible.for_each_parameter([&](const std::string& k, Param<double>& p) {
    if (skipped.count(k)) CHECK(test::max_abs_error(p.grad, skipped.at(k)) <= 1e-12);
  });
  MESSAGE("stacks of 1, 2, 3, 5 blocks, stored vs reversible: worst gradient ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-10);
  RevMViTv2<Tiny, double> tiny;
  RevMViTv2<Long, double> longer;
  const auto peaks = testing::step_peaks(tiny, longer, image);
  MESSAGE("peak bytes, stacks 2-2-1 vs 4-4-3: ", peaks);
  CHECK(peaks.stored_grows());
  CHECK(peaks.reversible_flat());
}

TEST_CASE("Rev-MViT (minREV): drop-path rises linearly; its masks are replayed in the reversible backward") {
  RevMViTv2<Cifar, double> stored, reversible;
  reversible.load(stored.state_dict());
  std::vector<double> rates;
  apply(stored.segments(), [&](nn::DropPath<double>& d) { rates.push_back(d.p()); });
  // Blocks 0 and 2 (F and G), transitions 1 and 3 (attention and MLP branches): 0.1 * i / 3.
  const std::vector<double> expected{0, 0, 0.1 / 3, 0.1 / 3, 0.2 / 3, 0.2 / 3, 0.1, 0.1};
  REQUIRE(rates.size() == expected.size());
  for (std::size_t i = 0; i < rates.size(); ++i) CHECK(rates[i] == doctest::Approx(expected[i]));
  stored.set_stochastic_depth(0.6);
  reversible.set_stochastic_depth(0.6);
  const Tensor<double> image = test::random({4, 3, 32, 32}, 5), dout = test::random({4, 10}, 6);
  Generator ga(9), gb(9);
  context ca{phase::train, &ga}, cb{phase::train, &gb};
  RevMViTv2<Cifar, double>::cache ta{mode::stored}, tb{mode::reversible};
  CHECK(test::max_abs_error(stored.forward(image, ca, ta), reversible.forward(image, cb, tb)) == 0);
  CHECK(test::max_rel_error(reversible.backward(tb, dout), stored.backward(ta, dout)) <= 1e-10);
  const worst w = testing::gradient_gap(stored, reversible, zero_in_exact_arithmetic);
  MESSAGE("stored vs reversible with drop-path: worst gradient ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-10);
}

TEST_CASE("Rev-MViT (minREV): bad inputs and bad weight files") {
  RevMViTv2<Tiny, double> net;
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(net.forward(Tensor<double>({1, 1, 24, 24}), eval),
                       doctest::Contains("image has extents [1, 1, 24, 24], expected a square RGB image [N, 3, S, S]"),
                       shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<double>({1, 3, 24, 32}), eval),
                       doctest::Contains("image has extents [1, 3, 24, 32], expected a square RGB image"), shape_error);
  // Another size runs where the windows fit (tables resampled): 40 x 40 gives a 20 x 20 grid.
  CHECK(net.forward(test::random({1, 3, 40, 40}, 3), eval).shape() == Shape{1, 5});
  io::file f = net.state_dict();
  f.entries.erase("blocks.2.attn.rel_pos_w");
  CHECK_THROWS_WITH_AS(net.load(f), doctest::Contains("missing key 'blocks.2.attn.rel_pos_w'"), io_error);
  // Weights of another schedule: block 1 is a transition there (width 16).
  CHECK_THROWS_WITH_AS(Net<Deep>().load(net.state_dict()),
                       doctest::Contains("key 'blocks.1.norm1.weight' has extents [8] in the file, expected [16]"),
                       io_error);
}
