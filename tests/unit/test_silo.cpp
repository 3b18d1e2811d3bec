#include "coupling_helpers.hpp"
#include "rev/nn/resample.hpp"
#include "rev/silo.hpp"

using namespace rev;

namespace {

constexpr int pow2(int k) { return 1 << k; }

// A small pyramid of 3 levels, like RevBiFPN's: F downsamples by 2^(j-i), G upsamples by 2^(i-j).
template <typename T, class Levels>
struct fusions {
  template <int I, int J>
  using F = nn::Sequential<
      nn::Conv2d<Levels::channels[I], Levels::channels[J], nn::conv_opts{.kernel = 3, .stride = pow2(J - I)}, T>,
      nn::BatchNorm2d<Levels::channels[J], nn::bn_opts{}, T>, nn::HardSwish<T>>;
  template <int I, int J>
  using G =
      nn::Sequential<nn::Conv2d<Levels::channels[I], Levels::channels[J], nn::conv_opts{.kernel = 1}, T>,
                     nn::BatchNorm2d<Levels::channels[J], nn::bn_opts{}, T>, nn::UpsampleBilinear<pow2(I - J), T>>;
  // For the affine merge the transforms produce [log-scale | shift]: twice the channels.
  template <int I, int J>
  using F2 =
      nn::Conv2d<Levels::channels[I], 2 * Levels::channels[J], nn::conv_opts{.kernel = 3, .stride = pow2(J - I)}, T>;
  template <int I, int J>
  using G2 = nn::Sequential<nn::Conv2d<Levels::channels[I], 2 * Levels::channels[J], nn::conv_opts{.kernel = 1}, T>,
                            nn::UpsampleBilinear<pow2(I - J), T>>;
};

using L3 = levels<4, 6, 8>;
template <typename T>
using Silo3 = Silo<L3, fusions<T, L3>::template F, fusions<T, L3>::template G>;
template <typename T>
using Grow3 = Silo<L3, fusions<T, L3>::template F, fusions<T, L3>::template G, silo_kind::grows>;
template <typename T>
using Affine3 = Silo<L3, fusions<T, L3>::template F2, fusions<T, L3>::template G2, silo_kind::same, affine_merge<>>;

template <typename T, int N>
Tensors<T, N> pyramid(index_t batch, index_t size, std::uint64_t seed) {
  Tensors<T, N> x;
  for (int i = 0; i < N; ++i) x[i] = test::random<T>({batch, L3::channels[i], size >> i, size >> i}, seed + i);
  return x;
}

}  // namespace

TEST_CASE("Silo: forward follows eqs. (3) and (4) of RevBiFPN") {
  Silo3<double> silo;
  auto x = pyramid<double, 3>(2, 8, 1);
  context ctx{phase::eval};
  auto y = silo.forward(x, ctx);
  // down half: z_j = x_j + sum_{i<j} F_{i->j}(x_i)
  auto z1 = ops::add(x[1], silo.transform<0, 1>().forward(x[0], ctx));
  auto z2 =
      ops::add(ops::add(x[2], silo.transform<0, 2>().forward(x[0], ctx)), silo.transform<1, 2>().forward(x[1], ctx));
  // up half: y_j = z_j + sum_{i>j} G_{i->j}(z_i), reading the down half's outputs
  auto y1 = ops::add(z1, silo.transform<2, 1>().forward(z2, ctx));
  auto y0 = ops::add(ops::add(x[0], silo.transform<2, 0>().forward(z2, ctx)), silo.transform<1, 0>().forward(z1, ctx));
  CHECK(test::max_abs_error(y[2], z2) < 1e-14);
  CHECK(test::max_abs_error(y[1], y1) < 1e-14);
  CHECK(test::max_abs_error(y[0], y0) < 1e-14);
}

TEST_CASE("Silo: a growing silo creates the next level from the F's alone") {
  Grow3<double> silo;
  auto x = pyramid<double, 2>(1, 8, 2);
  context ctx{phase::eval};
  auto y = silo.forward(x, ctx);
  REQUIRE(y[2].shape() == Shape{1, 8, 2, 2});
  auto z2 = ops::add(silo.transform<0, 2>().forward(x[0], ctx), silo.transform<1, 2>().forward(x[1], ctx));
  CHECK(test::max_abs_error(y[2], z2) < 1e-14);
  auto back = silo.inverse(y, ctx);
  CHECK(testing::compare_states(back, x).max_rel < 1e-12);
}

TEST_CASE("Silo: invertible in float32 and float64, additive and affine merges") {
  Silo3<double> d;
  auto rd = testing::check_invertible(d, pyramid<double, 3>(2, 8, 3));
  CHECK_MESSAGE(rd.ok(1e-12), rd.str());
  Silo3<float> f;
  auto rf = testing::check_invertible(f, pyramid<float, 3>(2, 16, 4));
  CHECK_MESSAGE(rf.ok(1e-5), rf.str());
  Affine3<double> a;
  auto ra = testing::check_invertible(a, pyramid<double, 3>(2, 8, 5));
  CHECK_MESSAGE(ra.ok(1e-12), ra.str());
}

TEST_CASE("Silo: Stored and Reversible gradients agree") {
  Silo3<float> f;
  auto r = testing::check_reversible_gradients(f, pyramid<float, 3>(2, 8, 6));
  CHECK_MESSAGE(r.ok(1e-5), r.str());
  Grow3<float> g;
  auto rg = testing::check_reversible_gradients(g, pyramid<float, 2>(2, 8, 7));
  CHECK_MESSAGE(rg.ok(1e-5), rg.str());
  Affine3<double> a;
  auto ra = testing::check_reversible_gradients(a, pyramid<double, 3>(2, 8, 8));
  CHECK_MESSAGE(ra.ok(1e-10), ra.str());
}

TEST_CASE("Silo: backward equals finite differences (float64)") {
  using L2 = levels<2, 3>;
  Silo<L2, fusions<double, L2>::template F, fusions<double, L2>::template G> silo;
  Tensors<double, 2> x{test::random({2, 2, 4, 4}, 9), test::random({2, 3, 2, 2}, 10)};
  Affine3<double> affine;
  // The generic checker sees the pyramid as a list of inputs and the output as one flat vector.
  auto check_level_grads = [](auto& block, const auto& input) {
    using In = std::remove_cvref_t<decltype(input)>;
    constexpr std::size_t n_in = std::tuple_size_v<In>;
    std::vector<Tensor<double>> inputs(input.begin(), input.end());
    auto fwd = [&](const std::vector<Tensor<double>>& in) {
      In levels_in;
      for (std::size_t i = 0; i < n_in; ++i) levels_in[i] = in[i];
      context ctx{phase::train};
      auto y = block.forward(levels_in, ctx);
      std::vector<Tensor<double>> flat(y.begin(), y.end());
      index_t total = 0;
      for (auto& t : flat) total += t.numel();
      Tensor<double> out({total});
      index_t o = 0;
      for (auto& t : flat)
        for (double v : t) out.data()[o++] = v;
      return out;
    };
    auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dflat) {
      In levels_in;
      for (std::size_t i = 0; i < n_in; ++i) levels_in[i] = in[i];
      context ctx{phase::train};
      typename std::remove_cvref_t<decltype(block)>::cache c;
      auto y = block.forward(levels_in, ctx, c);
      auto dy = y;
      index_t o = 0;
      for (auto& t : dy) {
        t = Tensor<double>(t.shape());
        for (double& v : t) v = dflat.data()[o++];
      }
      auto dx = block.backward(c, dy);
      return std::vector<Tensor<double>>(dx.begin(), dx.end());
    };
    return testing::check_gradients(fwd, bwd, inputs, {.rtol = 1e-5});
  };
  auto r = check_level_grads(silo, x);
  CHECK_MESSAGE(r.ok(), r.str());
  auto ra = check_level_grads(affine, pyramid<double, 3>(2, 4, 11));
  CHECK_MESSAGE(ra.ok(), ra.str());
}

namespace {
template <int I, int J>
using CountedF = test::CountedTotal<fusions<float, L3>::F<I, J>>;
template <int I, int J>
using CountedG = test::CountedTotal<fusions<float, L3>::G<I, J>>;
}  // namespace

TEST_CASE("Silo: each transform is evaluated once in forward and once in a reversible backward") {
  Chain<Repeat<2, Silo<L3, CountedF, CountedG>>> net;
  decltype(net)::cache tape{mode::reversible};
  context ctx{phase::train};
  test::total_evaluations = 0;
  auto y = net.forward(pyramid<float, 3>(2, 8, 13), ctx, tape);
  CHECK(test::total_evaluations == 2 * 6);  // 3 F's and 3 G's per silo
  auto dy = y;
  for (auto& t : dy) t = Tensor<float>(t.shape());
  net.backward(tape, dy);
  CHECK(test::total_evaluations == 2 * 2 * 6);
}

TEST_CASE("Silo: parameter names follow the official RevBiFPN state_dict") {
  Grow3<float> silo;
  std::vector<std::string> names;
  silo.for_each_parameter([&](const std::string& name, auto&) { names.push_back(name); });
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  CHECK(has("f.xform_0_1.0.weight"));
  CHECK(has("f.xform_1_2.1.bias"));
  CHECK(has("g.xform_0_1.0.weight"));  // G_{2->1}: reversed indices n-1-i, n-1-j
  CHECK(has("g.xform_0_2.0.weight"));  // G_{2->0}
  CHECK(has("g.xform_1_2.0.weight"));  // G_{1->0}
  CHECK_FALSE(has("g.xform_2_1.0.weight"));
}

TEST_CASE("Silo: runtime shape errors name the transform and the levels") {
  Silo3<float> silo;
  context ctx{phase::eval};
  auto x = pyramid<float, 3>(1, 8, 12);
  x[1] = Tensor<float>({1, 6, 5, 5});  // should be 4x4
  CHECK_THROWS_WITH_AS(silo.forward(x, ctx),
                       "rev::Silo: F_{0->1} maps level 0 to extents [1, 6, 4, 4] but level 1 has extents [1, 6, 5, 5] "
                       "(each level must be half the size of the one before: H and W divisible by 2^(levels-1))",
                       shape_error);
  x = pyramid<float, 3>(1, 8, 12);
  x[2] = Tensor<float>({1, 7, 2, 2});
  CHECK_THROWS_WITH_AS(silo.forward(x, ctx), "rev::Silo: level 2 has extents [1, 7, 2, 2], expected [N, 8, H, W]",
                       shape_error);
}
