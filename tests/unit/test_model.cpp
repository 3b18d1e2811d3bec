// rev::model<Spec, T, B>: an architecture written once with the default element type and
// backend, bound to others in one place; every layer, container and coupling is rebound.
#include "coupling_helpers.hpp"
#include "rev/additive.hpp"
#include "rev/core/named.hpp"
#include "rev/graph/cascade.hpp"
#include "rev/graph/per_level.hpp"
#include "rev/graph/residual.hpp"
#include "rev/graph/tap.hpp"
#include "rev/nn/linear.hpp"
#include "rev/nn/mbconv.hpp"
#include "rev/nn/pool.hpp"
#include "rev/nn/resample.hpp"
#include "rev/silo.hpp"
#include "rev/testing/check_gradients.hpp"

using namespace rev;

namespace {

template <class T = float>
using Half = nn::Conv2d<4, 4, nn::conv_opts{.kernel = 3}, T>;
template <class T = float>
using Stem =
    nn::Sequential<nn::Conv2d<3, 8, nn::conv_opts{.kernel = 3}, T>, nn::BatchNorm2d<8, nn::bn_opts{}, T>, nn::ReLU<T>>;
template <class T = float>
using Spec = Chain<Named<"stem", Stem<T>>, Named<"blocks", Repeat<2, Additive<Half<T>, Half<T>>>>,
                   Tap<nn::Conv2d<8, 2, nn::conv_opts{}, T>>,
                   Residual<nn::Conv2d<8, 8, nn::conv_opts{.kernel = 3}, T>, residual_opts{.layer_scale = 0.5}>>;

template <int I, int J>
using F = nn::Conv2d<4, 8, nn::conv_opts{.kernel = 3, .stride = 2}>;
template <int I, int J>
using G = nn::Sequential<nn::Conv2d<8, 4>, nn::UpsampleNearest<2>>;
template <int I, int J>
using Fd = nn::Conv2d<4, 8, nn::conv_opts{.kernel = 3, .stride = 2}, double>;
template <int I, int J>
using Gd = nn::Sequential<nn::Conv2d<8, 4, nn::conv_opts{}, double>, nn::UpsampleNearest<2, double>>;

}  // namespace

static_assert(std::same_as<model<Spec<>>, Spec<>>);
static_assert(std::same_as<model<Spec<>, double>, Spec<double>>);
static_assert(std::same_as<model<Silo<levels<4, 8>, F, G>, double>::value_type, double>);
static_assert(std::same_as<input_t<model<Silo<levels<4, 8>, F, G>, double>>, input_t<Silo<levels<4, 8>, Fd, Gd>>>);
static_assert(std::same_as<model<PerLevel<Half<>, nn::Conv2d<8, 8>>, double>,
                           PerLevel<Half<double>, nn::Conv2d<8, 8, nn::conv_opts{}, double>>>);
static_assert(
    std::same_as<model<Cascade<nn::Conv2d<4, 4>>, double>, Cascade<nn::Conv2d<4, 4, nn::conv_opts{}, double>>>);
// A user's layer derived from a library layer without a rebind of its own keeps its type.
static_assert(std::same_as<model<test::Counted<Half<>>, double>, test::Counted<Half<>>>);

TEST_CASE("rev::model: a specification bound to double runs in double; gradients match finite differences") {
  model<Spec<>, double> net;
  const auto r = testing::check_gradients(net, test::random({2, 3, 5, 5}, 1));
  CHECK_MESSAGE(r.ok(), r.str());
  model<Silo<levels<4, 8>, F, G, silo_kind::same>, double> silo;
  context eval{phase::eval};
  const Tensors<double, 2> x{test::random({1, 4, 4, 4}, 2), test::random({1, 8, 2, 2}, 3)};
  const auto y = silo.forward(x, eval);
  CHECK(test::max_abs_error(silo.inverse(y, eval)[1], x[1]) < 1e-12);
}

TEST_CASE("rev::apply: visits every layer inside a network, parents first, the ones the function takes") {
  using Block = nn::MBConv<8, 8, nn::mbconv_opts{.drop_path = 0.2}>;
  using Net = Chain<Named<"stem", Stem<>>, Named<"blocks", Repeat<2, Additive<Half<>, Half<>>>>,
                    Residual<Block, residual_opts{.drop_path = 0.1}>>;
  Net net;
  int halves = 0, stem_norms = 0, block_norms = 0, nodes = 0;
  bool root_first = false;
  apply(net, [&](Half<>&) { ++halves; });
  apply(net, [&](nn::BatchNorm2d<8, nn::bn_opts{}>&) { ++stem_norms; });
  apply(net, [&](nn::BatchNorm2d<8, nn::mbconv_bn>&) { ++block_norms; });
  apply(net, [&]<class L>(L&) {
    if constexpr (std::same_as<L, Net>) root_first = nodes == 0;
    ++nodes;
  });
  CHECK(halves == 4);       // F and G of two couplings
  CHECK(stem_norms == 1);   // the stem's
  CHECK(block_norms == 2);  // the MBConv's depthwise and projection units
  CHECK(root_first);
  // Chain, stem (Sequential and its 3 layers), Repeat, 2 couplings with 2 halves each, Residual,
  // MBConv, its 2 conv units with 3 parts each, its DropPath, the Residual's DropPath.
  CHECK(nodes == 1 + 4 + 1 + 2 * 3 + 1 + 1 + 2 * 4 + 1 + 1);
  std::vector<double> rates;
  apply(net, [&](nn::DropPath<float>& d) { rates.push_back(d.p()); });
  CHECK(rates == std::vector<double>{0.2, 0.1});
  apply(net, [](nn::DropPath<float>& d) { d.set_p(0.3); });
  rates.clear();
  apply(net, [&](nn::DropPath<float>& d) { rates.push_back(d.p()); });
  CHECK(rates == std::vector<double>{0.3, 0.3});
}
