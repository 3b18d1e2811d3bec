// Rev-MViT in SlowFast's layout against tests/torch_ref/revmvit_slowfast (gen_revmvit_slowfast.py:
// the official ReversibleMViT, StageTransitionBlock and pooling attention in float64 at width 8,
// blocks 1-1-2-1, 32 x 32, 5 classes), the pooling attention against finite differences, the
// counts of Rev-MViT-B-16, drop-path, memory and bad inputs.
#include <map>

#include "helpers.hpp"
#include "model_checks.hpp"
#include "rev/models/revmvit.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;
using models::RevMViT;
namespace rm = models::revmvit;

namespace {

struct Tiny {  // tests/torch_ref/gen_revmvit_slowfast.py's
  static constexpr const char* name = "tiny";
  static constexpr int image = 32, patch_kernel = 7, patch_stride = 4, patch_padding = 3;
  static constexpr int width = 8, heads = 1;
  static constexpr std::array<int, 4> blocks{1, 1, 2, 1};
  static constexpr int kv_stride = 4, mlp_ratio = 4, classes = 5;
  static constexpr double drop_path = 0;
};
// Reversible stacks of 5, 2, 3 and 5 blocks (the same block types as Tiny's).
struct Deep : Tiny {
  static constexpr const char* name = "deep";
  static constexpr std::array<int, 4> blocks{5, 2, 3, 5};
};
// Another image size: another position embedding.
struct Big : Tiny {
  static constexpr int image = 64;
};

const std::string slowfast_ref = std::string(REV_TEST_DATA_DIR) + "/revmvit_slowfast";

using testing::worst;

template <class Cfg>
using Net = RevMViT<Cfg, double>;  // one word inside the CHECK macros

// The bias of norm_k adds q . b to every score of a query, a constant the softmax removes: its
// gradient is zero in exact arithmetic and is compared in absolute terms.
bool zero_in_exact_arithmetic(const std::string& key) { return key.ends_with("norm_k.bias"); }

}  // namespace

TEST_CASE("Rev-MViT: parameter count of B-16 (spec §5) and of the built model") {
  static_assert(rm::parameter_count<rm::B>() == rm::B::reference_parameters);
  static_assert(rm::depth<rm::B> == 16 && rm::first_block<rm::B>(3) == 15 && rm::grid0<rm::B> == 56);
  RevMViT<Tiny, double> net;
  CHECK(parameter_count(net) == rm::parameter_count<Tiny>());
  CHECK(parameter_count(net) == 171621);  // the official model's at these sizes
  // SlowFast's initialisation: weights (Linear, conv, pooling conv) N(0, 0.02), biases and norm biases 0.02.
  auto& attn = net.backbone().template get<3>().template get<2>().attn;  // the second transition's
  double s2 = 0;
  for (double v : attn.pool_weight[0].value) s2 += v * v;
  CHECK(std::sqrt(s2 / static_cast<double>(attn.pool_weight[0].value.numel())) == doctest::Approx(0.02).epsilon(0.5));
  CHECK(attn.in_bias[1].value.data()[0] == 0.02);
  CHECK(attn.norm_bias[0].value.data()[0] == 0.02);
  CHECK(attn.norm_weight[0].value.data()[0] == 1);
}

TEST_CASE("Rev-MViT: pooling attention gradients match finite differences (float64)") {
  // 16 tokens of a 4 x 4 grid, 2 heads of 3: Q pooled with stride 2, K and V with stride 1.
  nn::PoolingAttention<6, 6, 2, 2, 1, double> attn;
  Generator g(3);
  attn.for_each_parameter([&](const std::string&, Param<double>& p) { nn::init::normal(p.value, 0.0, 0.5, g); });
  auto r = testing::check_gradients(attn, test::random({2, 16, 6}, 4));
  CHECK_MESSAGE(r.ok(), r.str());
  // The Q pooling of the input itself (a transition's residual).
  const Tensor<double> x = test::random({2, 16, 6}, 5), w = test::random({2, 4, 6}, 6), v = test::random({2, 16, 6}, 7);
  nn::PoolingAttention<6, 6, 2, 2, 1, double>::pool_cache c;
  CHECK(attn.pool_q(x, &c).shape() == (Shape{2, 4, 6}));
  const double analytic = ops::dot(attn.pool_q_backward(c, w), v);
  const double eps = 1e-6;
  auto loss = [&](double t) {
    Tensor<double> xt = x.clone();
    for (index_t i = 0; i < xt.numel(); ++i) xt.data()[i] += t * v.data()[i];
    return ops::dot(attn.pool_q(xt), w);
  };
  const double numeric = (loss(eps) - loss(-eps)) / (2 * eps);
  CHECK(std::abs(analytic - numeric) <= 1e-7 * std::max(1.0, std::abs(numeric)));
  // The transition's sub-block: the pooled residual and the attention share pool_q and norm_q.
  nn::PooledResidualAttention<6, 2, 1, double> sub;
  sub.for_each_parameter([&](const std::string&, Param<double>& p) { nn::init::normal(p.value, 0.0, 0.5, g); });
  auto rs = testing::check_gradients(sub, test::random({2, 16, 6}, 8));
  CHECK_MESSAGE(rs.ok(), rs.str());
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(attn.forward(Tensor<double>({1, 15, 6}), eval),
                       doctest::Contains("15 tokens are not a square grid"), shape_error);
}

TEST_CASE("Rev-MViT (SlowFast layout): keys, logits and every gradient equal the official code's") {
  const io::file weights = io::load(slowfast_ref + ".weights.safetensors");
  const io::file ref = io::load(slowfast_ref + ".safetensors");
  RevMViT<Tiny, double> net;
  const auto keys = testing::keys_of(net);
  CHECK(keys.size() == 204);
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
  for (mode m : {mode::stored, mode::reversible}) {
    const std::string mode_name = m == mode::stored ? "stored" : "reversible";
    CAPTURE(mode_name);
    const worst g = testing::reference_step(net, ref, m, 204, zero_in_exact_arithmetic);
    MESSAGE(mode_name, ": worst gradient ", g.rel, " (", g.key, ")");
    CHECK(g.rel <= 1e-10);
  }
}

TEST_CASE("Rev-MViT: drop-path rises linearly over all blocks; its masks are replayed in the reversible backward") {
  RevMViT<Tiny, double> stored, reversible;
  reversible.load(stored.state_dict());
  stored.set_stochastic_depth(0.7);
  reversible.set_stochastic_depth(0.7);
  // Blocks 0, 2, 4, 5, 7 are reversible (F and G drop), 1, 3 and 6 transitions (the output drops).
  std::vector<double> rates;
  apply(stored.backbone(), [&](nn::DropPath<double>& d) { rates.push_back(d.p()); });
  const std::vector<double> expected{0, 0, 0.1, 0.2, 0.2, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.7, 0.7};
  REQUIRE(rates.size() == expected.size());
  for (std::size_t i = 0; i < rates.size(); ++i) CHECK(rates[i] == doctest::Approx(expected[i]));
  const Tensor<double> image = test::random({4, 3, 32, 32}, 5), dout = test::random({4, 5}, 6);
  Generator ga(9), gb(9);
  context ca{phase::train, &ga}, cb{phase::train, &gb};
  RevMViT<Tiny, double>::cache ta{mode::stored}, tb{mode::reversible};
  CHECK(test::max_abs_error(stored.forward(image, ca, ta), reversible.forward(image, cb, tb)) == 0);
  CHECK(test::max_rel_error(reversible.backward(tb, dout), stored.backward(ta, dout)) <= 1e-10);
  const worst w = testing::gradient_gap(stored, reversible, zero_in_exact_arithmetic);
  MESSAGE("stored vs reversible with drop-path: worst gradient ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-10);
}

TEST_CASE("Rev-MViT: stacks of 1, 2, 3 and 5 blocks give the stored gradients; memory does not grow with them") {
  RevMViT<Deep, double> stored, reversible;
  reversible.load(stored.state_dict());
  const Tensor<double> image = test::random({2, 3, 32, 32}, 8), dout = test::random({2, 5}, 9);
  context ca{phase::train}, cb{phase::train};
  RevMViT<Deep, double>::cache ta{mode::stored}, tb{mode::reversible};
  CHECK(test::max_abs_error(stored.forward(image, ca, ta), reversible.forward(image, cb, tb)) == 0);
  CHECK(test::max_rel_error(reversible.backward(tb, dout), stored.backward(ta, dout)) <= 1e-10);
  const worst w = testing::gradient_gap(stored, reversible, zero_in_exact_arithmetic);
  MESSAGE("stacks of 5, 2, 3, 5 blocks, stored vs reversible: worst gradient ", w.rel, " (", w.key, ")");
  CHECK(w.rel <= 1e-10);
  // Peak bytes of a step: the reversible stacks keep nothing, the transitions their input.
  RevMViT<Tiny, double> tiny;
  const auto peaks = testing::step_peaks(tiny, stored, image);
  MESSAGE("peak bytes, blocks 1-1-2-1 vs 5-2-3-5: ", peaks);
  CHECK(peaks.stored_grows());
  CHECK(peaks.reversible_flat());
}

TEST_CASE("Rev-MViT: bad inputs and bad weight files") {
  RevMViT<Tiny, double> net;
  context eval{phase::eval};
  CHECK_THROWS_WITH_AS(
      net.forward(Tensor<double>({1, 3, 64, 64}), eval),
      doctest::Contains("image has extents [1, 3, 64, 64], expected [N, 3, 32, 32] (it gives a 16 x 16 "
                        "token grid, the position embedding is made for a 8 x 8 token grid"),
      shape_error);
  CHECK_THROWS_WITH_AS(net.forward(Tensor<double>({1, 1, 32, 32}), eval), doctest::Contains("expected [N, 3, 32, 32]"),
                       shape_error);
  io::file f = net.state_dict();
  f.entries.erase("rev_backbone.layers.3.F.attn.pool_q.weight");
  CHECK_THROWS_WITH_AS(net.load(f), doctest::Contains("missing key 'rev_backbone.layers.3.F.attn.pool_q.weight'"),
                       io_error);
  // Another image size (position embedding), other blocks per stage (the numbering moves).
  CHECK_THROWS_WITH_AS(Net<Big>().load(net.state_dict()),
                       doctest::Contains("'pos_embed' has extents [1, 64, 8] in the file, expected [1, 256, 8]"),
                       io_error);
  CHECK_THROWS_WITH_AS(
      Net<Deep>().load(net.state_dict()),
      doctest::Contains("key 'rev_backbone.layers.1.F.norm.weight' has extents [16] in the file, expected [8]"),
      io_error);
}
