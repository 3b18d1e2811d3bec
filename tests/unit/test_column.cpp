#include <map>

#include "coupling_helpers.hpp"
#include "rev/column.hpp"
#include "rev/core/transfer.hpp"
#include "rev/nn/resample.hpp"

using namespace rev;

namespace column_test {

constexpr int widths[] = {4, 6, 8};
constexpr int M = 3;

// A RevCol-like level: Fuse_l(low, high) = act(BN(down(low) + up(high))).
template <typename T>
struct fuse_family {
  template <int L>
  struct Fuse : layer_types<T, cpu> {
    static constexpr int low_channels = L == 0 ? widths[0] : widths[L - 1];
    static constexpr int high_channels = L + 1 < M ? widths[L + 1] : any_channels;
    static constexpr int out_channels = widths[L];
    using tensor = Tensor<T>;
    using Down = nn::Conv2d<low_channels, out_channels, nn::conv_opts{.kernel = 3, .stride = L == 0 ? 1 : 2}, T>;
    using Up = nn::Sequential<nn::Conv2d<(L + 1 < M ? widths[L + 1] : 1), out_channels, nn::conv_opts{.kernel = 1}, T>,
                              nn::UpsampleNearest<2, T>>;
    using Post = nn::Sequential<nn::BatchNorm2d<out_channels, nn::bn_opts{}, T>, nn::HardSwish<T>>;
    struct cache {
      typename Down::cache down;
      typename Up::cache up;
      typename Post::cache post;
      bool high = false;
    };

    tensor forward(const tensor& low, const tensor* high, context& ctx) {
      tensor s = down.forward(low, ctx);
      if (high) s = ops::add(s, up.forward(*high, ctx));
      return post.forward(s, ctx);
    }
    tensor forward(const tensor& low, const tensor* high, context& ctx, cache& c) {
      tensor s = down.forward(low, ctx, c.down);
      if (high) s = ops::add(s, up.forward(*high, ctx, c.up));
      c.high = high != nullptr;
      return post.forward(s, ctx, c.post);
    }
    std::pair<tensor, tensor> backward(cache& c, const tensor& dy) {
      tensor ds = post.backward(c.post, dy);
      tensor dhigh = c.high ? up.backward(c.up, ds) : tensor{};
      return {down.backward(c.down, ds), dhigh};
    }
    template <class V>
    void for_each_parameter(V&& v, const std::string& prefix = "") {
      down.for_each_parameter(v, join_name(prefix, "down"));
      if (L + 1 < M) up.for_each_parameter(v, join_name(prefix, "up"));
      post.for_each_parameter(v, join_name(prefix, "post"));
    }
    template <class V>
    void for_each_buffer(V&& v, const std::string& prefix = "") {
      post.for_each_buffer(v, join_name(prefix, "post"));
    }

    Down down;
    Up up;
    Post post;
  };
};

template <typename T>
using Col = Column<M, fuse_family<T>::template Fuse>;

template <typename T>
Tensors<T, M + 1> column_state(index_t batch, index_t size, std::uint64_t seed) {
  Tensors<T, M + 1> s;
  s[0] = test::random<T>({batch, widths[0], size, size}, seed);
  for (int l = 0; l < M; ++l) s[l + 1] = test::random<T>({batch, widths[l], size >> l, size >> l}, seed + 1 + l);
  return s;
}

}  // namespace column_test

using namespace column_test;

TEST_CASE("Column: b_l = Fuse_l(b_{l-1}, a_{l+1}) + gamma_l * a_l, eq. (3) of RevCol") {
  Col<double> col;
  col.gamma(1).value.fill(0.25);
  auto a = column_state<double>(2, 8, 1);
  context ctx{phase::eval};
  auto b = col.forward(a, ctx);
  CHECK(test::max_abs_error(b[0], a[0]) == 0);  // the stem map rides along
  auto b0 = ops::add(col.level<0>().forward(a[0], &a[2], ctx), ops::map(a[1], [](double v) { return 0.5 * v; }));
  auto b1 = ops::add(col.level<1>().forward(b0, &a[3], ctx), ops::map(a[2], [](double v) { return 0.25 * v; }));
  auto b2 = ops::add(col.level<2>().forward(b1, nullptr, ctx), ops::map(a[3], [](double v) { return 0.5 * v; }));
  CHECK(test::max_abs_error(b[1], b0) < 1e-14);
  CHECK(test::max_abs_error(b[2], b1) < 1e-14);
  CHECK(test::max_abs_error(b[3], b2) < 1e-14);
}

TEST_CASE("Column: invertible in float32 and float64") {
  Col<double> d;
  auto rd = testing::check_invertible(d, column_state<double>(2, 8, 2));
  CHECK_MESSAGE(rd.ok(1e-12), rd.str());
  Col<float> f;
  auto rf = testing::check_invertible(f, column_state<float>(2, 8, 3));
  CHECK_MESSAGE(rf.ok(1e-5), rf.str());
}

TEST_CASE("Column: gamma is clamped to |gamma| >= 1e-3 keeping its sign") {
  Col<double> col;
  auto& g = col.gamma(2).value;
  CHECK(g.shape() == Shape{1, 8, 1, 1});  // RevCol's extents
  g(0, 0, 0, 0) = 4e-4;
  g(0, 1, 0, 0) = -2e-4;
  g(0, 2, 0, 0) = 0;
  g(0, 3, 0, 0) = -0.7;
  context train{phase::train};
  col.forward(column_state<double>(2, 8, 4), train);
  CHECK(g(0, 0, 0, 0) == 1e-3);
  CHECK(g(0, 1, 0, 0) == -1e-3);
  CHECK(g(0, 2, 0, 0) == 1e-3);  // RevCol keeps an exact zero (and then divides by it); rev does not
  CHECK(g(0, 3, 0, 0) == -0.7);
  auto r = testing::check_invertible(col, column_state<double>(2, 8, 5));
  CHECK_MESSAGE(r.ok(1e-9), r.str());
}

TEST_CASE("Column: Stored and Reversible gradients agree, also across a Chain of columns") {
  Col<float> col;
  auto r = testing::check_reversible_gradients(col, column_state<float>(2, 8, 6));
  CHECK_MESSAGE(r.ok(1e-5), r.str());
  Chain<Repeat<3, Col<float>>> net;
  auto rn = testing::check_reversible_gradients(net, column_state<float>(2, 8, 7));
  CHECK_MESSAGE(rn.ok(1e-4), rn.str());
}

TEST_CASE("Column: backward equals finite differences (float64, gamma included)") {
  Col<double> col;
  std::vector<Tensor<double>> inputs;
  auto state = column_state<double>(2, 4, 8);
  inputs.assign(state.begin(), state.end());
  auto pack = [](const std::vector<Tensor<double>>& in) {
    Tensors<double, M + 1> s;
    for (int i = 0; i <= M; ++i) s[i] = in[i];
    return s;
  };
  auto flatten = [](const Tensors<double, M + 1>& s) {
    index_t total = 0;
    for (auto& t : s) total += t.numel();
    Tensor<double> out({total});
    index_t o = 0;
    for (auto& t : s)
      for (double v : t) out.data()[o++] = v;
    return out;
  };
  Generator gen(1);
  auto fwd = [&](const std::vector<Tensor<double>>& in) {
    context ctx{phase::train, &gen};
    return flatten(col.forward(pack(in), ctx));
  };
  auto bwd = [&](const std::vector<Tensor<double>>& in, const Tensor<double>& dflat) {
    context ctx{phase::train, &gen};
    typename Col<double>::cache c;
    auto b = col.forward(pack(in), ctx, c);
    index_t o = 0;
    for (auto& t : b) {
      t = Tensor<double>(t.shape());
      for (double& v : t) v = dflat.data()[o++];
    }
    zero_grad(col);
    auto da = col.backward(c, b);
    return std::vector<Tensor<double>>(da.begin(), da.end());
  };
  auto r = testing::check_gradients(fwd, bwd, inputs, {.rtol = 1e-5});
  CHECK_MESSAGE(r.ok(), r.str());

  // gamma's gradient against a central difference of <b, w> in one channel.
  context eval{phase::eval};
  const Tensor<double> dflat = test::random({flatten(col.forward(pack(inputs), eval)).numel()}, 10);
  auto loss = [&] {
    context ctx{phase::eval};
    auto y = flatten(col.forward(pack(inputs), ctx));
    return ops::dot(y, dflat);
  };
  zero_grad(col);
  {
    context ctx{phase::eval};
    typename Col<double>::cache c;
    auto b = col.forward(pack(inputs), ctx, c);
    index_t o = 0;
    for (auto& t : b) {
      t = Tensor<double>(t.shape());
      for (double& v : t) v = dflat.data()[o++];
    }
    col.backward(c, b);
  }
  auto& g = col.gamma(1);
  const double saved = g.value(0, 2, 0, 0), h = 1e-6;
  g.value(0, 2, 0, 0) = saved + h;
  const double up = loss();
  g.value(0, 2, 0, 0) = saved - h;
  const double down = loss();
  g.value(0, 2, 0, 0) = saved;
  CHECK(g.grad(0, 2, 0, 0) == doctest::Approx((up - down) / (2 * h)).epsilon(1e-6));
}

TEST_CASE("Column, first kind: the stem map alone, previous levels zero; exact inverse, no gamma gradient") {
  using First = Column<M, fuse_family<double>::template Fuse, column_kind::first>;
  First first;
  Col<double> next;
  copy_state(first, next);
  auto a = column_state<double>(2, 8, 20);
  for (int l = 1; l <= M; ++l) a[l] = Tensor<double>(a[l].shape());  // zero levels
  context eval{phase::eval};
  const auto b = first.forward(a[0], eval);
  const auto b_next = next.forward(a, eval);
  for (int l = 0; l <= M; ++l) CHECK(test::max_abs_error(b[l], b_next[l]) == 0);
  CHECK(test::max_abs_error(first.inverse(b, eval), a[0]) == 0);
  static_assert(std::same_as<input_t<First>, Tensor<double>>);
  auto r = testing::check_reversible_gradients(first, a[0]);
  CHECK_MESSAGE(r.ok(1e-12), r.str());
  // The stored backward equals a next column's on zero levels (that one is checked against
  // finite differences above): the stem's gradient and every parameter's, gammas' zero.
  zero_grad(first);
  zero_grad(next);
  Generator gen(2);
  context train{phase::train, &gen};
  typename First::cache cf;
  typename Col<double>::cache cn;
  auto db = first.forward(a[0], train, cf);
  next.forward(a, train, cn);
  for (int l = 0; l <= M; ++l) db[l] = test::random(db[l].shape(), 30 + l);
  CHECK(test::max_abs_error(first.backward(cf, db), next.backward(cn, db)[0]) < 1e-13);
  std::map<std::string, Tensor<double>> grads;
  next.for_each_parameter([&](const std::string& k, Param<double>& p) { grads[k] = p.grad; });
  first.for_each_parameter([&](const std::string& k, Param<double>& p) {
    INFO(k);
    CHECK(test::max_abs_error(p.grad, grads[k]) < 1e-13);
  });
  for (int l = 0; l < M; ++l) CHECK(ops::dot(first.gamma(l).grad, first.gamma(l).grad) == 0);
  // A first column followed by next ones, in a reversible Chain.
  Chain<First, Repeat<2, Col<double>>> net;
  auto rn = testing::check_reversible_gradients(net, a[0]);
  CHECK_MESSAGE(rn.ok(1e-10), rn.str());
}

namespace column_test {
template <int L>
struct CountedFuse : test::CountedTotal<fuse_family<float>::Fuse<L>> {};
}  // namespace column_test

TEST_CASE("Column: each level is evaluated once in forward and once in a reversible backward") {
  Chain<Repeat<2, Column<M, column_test::CountedFuse>>> net;
  decltype(net)::cache tape{mode::reversible};
  context ctx{phase::train};
  test::total_evaluations = 0;
  auto y = net.forward(column_state<float>(2, 8, 12), ctx, tape);
  CHECK(test::total_evaluations == 2 * M);
  auto dy = y;
  for (auto& t : dy) t = Tensor<float>(t.shape());
  net.backward(tape, dy);
  CHECK(test::total_evaluations == 2 * 2 * M);
}

TEST_CASE("Column: shape errors name the level") {
  Col<float> col;
  context ctx{phase::eval};
  auto a = column_state<float>(1, 8, 11);
  a[2] = Tensor<float>({1, 5, 4, 4});
  CHECK_THROWS_AS(col.forward(a, ctx), shape_error);
  a = column_state<float>(1, 8, 11);
  a[3] = Tensor<float>({1, 8, 3, 3});
  CHECK_THROWS_AS(col.forward(a, ctx), shape_error);
}
