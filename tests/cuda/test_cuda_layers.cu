// Layers and couplings on rev::cuda against the same layers on the CPU: the device layer gets the
// host layer's weights by rev::copy_state, both run a train-phase forward and a backward on the
// same input and output gradient in double, and outputs, input gradients and every parameter
// gradient must agree to 1e-10 of their largest magnitude. This checks the layers' device paths
// (SqueezeExcite is composed of ops there, fused on the CPU) and the op dispatch, on top of the
// per-op tests.
#include <doctest/doctest.h>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace {

using rev::cpu;
using rev::cuda;
using rev::Shape;
using rev::Tensor;
namespace nn = rev::nn;

// max |a - b| / max |b| (0 when both are zero).
double relative_difference(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  double err = 0, ref = 0;
  for (rev::index_t i = 0; i < a.numel(); ++i) {
    err = std::max(err, std::abs(a.data()[i] - b.data()[i]));
    ref = std::max(ref, std::abs(b.data()[i]));
  }
  return ref > 0 ? err / ref : err;
}

template <class L>
std::map<std::string, Tensor<double>> gradients(L& layer) {
  std::map<std::string, Tensor<double>> g;
  layer.for_each_parameter([&](const std::string& name, auto& p) { g.emplace(name, rev::to<cpu>(p.grad)); });
  return g;
}

// Runs layer Host<cpu> and Device<cuda> (the same type on two backends) on x and dy.
template <class HostLayer, class DeviceLayer, class... Args>
void check_layer(const char* what, const Shape& s, Args... args) {
  CAPTURE(what);
  HostLayer host(args...);
  DeviceLayer device(args...);
  rev::copy_state(host, device);
  const Tensor<double> x = rev::testing::random_uniform<double>(s, 1);
  rev::Generator host_rng(7), device_rng(7);  // the same dropout masks
  rev::context host_ctx{rev::phase::train, &host_rng}, device_ctx{rev::phase::train, &device_rng};
  typename HostLayer::cache hc;
  typename DeviceLayer::cache dc;
  const Tensor<double> y = host.forward(x, host_ctx, hc);
  const Tensor<double> yd = rev::to<cpu>(device.forward(rev::to<cuda>(x), device_ctx, dc));
  CHECK(relative_difference(yd, y) < 1e-10);
  const Tensor<double> dy = rev::testing::random_uniform<double>(y.shape(), 2);
  const Tensor<double> dx = host.backward(hc, dy);
  const Tensor<double> dxd = rev::to<cpu>(device.backward(dc, rev::to<cuda>(dy)));
  CHECK(relative_difference(dxd, dx) < 1e-10);
  const auto gh = gradients(host), gd = gradients(device);
  REQUIRE(gh.size() == gd.size());
  for (const auto& [name, g] : gh) {
    CAPTURE(name);
    CHECK(relative_difference(gd.at(name), g) < 1e-10);
  }
}

template <template <class> class L>
void check(const char* what, const Shape& s) {
  check_layer<L<cpu>, L<cuda>>(what, s);
}

template <class B>
using conv = nn::Conv2d<4, 6, nn::conv_opts{.kernel = 3, .stride = 2, .groups = 2, .bias = true}, double, B>;
template <class B>
using batch_norm = nn::BatchNorm2d<5, nn::bn_opts{}, double, B>;
template <class B>
using linear = nn::Linear<7, 3, true, double, B>;
template <class B>
using layer_norm = nn::LayerNorm2d<5, nn::eps_1e6, double, B>;
template <class B>
using squeeze_excite = nn::SqueezeExcite<8, 3, rev::ops::act::hardswish, rev::ops::act::hardsigmoid, double, B>;
template <class B>
using mbconv = nn::MBConv<8, 8, nn::mbconv_opts{.expand = 2, .kernel = 5, .se_ratio = 0.25}, double, B>;
template <class B>
using mbconv_strided = nn::MBConv<6, 10, nn::mbconv_opts{.expand = 3, .kernel = 3, .stride = 2}, double, B>;
template <class B>
using upsample = nn::UpsampleBilinear<2, double, B>;
template <class B>
using attention = nn::MultiHeadAttention<6, 2, double, B>;
template <class B>
using F = nn::Conv2d<3, 3, nn::conv_opts{.kernel = 3, .bias = true}, double, B>;
template <class B>
using additive = rev::Additive<F<B>, F<B>>;

}  // namespace

// One architecture, bound to the GPU in one place.
using GpuNet = rev::model<rev::Chain<rev::nn::Conv2d<3, 8>, rev::nn::ReLU<>>, float, rev::cuda>;
static_assert(std::is_same_v<GpuNet::backend, rev::cuda>);
static_assert(std::is_same_v<std::remove_reference_t<decltype(std::declval<GpuNet&>().get<1>())>,
                             rev::nn::ReLU<float, rev::cuda>>);

TEST_CASE("cuda layers: forward, input and parameter gradients equal the CPU layer's") {
  check<conv>("Conv2d, groups 2, stride 2", {2, 4, 9, 7});
  check<batch_norm>("BatchNorm2d", {3, 5, 5, 3});
  check<linear>("Linear", {5, 7});
  check<layer_norm>("LayerNorm2d", {2, 5, 3, 7});
  check<squeeze_excite>("SqueezeExcite", {3, 8, 5, 5});
  check<mbconv>("MBConv with SE", {2, 8, 7, 7});
  check<mbconv_strided>("MBConv, stride 2", {2, 6, 9, 9});
  check<upsample>("UpsampleBilinear", {2, 3, 5, 4});
  check<attention>("MultiHeadAttention", {2, 7, 6});
  check_layer<nn::Dropout<double, cpu>, nn::Dropout<double, cuda>>("Dropout", {4, 33}, 0.3);
}

TEST_CASE("cuda couplings: an Additive block's inverse and reversible backward equal the CPU's") {
  additive<cpu> host;
  additive<cuda> device;
  rev::copy_state(host, device);
  const Tensor<double> x = rev::testing::random_uniform<double>({2, 6, 5, 5}, 3);
  rev::context ctx{rev::phase::train};
  const Tensor<double> y = host.forward(x, ctx);
  const Tensor<double> yd = rev::to<cpu>(device.forward(rev::to<cuda>(x), ctx));
  CHECK(relative_difference(yd, y) < 1e-12);
  CHECK(relative_difference(rev::to<cpu>(device.inverse(rev::to<cuda>(y), ctx)), x) < 1e-12);
  const Tensor<double> dy = rev::testing::random_uniform<double>(y.shape(), 4);
  const auto r = host.backward_reversible(y, dy);
  const auto rd = device.backward_reversible(rev::to<cuda>(y), rev::to<cuda>(dy));
  CHECK(relative_difference(rev::to<cpu>(rd.x), r.x) < 1e-12);
  CHECK(relative_difference(rev::to<cpu>(rd.dx), r.dx) < 1e-10);
}

TEST_CASE("cuda: copy_state rejects a model of another architecture, naming the key") {
  linear<cpu> host;
  conv<cuda> device;
  CHECK_THROWS_WITH_AS(rev::copy_state(host, device), doctest::Contains("'weight'"), rev::error);
  squeeze_excite<cuda> se;
  CHECK_THROWS_WITH_AS(rev::copy_state(host, se), doctest::Contains("the source has no such key"), rev::error);
}
