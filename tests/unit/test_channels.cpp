#include <array>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"

using namespace rev;

namespace {

// Element (n, c, rest) of x [N, C, rest...] viewed as [N, C, inner].
template <class T>
T at(const Tensor<T>& x, index_t n, index_t c, index_t r) {
  index_t inner = 1;
  for (int i = 2; i < x.rank(); ++i) inner *= x.size(i);
  return x.data()[(n * x.size(1) + c) * inner + r];
}

template <class T>
index_t inner_of(const Tensor<T>& x) {
  index_t inner = 1;
  for (int i = 2; i < x.rank(); ++i) inner *= x.size(i);
  return inner;
}

}  // namespace

TEST_CASE("split_channels and concat_channels: forward equals the definition, round trip is exact") {
  for (Shape s : {Shape{2, 5, 3, 4}, Shape{1, 1, 1, 1}, Shape{3, 6, 5}, Shape{2, 7}, Shape{4, 9, 33, 35}}) {
    auto x = test::random(s, 31);
    const index_t C = s[1];
    std::vector<index_t> sizes = {C / 3, 0, C - C / 3};
    INFO("extents ", s);
    auto parts = ops::split_channels(x, sizes);
    REQUIRE(parts.size() == 3);
    index_t c0 = 0;
    for (std::size_t k = 0; k < parts.size(); ++k) {
      Shape expected = s;
      expected[1] = sizes[k];
      CHECK(parts[k].shape() == expected);
      bool same = true;
      for (index_t n = 0; n < s[0]; ++n)
        for (index_t c = 0; c < sizes[k]; ++c)
          for (index_t r = 0; r < inner_of(x); ++r) same = same && at(parts[k], n, c, r) == at(x, n, c0 + c, r);
      CHECK(same);
      c0 += sizes[k];
    }
    CHECK(test::max_abs_error(ops::concat_channels(parts), x) == 0);
  }
}

TEST_CASE("split_channels and concat_channels: call forms") {
  auto x = test::random<float>({2, 4, 3}, 32);
  auto a = ops::split_channels(x, {1, 3});
  const std::array<index_t, 2> sizes = {2, 2};
  auto b = ops::split_channels(x, sizes);
  CHECK(test::max_abs_error(ops::concat_channels({a[0], a[1]}), x) == 0);
  CHECK(test::max_abs_error(ops::concat_channels(b), x) == 0);
  const std::array<Tensor<float>, 2> arr = {b[0], b[1]};
  CHECK(test::max_abs_error(ops::concat_channels(arr), x) == 0);
  CHECK(test::max_abs_error(ops::concat_channels(std::span<const Tensor<float>>(b)), x) == 0);
  // The parts own their buffers: writing to one leaves x alone.
  a[0].fill(7);
  CHECK(x(0, 0, 0) != 7);
  // One part is a copy of the whole.
  auto whole = ops::split_channels(x, {4});
  CHECK(test::max_abs_error(whole[0], x) == 0);
  CHECK_FALSE(whole[0].shares_buffer_with(x));
}

TEST_CASE("split_channels and concat_channels: forward and backward equal PyTorch's") {
  auto ref = test::torch_reference("channels");
  for (int k = 0; k < 5; ++k) {
    const std::string key = std::to_string(k) + ".";
    INFO("case ", k);
    auto sizes_d = ref.tensor<double>(key + "sizes");
    std::vector<index_t> sizes;
    for (double s : sizes_d) sizes.push_back(static_cast<index_t>(s));
    auto x = ref.tensor<double>(key + "x");
    auto parts = ops::split_channels(x, sizes);
    auto parts_f = ops::split_channels(ops::cast<float>(x), sizes);
    std::vector<Tensor<double>> dparts;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      CHECK(test::max_abs_error(parts[i], ref.tensor<double>(key + "part" + std::to_string(i))) == 0);
      CHECK(test::max_abs_error(parts_f[i], ref.tensor<float>(key + "part" + std::to_string(i))) == 0);
      dparts.push_back(ref.tensor<double>(key + "dpart" + std::to_string(i)));
    }
    // The backward of split is concat, and the backward of concat is split.
    CHECK(test::max_abs_error(ops::concat_channels(dparts), ref.tensor<double>(key + "dx")) == 0);
    CHECK(test::max_abs_error(ops::concat_channels(parts), x) == 0);
    auto dcat = ops::split_channels(ref.tensor<double>(key + "dcat"), sizes);
    for (std::size_t i = 0; i < sizes.size(); ++i)
      CHECK(test::max_abs_error(dcat[i], ref.tensor<double>(key + "cat_dpart" + std::to_string(i))) == 0);
  }
}

TEST_CASE("split_channels and concat_channels: backward equals finite differences") {
  const std::vector<index_t> sizes = {2, 1, 3};
  // Split, with the parts' outputs concatenated in reverse order so that the checked function
  // is a non-trivial permutation.
  auto split_fwd = [&](const std::vector<Tensor<double>>& in) {
    auto p = ops::split_channels(in[0], sizes);
    return ops::concat_channels({p[2], p[0], p[1]});
  };
  auto split_bwd = [&](const std::vector<Tensor<double>>&, const Tensor<double>& dy) {
    auto d = ops::split_channels(dy, {3, 2, 1});
    return std::vector<Tensor<double>>{ops::concat_channels({d[1], d[2], d[0]})};
  };
  auto r = testing::check_gradients(split_fwd, split_bwd, {test::random({2, 6, 3, 2}, 33)});
  CHECK_MESSAGE(r.ok(), r.str());

  auto cat_fwd = [](const std::vector<Tensor<double>>& in) { return ops::concat_channels(in); };
  auto cat_bwd = [](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    return ops::split_channels(dy, {in[0].size(1), in[1].size(1), in[2].size(1)});
  };
  r = testing::check_gradients(
      cat_fwd, cat_bwd,
      {test::random({2, 1, 3, 2}, 34), test::random({2, 4, 3, 2}, 35), test::random({2, 2, 3, 2}, 36)});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("split_channels and concat_channels: bad inputs raise errors that name the op") {
  Tensor<float> x({2, 5, 3}), v({5});
  CHECK_THROWS_WITH_AS(ops::split_channels(x, {2, 2}),
                       "rev::ops::split_channels: part sizes sum to 4, expected the 5 channels of the input (extents "
                       "[2, 5, 3])",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::split_channels(x, {6, -1}), "rev::ops::split_channels: negative part size -1", shape_error);
  CHECK_THROWS_WITH_AS(ops::split_channels(v, {5}),
                       "rev::ops::split_channels: input has rank 1 (extents [5]), expected rank >= 2", shape_error);
  CHECK_THROWS_WITH_AS(ops::concat_channels(std::vector<Tensor<float>>{}),
                       "rev::ops::concat_channels: no tensors to concatenate", shape_error);
  CHECK_THROWS_WITH_AS(ops::concat_channels({v, v}),
                       "rev::ops::concat_channels: part 0 has rank 1 (extents [5]), expected rank >= 2", shape_error);
  CHECK_THROWS_WITH_AS(ops::concat_channels({x, Tensor<float>({2, 1, 4})}),
                       "rev::ops::concat_channels: part 1 has extents [2, 1, 4], expected [2, 5, 3] except in dim 1",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::concat_channels({x, Tensor<float>({3, 5, 3})}),
                       "rev::ops::concat_channels: part 1 has extents [3, 5, 3], expected [2, 5, 3] except in dim 1",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::concat_channels({x, Tensor<float>({2, 5, 3, 1})}),
                       "rev::ops::concat_channels: part 1 has extents [2, 5, 3, 1], expected [2, 5, 3] except in dim 1",
                       shape_error);
}
