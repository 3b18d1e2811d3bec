#include "helpers.hpp"
#include "rev/nn/mbconv.hpp"

#include <vector>

using namespace rev;

namespace {

template <class L>
std::vector<std::string> parameter_names(L& layer) {
  std::vector<std::string> names;
  layer.for_each_parameter([&](const std::string& n, auto&) { names.push_back(n); });
  return names;
}
template <class L>
std::vector<std::string> buffer_names(L& layer) {
  std::vector<std::string> names;
  layer.for_each_buffer([&](const std::string& n, auto&) { names.push_back(n); });
  return names;
}

}  // namespace

TEST_CASE("MBConv: widths and parameter names follow spec §4.3 and §9") {
  using Full = nn::MBConv<8, 6, nn::mbconv_opts{.expand = 2, .kernel = 5, .stride = 2, .se_ratio = 0.25}>;
  static_assert(Full::mid_channels == 16 && Full::se_channels == 2);  // q from the input channels
  Full full;
  CHECK(parameter_names(full) ==
        std::vector<std::string>{"exp_conv.conv.weight", "exp_conv.norm.weight", "exp_conv.norm.bias",
                                 "dw_conv.conv.weight", "dw_conv.norm.weight", "dw_conv.norm.bias", "se.se.1.weight",
                                 "se.se.1.bias", "se.se.3.weight", "se.se.3.bias", "project_conv.conv.weight",
                                 "project_conv.norm.weight", "project_conv.norm.bias"});
  CHECK(buffer_names(full) == std::vector<std::string>{"exp_conv.norm.running_mean", "exp_conv.norm.running_var",
                                                       "dw_conv.norm.running_mean", "dw_conv.norm.running_var",
                                                       "project_conv.norm.running_mean",
                                                       "project_conv.norm.running_var"});
  CHECK(full.dw_conv.conv.weight.shape() == Shape{16, 1, 5, 5});
  CHECK(full.se.w1.shape() == Shape{2, 16, 1, 1});
  CHECK(full.project_conv.conv.weight.shape() == Shape{6, 16, 1, 1});

  using Plain = nn::MBConv<4, 4>;
  static_assert(Plain::mid_channels == 4 && Plain::se_channels == 0);
  Plain plain;
  CHECK(parameter_names(plain) == std::vector<std::string>{"dw_conv.conv.weight", "dw_conv.norm.weight",
                                                           "dw_conv.norm.bias", "project_conv.conv.weight",
                                                           "project_conv.norm.weight", "project_conv.norm.bias"});
  // SE width given directly (RevBiFPN's G transforms), and the max(1, .) floor.
  static_assert(nn::MBConv<8, 8, nn::mbconv_opts{.se_ratio = 0.25, .se_channels = 5}>::se_channels == 5);
  static_assert(nn::MBConv<2, 2, nn::mbconv_opts{.se_ratio = 0.25}>::se_channels == 1);
}

TEST_CASE("MBConv: output extents with stride, in eval and train") {
  nn::MBConv<8, 6, nn::mbconv_opts{.expand = 2, .kernel = 5, .stride = 2, .se_ratio = 0.25}> m;
  Tensor<float> x = test::random<float>({2, 8, 9, 8}, 1);
  context eval{phase::eval}, train{phase::train};
  CHECK(m.forward(x, eval).shape() == Shape{2, 6, 5, 4});
  decltype(m)::cache c;
  CHECK(m.forward(x, train, c).shape() == Shape{2, 6, 5, 4});
  CHECK(m.backward(c, test::random<float>({2, 6, 5, 4}, 2)).shape() == x.shape());
  CHECK_THROWS_AS(m.forward(test::random<float>({2, 7, 8, 8}, 3), eval), shape_error);
}

TEST_CASE("MBConv: gradients match finite differences (float64, train phase)") {
  SUBCASE("expansion, squeeze-excite, stride 2") {
    nn::MBConv<4, 6, nn::mbconv_opts{.expand = 2, .kernel = 3, .stride = 2, .se_ratio = 0.5}, double> m;
    const auto r = testing::check_gradients(m, test::random({2, 4, 5, 6}, 4, -2, 2));
    INFO(r.str());
    CHECK(r.ok());
  }
  SUBCASE("no expansion, no squeeze-excite") {
    nn::MBConv<4, 4, nn::mbconv_opts{.kernel = 5}, double> m;
    const auto r = testing::check_gradients(m, test::random({2, 4, 6, 5}, 5, -2, 2));
    INFO(r.str());
    CHECK(r.ok());
  }
  SUBCASE("eval phase") {
    nn::MBConv<4, 4, nn::mbconv_opts{.expand = 2, .se_ratio = 0.25}, double> m;
    const auto r = testing::check_gradients(m, test::random({1, 4, 4, 4}, 6, -2, 2), {.mode = phase::eval});
    INFO(r.str());
    CHECK(r.ok());
  }
}

TEST_CASE("MBConv: drop-path is per sample in train and the identity in eval") {
  nn::MBConv<4, 4, nn::mbconv_opts{.drop_path = 0.5}> m;
  Tensor<float> x = test::random<float>({16, 4, 4, 4}, 7);
  context eval{phase::eval};
  Generator gen(3);
  context train{phase::train, &gen};
  nn::MBConv<4, 4, nn::mbconv_opts{}> plain;
  plain.dw_conv.conv.weight.value = m.dw_conv.conv.weight.value.clone();
  plain.project_conv.conv.weight.value = m.project_conv.conv.weight.value.clone();
  CHECK(test::max_abs_error(m.forward(x, eval), plain.forward(x, eval)) == 0);
  Tensor<float> y = m.forward(x, train);
  int zeroed = 0;
  for (index_t n = 0; n < 16; ++n) {
    bool all_zero = true;
    for (index_t k = 0; k < 64; ++k) all_zero = all_zero && y.data()[n * 64 + k] == 0;
    zeroed += all_zero;
  }
  CHECK(zeroed > 0);
  CHECK(zeroed < 16);
}
