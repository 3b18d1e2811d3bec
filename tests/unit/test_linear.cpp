#include <string>
#include <vector>

#include "helpers.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/linear.hpp"

using namespace rev;

namespace {

index_t rows_of(const Shape& s) { return s.numel() / s[-1]; }

// y[r, o] = b[o] + sum_i x[r, i] w[o, i] over the rows r of x [..., in], in plain loops.
Tensor<double> naive_linear(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>* b) {
  const index_t rows = rows_of(x.shape()), in = w.size(1), out = w.size(0);
  Shape ys = x.shape();
  ys[-1] = out;
  Tensor<double> y(ys);
  for (index_t r = 0; r < rows; ++r)
    for (index_t o = 0; o < out; ++o) {
      double s = b ? b->data()[o] : 0.0;
      for (index_t i = 0; i < in; ++i) s += x.data()[r * in + i] * w(o, i);
      y.data()[r * out + o] = s;
    }
  return y;
}

// {dx, dw, db}
std::vector<Tensor<double>> naive_linear_backward(const Tensor<double>& x, const Tensor<double>& w,
                                                  const Tensor<double>& dy) {
  const index_t rows = rows_of(x.shape()), in = w.size(1), out = w.size(0);
  Tensor<double> dx(x.shape()), dw(w.shape()), db({out});
  for (index_t r = 0; r < rows; ++r)
    for (index_t o = 0; o < out; ++o) {
      const double g = dy.data()[r * out + o];
      db.data()[o] += g;
      for (index_t i = 0; i < in; ++i) {
        dx.data()[r * in + i] += g * w(o, i);
        dw(o, i) += g * x.data()[r * in + i];
      }
    }
  return {dx, dw, db};
}

struct linear_case {
  Shape x;
  index_t out;
};

}  // namespace

TEST_CASE("linear: forward and backward equal the definition") {
  // Ranks 1 to 4; enough rows for several parallel tasks; one input feature; one output.
  const std::vector<linear_case> cases = {{{7}, 3},        {{5, 4}, 6},  {{2, 3, 9}, 1}, {{2, 2, 3, 5}, 4},
                                          {{300, 33}, 17}, {{64, 1}, 5}, {{1, 1}, 1}};
  std::uint64_t seed = 10;
  for (const auto& c : cases) {
    INFO(c.x);
    const auto x = test::random(c.x, seed++), w = test::random({c.out, c.x[-1]}, seed++),
               b = test::random({c.out}, seed++);
    Shape ys = c.x;
    ys[-1] = c.out;
    const auto dy = test::random(ys, seed++);
    CHECK(test::max_rel_error(ops::linear(x, w, &b), naive_linear(x, w, &b)) < 1e-13);
    CHECK(test::max_rel_error(ops::linear(x, w, nullptr), naive_linear(x, w, nullptr)) < 1e-13);
    const auto ref = naive_linear_backward(x, w, dy);
    Tensor<double> dw = Tensor<double>::full(w.shape(), 2.0), db = Tensor<double>::full({c.out}, 2.0);
    CHECK(test::max_rel_error(ops::linear_backward(x, w, dy, &dw, &db), ref[0]) < 1e-13);
    for (double& v : dw) v -= 2.0;
    for (double& v : db) v -= 2.0;
    CHECK(test::max_rel_error(dw, ref[1]) < 1e-12);
    CHECK(test::max_rel_error(db, ref[2]) < 1e-12);
    Tensor<double> dw2(w.shape());
    CHECK(ops::linear_backward(x, w, dy, &dw2, nullptr, false).empty());
    CHECK(test::max_rel_error(dw2, ref[1]) < 1e-12);

    const auto xf = ops::cast<float>(x), wf = ops::cast<float>(w), bf = ops::cast<float>(b), dyf = ops::cast<float>(dy);
    CHECK(test::max_rel_error(ops::linear(xf, wf, &bf), naive_linear(x, w, &b)) < 1e-5);
    Tensor<float> dwf(w.shape()), dbf({c.out});
    CHECK(test::max_rel_error(ops::linear_backward(xf, wf, dyf, &dwf, &dbf), ref[0]) < 1e-5);
    CHECK(test::max_rel_error(dwf, ref[1]) < 1e-5);
    CHECK(test::max_rel_error(dbf, ref[2]) < 1e-5);
  }
}

TEST_CASE("linear: backward equals finite differences") {
  const auto x = test::random({2, 3, 5}, 1), w = test::random({4, 5}, 2), b = test::random({4}, 3);
  auto forward = [](const std::vector<Tensor<double>>& in) { return ops::linear(in[0], in[1], &in[2]); };
  auto backward = [](const std::vector<Tensor<double>>& in, const Tensor<double>& dy) {
    std::vector<Tensor<double>> g = {Tensor<double>(), Tensor<double>(in[1].shape()), Tensor<double>(in[2].shape())};
    g[0] = ops::linear_backward(in[0], in[1], dy, &g[1], &g[2]);
    return g;
  };
  auto r = testing::check_gradients(forward, backward, {x, w, b});
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("linear: forward and backward equal PyTorch's") {
  auto ref = test::torch_reference("linear");
  int count = 0;
  for (int i = 0; ref.contains(detail::concat("l", i, ".x")); ++i, ++count) {
    const std::string k = detail::concat("l", i, ".");
    INFO(k);
    const auto x = ref.tensor<double>(k + "x"), w = ref.tensor<double>(k + "w"), dy = ref.tensor<double>(k + "dout");
    const bool has_bias = ref.contains(k + "b");
    const Tensor<double> b = has_bias ? ref.tensor<double>(k + "b") : Tensor<double>();
    CHECK(test::max_rel_error(ops::linear(x, w, has_bias ? &b : nullptr), ref.tensor<double>(k + "y")) < 1e-12);
    Tensor<double> dw(w.shape()), db({w.size(0)});
    CHECK(test::max_rel_error(ops::linear_backward(x, w, dy, &dw, &db), ref.tensor<double>(k + "dx")) < 1e-12);
    CHECK(test::max_rel_error(dw, ref.tensor<double>(k + "dw")) < 1e-12);
    if (has_bias) CHECK(test::max_rel_error(db, ref.tensor<double>(k + "db")) < 1e-12);

    const auto xf = ops::cast<float>(x), wf = ops::cast<float>(w), dyf = ops::cast<float>(dy);
    const auto bf = has_bias ? ops::cast<float>(b) : Tensor<float>();
    CHECK(test::max_rel_error(ops::linear(xf, wf, has_bias ? &bf : nullptr), ref.tensor<double>(k + "y")) < 1e-5);
    Tensor<float> dwf(w.shape());
    CHECK(test::max_rel_error(ops::linear_backward(xf, wf, dyf, &dwf, nullptr), ref.tensor<double>(k + "dx")) < 1e-5);
    CHECK(test::max_rel_error(dwf, ref.tensor<double>(k + "dw")) < 1e-5);
  }
  CHECK(count == 5);
}

TEST_CASE("linear: bad shapes are reported") {
  Tensor<float> x({3, 4}), w({5, 4}), dy({3, 5});
  CHECK_THROWS_WITH_AS(ops::linear(Tensor<float>(), w, nullptr),
                       "rev::ops::linear: input has rank 0, expected rank >= 1 (last extent = in features)",
                       shape_error);
  CHECK_THROWS_WITH_AS(ops::linear(x, Tensor<float>({5, 4, 1}), nullptr),
                       "rev::ops::linear: weight has rank 3 (extents [5, 4, 1]), expected rank 2", shape_error);
  CHECK_THROWS_WITH_AS(ops::linear(Tensor<float>({3, 6}), w, nullptr),
                       "rev::ops::linear: input has 6 features (extents [3, 6]), expected 4 (weight [5, 4])",
                       shape_error);
  const Tensor<float> b4({4});
  CHECK_THROWS_WITH_AS(ops::linear(x, w, &b4), "rev::ops::linear: bias has extents [4], expected [5]", shape_error);
  Tensor<float> dw(w.shape()), db({5}), dw_bad({4, 5}), db_bad({1});
  CHECK_THROWS_WITH_AS(ops::linear_backward(x, w, Tensor<float>({3, 4}), &dw, &db),
                       "rev::ops::linear_backward: output gradient has extents [3, 4], expected [3, 5]", shape_error);
  CHECK_THROWS_WITH_AS(ops::linear_backward(x, w, dy, &dw_bad, &db),
                       "rev::ops::linear_backward: weight gradient has extents [4, 5], expected [5, 4]", shape_error);
  CHECK_THROWS_WITH_AS(ops::linear_backward(x, w, dy, &dw, &db_bad),
                       "rev::ops::linear_backward: bias gradient has extents [1], expected [5]", shape_error);
  CHECK_THROWS_WITH_AS(ops::linear_backward(Tensor<float>({3, 2}), w, dy, &dw, &db),
                       "rev::ops::linear_backward: input has 2 features (extents [3, 2]), expected 4 (weight [5, 4])",
                       shape_error);
}

TEST_CASE("linear: empty inputs") {
  // No rows: an empty output. No input features: the output is the bias.
  Tensor<float> w({5, 4}), b = Tensor<float>::full({5}, 1.5f);
  CHECK(ops::linear(Tensor<float>({0, 4}), w, &b).shape() == Shape{0, 5});
  const auto y = ops::linear(Tensor<float>({2, 0}), Tensor<float>({5, 0}), &b);
  CHECK(y.shape() == Shape{2, 5});
  for (float v : y) CHECK(v == 1.5f);
}

// ---------------------------------------------------------------------------------------------
// gemm and parallel_gemm (shared by linear and conv2d)

namespace {
// C = alpha op(A) op(B) + beta C in plain loops; A and B stored row-major with leading dimensions.
void naive_gemm(const ops::matrix_ref<const double>& a, const ops::matrix_ref<const double>& b, double* c, index_t ldc,
                double alpha, double beta) {
  auto at = [](const ops::matrix_ref<const double>& m, index_t i, index_t j) {
    return m.transposed ? m.data[j * m.ld + i] : m.data[i * m.ld + j];
  };
  for (index_t i = 0; i < a.op_rows(); ++i)
    for (index_t j = 0; j < b.op_cols(); ++j) {
      double s = 0;
      for (index_t k = 0; k < a.op_cols(); ++k) s += at(a, i, k) * at(b, k, j);
      c[i * ldc + j] = alpha * s + (beta == 0 ? 0.0 : beta * c[i * ldc + j]);
    }
}
}  // namespace

TEST_CASE("gemm and parallel_gemm: transposes, leading dimensions, beta, blocked and inner-cut products") {
  struct dims {
    index_t m, n, k;
  };
  // Small (serial), wide (column blocks), tall (row blocks), and long inner dimension (inner cut).
  for (const dims d : {dims{3, 4, 5}, dims{8, 1000, 300}, dims{700, 24, 200}, dims{32, 32, 5000}, dims{5, 7, 0}}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        INFO("m " << d.m << " n " << d.n << " k " << d.k << " ta " << ta << " tb " << tb);
        // Stored with two spare columns (ld = cols + 2).
        const index_t ar = ta ? d.k : d.m, ac = ta ? d.m : d.k, br = tb ? d.n : d.k, bc = tb ? d.k : d.n;
        const auto a = test::random({ar, ac + 2}, 1), b = test::random({br, bc + 2}, 2);
        const ops::matrix_ref<const double> A{a.data(), ar, ac, ac + 2, ta == 1}, B{b.data(), br, bc, bc + 2, tb == 1};
        for (double beta : {0.0, 1.0, 0.5}) {
          auto c = test::random({d.m, d.n + 3}, 3), ref = c.clone(), par = c.clone();
          naive_gemm(A, B, ref.data(), d.n + 3, beta == 0.5 ? 2.0 : 1.0, beta);
          ops::gemm(A, B, ops::mat(c.data(), d.m, d.n, d.n + 3), beta == 0.5 ? 2.0 : 1.0, beta);
          CHECK(test::max_abs_error(c, ref) < 1e-10);
          if (beta != 0.5) {  // parallel_gemm has alpha = 1
            auto par_ref = test::random({d.m, d.n + 3}, 3);
            naive_gemm(A, B, par_ref.data(), d.n + 3, 1.0, beta);
            ops::parallel_gemm(A, B, ops::mat(par.data(), d.m, d.n, d.n + 3), beta);
            CHECK(test::max_abs_error(par, par_ref) < 1e-10);
          }
        }
      }
  }
}

// ---------------------------------------------------------------------------------------------
// nn::Linear

TEST_CASE("nn::Linear: parameters and PyTorch's default initialisation") {
  nn::Linear<64, 10> fc;
  static_assert(decltype(fc)::in_features == 64 && decltype(fc)::out_features == 10);
  static_assert(Layer<nn::Linear<4, 4>>);
  std::vector<std::string> names;
  fc.for_each_parameter([&](const std::string& n, Param<float>&) { names.push_back(n); }, "head.fc");
  CHECK(names == std::vector<std::string>{"head.fc.weight", "head.fc.bias"});
  CHECK(fc.weight.shape() == Shape{10, 64});
  CHECK(fc.bias.shape() == Shape{10});
  CHECK(parameter_count(fc) == 650);
  for (float v : fc.weight.value) CHECK(std::abs(v) <= 0.125f);  // 1 / sqrt(64)
  for (float v : fc.bias.value) CHECK(std::abs(v) <= 0.125f);

  nn::Linear<3, 2, false> no_bias;
  names.clear();
  no_bias.for_each_parameter([&](const std::string& n, Param<float>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"weight"});
}

TEST_CASE("nn::Linear: forward, backward and finite differences") {
  Generator g(9);
  nn::Linear<5, 3, true, double> fc(g);
  const auto x = test::random({2, 4, 5}, 12);
  context ctx{phase::train};
  decltype(fc)::cache c;
  const auto y = fc.forward(x, ctx, c);
  CHECK(y.shape() == Shape{2, 4, 3});
  CHECK(test::max_abs_error(y, ops::linear(x, fc.weight.value, &fc.bias.value)) == 0);
  auto r = testing::check_gradients(fc, x);
  CHECK_MESSAGE(r.ok(), r.str());
  nn::Linear<5, 2, false, double> fc2(g);
  r = testing::check_gradients(fc2, test::random({3, 5}, 13));
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("nn::Linear: an input with the wrong feature count is reported") {
  nn::Linear<16, 4> fc;
  context ctx;
  CHECK_THROWS_WITH_AS(fc.forward(Tensor<float>({2, 8}), ctx),
                       "rev::nn::Linear<16,4>: input has extents [2, 8], expected [..., 16]", shape_error);
  CHECK_THROWS_WITH_AS(fc.forward(Tensor<float>(), ctx),
                       "rev::nn::Linear<16,4>: input has extents [], expected [..., 16]", shape_error);
}

TEST_CASE("nn::PointwiseLinear: nn::Linear over the channels at each pixel; finite differences") {
  Generator g(4);
  nn::PointwiseLinear<5, 3, true, double> pw(g);
  CHECK(pw.weight.shape() == Shape{3, 5});
  nn::Linear<5, 3, true, double> fc;
  fc.weight.value = pw.weight.value.clone();
  fc.bias.value = pw.bias.value.clone();
  const auto x = test::random({2, 5, 3, 4}, 14);
  context ctx{phase::train};
  // Reference: the channels-last permutation through nn::Linear, permuted back.
  Tensor<double> last({2, 3, 4, 5});
  for (index_t n = 0; n < 2; ++n)
    for (index_t c = 0; c < 5; ++c)
      for (index_t h = 0; h < 3; ++h)
        for (index_t w = 0; w < 4; ++w) last(n, h, w, c) = x(n, c, h, w);
  const auto ref = fc.forward(last, ctx);
  const auto y = pw.forward(x, ctx);
  REQUIRE(y.shape() == Shape{2, 3, 3, 4});
  double err = 0;
  for (index_t n = 0; n < 2; ++n)
    for (index_t o = 0; o < 3; ++o)
      for (index_t h = 0; h < 3; ++h)
        for (index_t w = 0; w < 4; ++w) err = std::max(err, std::abs(y(n, o, h, w) - ref(n, h, w, o)));
  CHECK(err < 1e-14);
  auto r = testing::check_gradients(pw, x);
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK_THROWS_WITH_AS(pw.forward(test::random({2, 4, 3, 4}, 1), ctx),
                       "rev::nn::PointwiseLinear<5,3>: input has extents [2, 4, 3, 4], expected [N, 5, H, W]",
                       shape_error);
}
