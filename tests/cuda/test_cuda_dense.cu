// The dense and row-wise ops on rev::cuda against the CPU ops: linear, softmax, layer_norm and
// layer_norm_channels, multi-head attention and cross-entropy, forward and backward. Inputs are
// drawn in T and the CPU reference runs in double on the same values; float32 results must match
// within 1e-4 of the reference's largest magnitude, float64 ones within 1e-10. Odd extents (7,
// 13, heads of 5) leave partial warps and GEMM tiles. The validation errors must be the CPU's.
#include <doctest/doctest.h>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using rev::cuda;
using rev::index_t;
using rev::Shape;
using rev::Tensor;

template <class T>
constexpr double tolerance = std::is_same_v<T, float> ? 1e-4 : 1e-10;

template <class T>
Tensor<double> to_double(const Tensor<T>& x) {
  Tensor<double> y = Tensor<double>::uninitialized(x.shape());
  std::transform(x.begin(), x.end(), y.begin(), [](T v) { return static_cast<double>(v); });
  return y;
}

// Uniform values in [lo, hi) representable in T, as doubles (the CPU reference's inputs).
template <class T>
Tensor<double> input(const Shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  return to_double(rev::testing::random_uniform<T>(s, seed, lo, hi));
}

// A device tensor in T of host values (exact for the values input<T> draws).
template <class T>
Tensor<T, cuda> dev(const Tensor<double>& x) {
  Tensor<T> h = Tensor<T>::uninitialized(x.shape());
  std::transform(x.begin(), x.end(), h.begin(), [](double v) { return static_cast<T>(v); });
  return rev::to_device(h);
}

// max |got - want| / max |want|.
template <class T>
double rel_error(const Tensor<T, cuda>& got, const Tensor<double>& want) {
  const Tensor<T> g = rev::to_host(got);
  REQUIRE(g.shape() == want.shape());
  double err = 0, ref = 0;
  for (index_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(g.data()[i]) - want.data()[i]));
    ref = std::max(ref, std::abs(want.data()[i]));
  }
  return err / std::max(ref, 1e-30);
}

template <class T>
void check_close(const Tensor<T, cuda>& got, const Tensor<double>& want, const char* what) {
  INFO(what);
  CHECK(rel_error(got, want) <= tolerance<T>);
}

// The message of the rev::error that f throws ("" when it throws none), after checking its type.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw another exception type: " << e.what());
  }
  FAIL("threw nothing");
  return "";
}

// Both calls throw E with the same message, which names the op.
template <class E, class Cpu, class Gpu>
void same_error(Cpu&& cpu_call, Gpu&& gpu_call, const std::string& op) {
  const std::string want = error_of<E>(cpu_call);
  CHECK(want.find(op) != std::string::npos);
  CHECK(error_of<E>(gpu_call) == want);
}

}  // namespace

TEST_CASE_TEMPLATE("cuda linear: forward and backward match the CPU, gradients accumulate", T, float, double) {
  for (const Shape& xs : {Shape{7, 13}, Shape{2, 3, 13}, Shape{33, 13}}) {
    CAPTURE(xs);
    const index_t out = 5, in = 13;
    Shape ys = xs;
    ys[-1] = out;
    const Tensor<double> x = input<T>(xs, 1), w = input<T>({out, in}, 2), b = input<T>({out}, 3);
    const Tensor<double> dy = input<T>(ys, 4);
    const auto xd = dev<T>(x), wd = dev<T>(w), bd = dev<T>(b), dyd = dev<T>(dy);

    check_close(rev::ops::linear(xd, wd, &bd), rev::ops::linear(x, w, &b), "y with bias");
    check_close(rev::ops::linear(xd, wd, nullptr), rev::ops::linear(x, w, nullptr), "y without bias");

    // The parameter gradients are added to what the tensors hold.
    Tensor<double> dw = input<T>({out, in}, 5), db = input<T>({out}, 6);
    auto dwd = dev<T>(dw), dbd = dev<T>(db);
    const Tensor<double> dx = rev::ops::linear_backward(x, w, dy, &dw, &db);
    check_close(rev::ops::linear_backward(xd, wd, dyd, &dwd, &dbd), dx, "dx");
    check_close(dwd, dw, "dw accumulated");
    check_close(dbd, db, "db accumulated");

    const Tensor<T, cuda> none = rev::ops::linear_backward(xd, wd, dyd, &dwd, nullptr, false);
    CHECK(none.empty());
    rev::ops::linear_backward(x, w, dy, &dw, nullptr, false);
    check_close(dwd, dw, "dw accumulated twice, no db, no dx");
  }
}

TEST_CASE_TEMPLATE("cuda linear: bad extents give the CPU's errors", T, float, double) {
  const Tensor<double> x = input<T>({7, 12}, 1), w = input<T>({5, 13}, 2), x13 = input<T>({7, 13}, 3);
  const Tensor<double> b4 = input<T>({4}, 4), dy = input<T>({7, 4}, 5);
  const auto xd = dev<T>(x), wd = dev<T>(w), x13d = dev<T>(x13), b4d = dev<T>(b4), dyd = dev<T>(dy);
  same_error<rev::shape_error>([&] { rev::ops::linear(x, w, nullptr); }, [&] { rev::ops::linear(xd, wd, nullptr); },
                               "rev::ops::linear");
  same_error<rev::shape_error>([&] { rev::ops::linear(x13, w, &b4); }, [&] { rev::ops::linear(x13d, wd, &b4d); },
                               "rev::ops::linear");
  same_error<rev::shape_error>([&] { rev::ops::linear_backward(x13, w, dy, nullptr, nullptr); },
                               [&] { rev::ops::linear_backward(x13d, wd, dyd, nullptr, nullptr); },
                               "rev::ops::linear_backward");
}

TEST_CASE_TEMPLATE("cuda softmax: forward and backward match the CPU", T, float, double) {
  for (const Shape& s : {Shape{3, 7, 13}, Shape{5, 100}, Shape{4, 1}}) {
    CAPTURE(s);
    const Tensor<double> x = input<T>(s, 10, -20, 20), dy = input<T>(s, 11);
    const Tensor<double> y = rev::ops::softmax(x);
    const auto yd = rev::ops::softmax(dev<T>(x));
    check_close(yd, y, "y");
    check_close(rev::ops::softmax_backward(dev<T>(y), dev<T>(dy)), rev::ops::softmax_backward(y, dy), "dx");
  }
  const Tensor<double> y = input<T>({3, 7}, 12), dy = input<T>({3, 8}, 13);
  same_error<rev::shape_error>([&] { rev::ops::softmax_backward(y, dy); },
                               [&] { rev::ops::softmax_backward(dev<T>(y), dev<T>(dy)); },
                               "rev::ops::softmax_backward");
}

TEST_CASE_TEMPLATE("cuda layer_norm: forward and backward match the CPU, gradients accumulate", T, float, double) {
  const double eps = 1e-5;
  // Rows of 13 and of 70 (three lanes' strides), and 1000 rows (many chunks of the weight gradient).
  for (const Shape& s : {Shape{2, 7, 13}, Shape{9, 70}, Shape{1000, 13}}) {
    CAPTURE(s);
    const index_t D = s[-1];
    // Values offset from 0, so that the mean matters.
    const Tensor<double> x = input<T>(s, 20, 2, 4), w = input<T>({D}, 21), b = input<T>({D}, 22);
    const Tensor<double> dy = input<T>(s, 23);
    const auto xd = dev<T>(x), wd = dev<T>(w), bd = dev<T>(b), dyd = dev<T>(dy);
    check_close(rev::ops::layer_norm(xd, wd, bd, eps), rev::ops::layer_norm(x, w, b, eps), "y");

    Tensor<double> dw = input<T>({D}, 24), db = input<T>({D}, 25);
    auto dwd = dev<T>(dw), dbd = dev<T>(db);
    const Tensor<double> dx = rev::ops::layer_norm_backward(x, w, eps, dy, &dw, &db);
    check_close(rev::ops::layer_norm_backward(xd, wd, eps, dyd, &dwd, &dbd), dx, "dx");
    check_close(dwd, dw, "dweight accumulated");
    check_close(dbd, db, "dbias accumulated");

    rev::ops::layer_norm_backward(x, w, eps, dy, nullptr, &db);
    check_close(rev::ops::layer_norm_backward(xd, wd, eps, dyd, nullptr, &dbd), dx, "dx, dbias only");
    check_close(dbd, db, "dbias accumulated twice");
    check_close(dwd, dw, "dweight untouched");
    check_close(rev::ops::layer_norm_backward(xd, wd, eps, dyd, nullptr, nullptr), dx, "dx, no parameter gradients");
  }
}

TEST_CASE_TEMPLATE("cuda layer_norm: bad extents and eps give the CPU's errors", T, float, double) {
  const Tensor<double> x = input<T>({7, 13}, 1), w12 = input<T>({12}, 2), w = input<T>({13}, 3);
  const Tensor<double> dy = input<T>({7, 12}, 4);
  const auto xd = dev<T>(x), w12d = dev<T>(w12), wd = dev<T>(w), dyd = dev<T>(dy);
  same_error<rev::shape_error>([&] { rev::ops::layer_norm(x, w12, w, 1e-5); },
                               [&] { rev::ops::layer_norm(xd, w12d, wd, 1e-5); }, "rev::ops::layer_norm");
  same_error<rev::value_error>([&] { rev::ops::layer_norm(x, w, w, -1.0); },
                               [&] { rev::ops::layer_norm(xd, wd, wd, -1.0); }, "rev::ops::layer_norm");
  same_error<rev::shape_error>([&] { rev::ops::layer_norm_backward(x, w, 1e-5, dy, nullptr, nullptr); },
                               [&] { rev::ops::layer_norm_backward(xd, wd, 1e-5, dyd, nullptr, nullptr); },
                               "rev::ops::layer_norm_backward");
  Tensor<double> dw12 = input<T>({12}, 5);
  auto dw12d = dev<T>(dw12);
  const Tensor<double> dy13 = input<T>({7, 13}, 6);
  const auto dy13d = dev<T>(dy13);
  same_error<rev::shape_error>([&] { rev::ops::layer_norm_backward(x, w, 1e-5, dy13, &dw12, nullptr); },
                               [&] { rev::ops::layer_norm_backward(xd, wd, 1e-5, dy13d, &dw12d, nullptr); },
                               "rev::ops::layer_norm_backward");
}

TEST_CASE_TEMPLATE("cuda layer_norm_channels: forward and backward match the CPU, gradients accumulate", T, float,
                   double) {
  const double eps = 1e-6;
  for (const Shape& s : {Shape{2, 13, 3, 5}, Shape{3, 7, 9, 7}, Shape{1, 1, 2, 3}}) {
    CAPTURE(s);
    const index_t C = s[1];
    const Tensor<double> x = input<T>(s, 30, -3, 1), w = input<T>({C}, 31), b = input<T>({C}, 32);
    const Tensor<double> dy = input<T>(s, 33);
    const auto xd = dev<T>(x), wd = dev<T>(w), bd = dev<T>(b), dyd = dev<T>(dy);
    check_close(rev::ops::layer_norm_channels(xd, wd, bd, eps), rev::ops::layer_norm_channels(x, w, b, eps), "y");

    Tensor<double> dw = input<T>({C}, 34), db = input<T>({C}, 35);
    auto dwd = dev<T>(dw), dbd = dev<T>(db);
    const Tensor<double> dx = rev::ops::layer_norm_channels_backward(x, w, eps, dy, &dw, &db);
    check_close(rev::ops::layer_norm_channels_backward(xd, wd, eps, dyd, &dwd, &dbd), dx, "dx");
    check_close(dwd, dw, "dweight accumulated");
    check_close(dbd, db, "dbias accumulated");

    rev::ops::layer_norm_channels_backward(x, w, eps, dy, &dw, nullptr);
    check_close(rev::ops::layer_norm_channels_backward(xd, wd, eps, dyd, &dwd, nullptr), dx, "dx, dweight only");
    check_close(dwd, dw, "dweight accumulated twice");
    check_close(dbd, db, "dbias untouched");
  }
  const Tensor<double> x3 = input<T>({2, 13, 15}, 36), w = input<T>({13}, 37);
  const auto x3d = dev<T>(x3), wd = dev<T>(w);
  same_error<rev::shape_error>([&] { rev::ops::layer_norm_channels(x3, w, w, 1e-6); },
                               [&] { rev::ops::layer_norm_channels(x3d, wd, wd, 1e-6); },
                               "rev::ops::layer_norm_channels");
  const Tensor<double> x = input<T>({2, 12, 3, 5}, 38);
  const auto xd = dev<T>(x);
  same_error<rev::shape_error>([&] { rev::ops::layer_norm_channels_backward(x, w, 1e-6, x, nullptr, nullptr); },
                               [&] { rev::ops::layer_norm_channels_backward(xd, wd, 1e-6, xd, nullptr, nullptr); },
                               "rev::ops::layer_norm_channels_backward");
}

TEST_CASE_TEMPLATE("cuda multi_head_attention: forward, cache and backward match the CPU", T, float, double) {
  struct extents {
    index_t B, Nq, Nk;
    int heads;
    index_t d, dv;
    double scale;
  };
  // More samples than heads (batched over samples), fewer (batched over heads), and an explicit scale.
  for (const extents& e : {extents{2, 7, 9, 3, 5, 4, 0.0}, extents{1, 9, 7, 3, 5, 3, 0.0},
                           extents{5, 7, 7, 2, 3, 5, 0.3}, extents{3, 1, 13, 1, 13, 7, 0.0}}) {
    CAPTURE(e.B);
    CAPTURE(e.heads);
    const index_t D = e.heads * e.d, Dv = e.heads * e.dv;
    const Tensor<double> q = input<T>({e.B, e.Nq, D}, 40, -2, 2), k = input<T>({e.B, e.Nk, D}, 41, -2, 2);
    const Tensor<double> v = input<T>({e.B, e.Nk, Dv}, 42), dout = input<T>({e.B, e.Nq, Dv}, 43);
    const auto qd = dev<T>(q), kd = dev<T>(k), vd = dev<T>(v), doutd = dev<T>(dout);

    rev::ops::attention_cache<double> cache;
    const Tensor<double> out = rev::ops::multi_head_attention(q, k, v, e.heads, &cache, e.scale);
    rev::ops::attention_cache<T, cuda> cached;
    check_close(rev::ops::multi_head_attention(qd, kd, vd, e.heads, &cached, e.scale), out, "out");
    check_close(cached.probs, cache.probs, "cache.probs");
    check_close(rev::ops::multi_head_attention(qd, kd, vd, e.heads, nullptr, e.scale), out, "out without a cache");

    const auto g = rev::ops::multi_head_attention_backward(q, k, v, e.heads, cache, dout, e.scale);
    const auto gd = rev::ops::multi_head_attention_backward(qd, kd, vd, e.heads, cached, doutd, e.scale);
    check_close(gd.dq, g.dq, "dq");
    check_close(gd.dk, g.dk, "dk");
    check_close(gd.dv, g.dv, "dv");
  }
}

TEST_CASE_TEMPLATE("cuda multi_head_attention: bad extents give the CPU's errors", T, float, double) {
  const Tensor<double> q = input<T>({2, 7, 15}, 1), k = input<T>({2, 9, 15}, 2), v = input<T>({2, 9, 12}, 3);
  const Tensor<double> k14 = input<T>({2, 9, 14}, 4), dout = input<T>({2, 7, 12}, 5);
  const auto qd = dev<T>(q), kd = dev<T>(k), vd = dev<T>(v), k14d = dev<T>(k14), doutd = dev<T>(dout);
  same_error<rev::shape_error>([&] { rev::ops::multi_head_attention(q, k, v, 4); },
                               [&] { rev::ops::multi_head_attention(qd, kd, vd, 4); },
                               "rev::ops::multi_head_attention");
  same_error<rev::shape_error>([&] { rev::ops::multi_head_attention(q, k14, v, 3); },
                               [&] { rev::ops::multi_head_attention(qd, k14d, vd, 3); },
                               "rev::ops::multi_head_attention");
  same_error<rev::value_error>([&] { rev::ops::multi_head_attention(q, k, v, 0); },
                               [&] { rev::ops::multi_head_attention(qd, kd, vd, 0); },
                               "rev::ops::multi_head_attention");
  // A cache of other extents (from a call with other heads).
  rev::ops::attention_cache<double> cache;
  rev::ops::multi_head_attention(q, k, v, 1, &cache);
  rev::ops::attention_cache<T, cuda> cached;
  rev::ops::multi_head_attention(qd, kd, vd, 1, &cached);
  same_error<rev::shape_error>([&] { rev::ops::multi_head_attention_backward(q, k, v, 3, cache, dout); },
                               [&] { rev::ops::multi_head_attention_backward(qd, kd, vd, 3, cached, doutd); },
                               "rev::ops::multi_head_attention_backward");
}

TEST_CASE_TEMPLATE("cuda cross_entropy: loss and gradient match the CPU, with label smoothing", T, float, double) {
  for (const index_t K : {index_t{13}, index_t{100}}) {
    CAPTURE(K);
    const index_t N = 7;
    const Tensor<double> z = input<T>({N, K}, 50, -4, 4);
    std::vector<int> targets(static_cast<std::size_t>(N));
    for (std::size_t n = 0; n < targets.size(); ++n) targets[n] = static_cast<int>((5 * n + 3) % K);
    const auto zd = dev<T>(z);
    for (const double s : {0.0, 0.1, 1.0}) {
      CAPTURE(s);
      const double want = rev::ops::cross_entropy(z, targets, s);
      CHECK(std::abs(rev::ops::cross_entropy(zd, targets, s) - want) <= tolerance<T> * std::max(1.0, std::abs(want)));
      check_close(rev::ops::cross_entropy_backward(zd, targets, s, 2.5),
                  rev::ops::cross_entropy_backward(z, targets, s, 2.5), "dz, dloss 2.5");
      check_close(rev::ops::cross_entropy_backward(zd, targets, s), rev::ops::cross_entropy_backward(z, targets, s),
                  "dz");
    }
  }
}

TEST_CASE_TEMPLATE("cuda cross_entropy: bad targets, extents and logits give the CPU's errors", T, float, double) {
  const Tensor<double> z = input<T>({3, 5}, 60);
  const auto zd = dev<T>(z);
  const std::vector<int> out_of_range{0, 5, 1}, negative{0, 1, -1}, too_few{0, 1};
  for (const std::vector<int>* t : {&out_of_range, &negative}) {
    same_error<rev::value_error>([&] { rev::ops::cross_entropy(z, *t); }, [&] { rev::ops::cross_entropy(zd, *t); },
                                 "rev::ops::cross_entropy");
    same_error<rev::value_error>([&] { rev::ops::cross_entropy_backward(z, *t); },
                                 [&] { rev::ops::cross_entropy_backward(zd, *t); }, "rev::ops::cross_entropy_backward");
  }
  same_error<rev::shape_error>([&] { rev::ops::cross_entropy(z, too_few); },
                               [&] { rev::ops::cross_entropy(zd, too_few); }, "rev::ops::cross_entropy");
  const std::vector<int> ok{0, 4, 2};
  same_error<rev::value_error>([&] { rev::ops::cross_entropy(z, ok, 1.5); },
                               [&] { rev::ops::cross_entropy(zd, ok, 1.5); }, "rev::ops::cross_entropy");
  const Tensor<double> z3 = input<T>({3, 5, 1}, 61);
  same_error<rev::shape_error>([&] { rev::ops::cross_entropy(z3, ok); },
                               [&] { rev::ops::cross_entropy(dev<T>(z3), ok); }, "rev::ops::cross_entropy");
  // A non-finite logit makes that sample's loss non-finite.
  Tensor<double> bad = z.clone();
  bad(1, 2) = std::numeric_limits<double>::infinity();
  same_error<rev::value_error>([&] { rev::ops::cross_entropy(bad, ok); },
                               [&] { rev::ops::cross_entropy(dev<T>(bad), ok); }, "rev::ops::cross_entropy");
}
