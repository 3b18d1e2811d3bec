// conv2d and batch norm on rev::cuda against the CPU ops: float on the device vs the CPU in double
// (from the same float inputs) within float32 rounding, double vs double within 1e-10; odd
// extents, stride, padding, dilation, groups, with and without bias; gradient accumulation, the
// convolution algorithm cache, and the CPU ops' error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

namespace {

using rev::index_t;
using rev::Shape;
template <class T>
using host = rev::Tensor<T>;
template <class T>
using device = rev::Tensor<T, rev::cuda>;

// Float32 results against a float64 reference, relative to the reference's largest magnitude.
template <class T>
constexpr double tolerance = std::is_same_v<T, float> ? 1e-4 : 1e-10;

template <class To, class From>
host<To> cast(const host<From>& x) {
  host<To> y = host<To>::uninitialized(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) y.data()[i] = static_cast<To>(x.data()[i]);
  return y;
}

// Uniform in [lo, hi), generated in T so that the reference sees exactly the device's inputs.
template <class T>
host<T> random(const Shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  return rev::testing::random_uniform<T>(s, seed, lo, hi);
}

// max |got - ref| / max(max |ref|, floor)
template <class T>
double rel_error(const device<T>& got, const host<double>& ref, double floor) {
  const host<T> g = rev::to_host(got);
  REQUIRE(g.shape() == ref.shape());
  double err = 0, mag = 0;
  for (index_t i = 0; i < ref.numel(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(g.data()[i]) - ref.data()[i]));
    mag = std::max(mag, std::abs(ref.data()[i]));
  }
  return err / std::max(mag, floor);
}

// `floor`: the magnitude of the terms of a result that cancels (its error scales with them).
template <class T>
void check_close(const char* what, const device<T>& got, const host<double>& ref, double floor = 1e-30) {
  const double e = rel_error(got, ref, floor);
  INFO(what, ": relative error ", e, " (tolerance ", tolerance<T>, ")");
  CHECK(e <= tolerance<T>);
}

// The op on the GPU throws E with the message of the same call on the CPU.
template <class E, class Cpu, class Gpu>
void same_error(Cpu&& cpu, Gpu&& gpu) {
  std::string expected;
  try {
    cpu();
  } catch (const E& e) {
    expected = e.what();
  }
  REQUIRE(!expected.empty());
  CHECK_THROWS_WITH_AS(gpu(), expected.c_str(), E);
}

struct conv_case {
  const char* name;
  index_t n, c_in, h, w, c_out, kh, kw;
  rev::ops::conv2d_params p;
  bool bias;
};

const std::vector<conv_case> conv_cases = {
    {"3x3, padding 1, odd extents", 2, 3, 7, 5, 5, 3, 3, {.pad_h = 1, .pad_w = 1}, true},
    {"stride 2 on odd input", 3, 4, 9, 7, 6, 3, 3, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, false},
    {"dilation 2", 2, 3, 11, 9, 4, 3, 3, {.pad_h = 2, .pad_w = 2, .dilation_h = 2, .dilation_w = 2}, true},
    {"depthwise", 2, 7, 7, 5, 7, 3, 3, {.pad_h = 1, .pad_w = 1, .groups = 7}, true},
    {"depthwise, stride 2, dilation 2",
     2,
     5,
     9,
     7,
     5,
     3,
     3,
     {.stride_h = 2, .stride_w = 2, .pad_h = 2, .pad_w = 2, .dilation_h = 2, .dilation_w = 2, .groups = 5},
     false},
    {"groups 2, 3x2 kernel, stride 2x1", 2, 6, 8, 7, 4, 3, 2, {.stride_h = 2, .pad_h = 1, .groups = 2}, false},
    {"groups 3, depth multiplier 2", 1, 3, 6, 5, 6, 3, 3, {.pad_h = 1, .pad_w = 1, .groups = 3}, true},
    {"pointwise", 3, 5, 5, 3, 3, 1, 1, {}, true},
    {"1x1 images", 4, 6, 1, 1, 3, 1, 1, {}, true},
    {"larger", 4, 16, 15, 13, 32, 3, 3, {.pad_h = 1, .pad_w = 1}, true},
};

}  // namespace

TEST_CASE_TEMPLATE("cuda conv2d: forward and backward match the CPU op", T, float, double) {
  std::uint64_t seed = 1;
  for (const conv_case& k : conv_cases) {
    CAPTURE(k.name);
    const rev::ops::conv2d_params& p = k.p;
    const host<T> x = random<T>({k.n, k.c_in, k.h, k.w}, seed++);
    const host<T> w = random<T>({k.c_out, k.c_in / p.groups, k.kh, k.kw}, seed++);
    const host<T> b = random<T>({k.c_out}, seed++);
    const host<double> xr = cast<double>(x), wr = cast<double>(w), br = cast<double>(b);

    const host<double> y_ref = rev::ops::conv2d(xr, wr, k.bias ? &br : nullptr, p);
    const device<T> xd = rev::to_device(x), wd = rev::to_device(w), bd = rev::to_device(b);
    check_close("y", rev::ops::conv2d(xd, wd, k.bias ? &bd : nullptr, p), y_ref);

    // The gradients start from nonzero values: dw and db are accumulated into.
    const host<T> dy = random<T>(y_ref.shape(), seed++);
    const host<T> dw0 = random<T>(wr.shape(), seed++), db0 = random<T>({k.c_out}, seed++);
    host<double> dw_ref = cast<double>(dw0), db_ref = cast<double>(db0);
    const host<double> dx_ref = rev::ops::conv2d_backward(xr, wr, cast<double>(dy), p, &dw_ref, &db_ref);
    device<T> dw = rev::to_device(dw0), db = rev::to_device(db0);
    const device<T> dx = rev::ops::conv2d_backward(xd, wd, rev::to_device(dy), p, &dw, &db);
    check_close("dx", dx, dx_ref);
    check_close("dw", dw, dw_ref);
    check_close("db", db, db_ref);
  }
}

TEST_CASE_TEMPLATE("cuda conv2d_backward: accumulates dw and db, skips dx on request", T, float, double) {
  const rev::ops::conv2d_params p{.stride_h = 2, .pad_w = 1, .groups = 2};
  const host<T> x = random<T>({2, 4, 7, 5}, 11), w = random<T>({6, 2, 3, 3}, 12);
  const host<double> xr = cast<double>(x), wr = cast<double>(w);
  const Shape ys = rev::ops::conv2d(xr, wr, nullptr, p).shape();
  const host<T> dy = random<T>(ys, 13);
  // One backward from zero gradients is the reference gradient g; two into a start value s give s + 2 g.
  host<double> g_w(wr.shape()), g_b({6});
  rev::ops::conv2d_backward(xr, wr, cast<double>(dy), p, &g_w, &g_b, false);
  const host<T> s_w = random<T>(wr.shape(), 14), s_b = random<T>({6}, 15);
  host<double> want_w = cast<double>(s_w), want_b = cast<double>(s_b);
  for (index_t i = 0; i < want_w.numel(); ++i) want_w.data()[i] += 2 * g_w.data()[i];
  for (index_t i = 0; i < want_b.numel(); ++i) want_b.data()[i] += 2 * g_b.data()[i];

  const device<T> xd = rev::to_device(x), wd = rev::to_device(w), dyd = rev::to_device(dy);
  device<T> dw = rev::to_device(s_w), db = rev::to_device(s_b);
  CHECK(rev::ops::conv2d_backward(xd, wd, dyd, p, &dw, &db, false).empty());
  CHECK(rev::ops::conv2d_backward(xd, wd, dyd, p, &dw, &db, false).empty());
  check_close("dw", dw, want_w);
  check_close("db", db, want_b);

  // Only dx, and only db.
  const host<double> dx_ref = rev::ops::conv2d_backward(xr, wr, cast<double>(dy), p, nullptr, nullptr);
  check_close("dx", rev::ops::conv2d_backward(xd, wd, dyd, p, nullptr, nullptr), dx_ref);
  device<T> db_only({6});
  CHECK(rev::ops::conv2d_backward(xd, wd, dyd, p, nullptr, &db_only, false).empty());
  check_close("db", db_only, g_b);
}

TEST_CASE("cuda conv2d: algorithms are searched once per shape and pass, the workspace is counted and freed") {
  // Extents no other test uses, so the first call here is the first of its shape.
  const rev::ops::conv2d_params p{.stride_h = 1, .stride_w = 2, .pad_h = 2, .pad_w = 1};
  const device<float> x = rev::to_device(random<float>({3, 5, 13, 11}, 21));
  const device<float> w = rev::to_device(random<float>({9, 5, 5, 3}, 22));
  const std::size_t before = rev::memory<rev::cuda>::current();
  const std::size_t s0 = rev::gpu::conv_algorithm_searches();
  {
    const device<float> y = rev::ops::conv2d(x, w, nullptr, p);
    CHECK(rev::gpu::conv_algorithm_searches() == s0 + 1);
    CHECK(rev::memory<rev::cuda>::current() == before + y.bytes());  // the workspace is gone again
    const device<float> y2 = rev::ops::conv2d(x, w, nullptr, p);
    CHECK(rev::gpu::conv_algorithm_searches() == s0 + 1);
    device<float> dw(w.shape());
    rev::ops::conv2d_backward(x, w, y, p, &dw, nullptr);  // backward data and backward filter
    CHECK(rev::gpu::conv_algorithm_searches() == s0 + 3);
    rev::ops::conv2d_backward(x, w, y2, p, &dw, nullptr);
    CHECK(rev::gpu::conv_algorithm_searches() == s0 + 3);
    // Another element type is another search.
    rev::ops::conv2d(rev::to_device(random<double>({3, 5, 13, 11}, 23)),
                     rev::to_device(random<double>({9, 5, 5, 3}, 24)), nullptr, p);
    CHECK(rev::gpu::conv_algorithm_searches() == s0 + 4);
    rev::gpu::synchronize();
  }
  CHECK(rev::memory<rev::cuda>::current() == before);
}

TEST_CASE("cuda conv2d: bad arguments raise the CPU op's errors") {
  const host<float> x({2, 3, 5, 5}), w({4, 3, 3, 3}), w_bad({4, 2, 3, 3}), b_bad({3}), w_big({4, 3, 7, 7});
  const device<float> xd = rev::to_device(x), wd = rev::to_device(w), w_badd = rev::to_device(w_bad),
                      b_badd = rev::to_device(b_bad), w_bigd = rev::to_device(w_big);
  const rev::ops::conv2d_params p{.pad_h = 1, .pad_w = 1};
  same_error<rev::shape_error>([&] { rev::ops::conv2d(x, w_bad, nullptr, p); },
                               [&] { rev::ops::conv2d(xd, w_badd, nullptr, p); });
  same_error<rev::shape_error>([&] { rev::ops::conv2d(x, w, &b_bad, p); },
                               [&] { rev::ops::conv2d(xd, wd, &b_badd, p); });
  const rev::ops::conv2d_params none{}, stride0{.stride_h = 0}, groups2{.groups = 2};
  same_error<rev::shape_error>([&] { rev::ops::conv2d(x, w_big, nullptr, none); },
                               [&] { rev::ops::conv2d(xd, w_bigd, nullptr, none); });
  same_error<rev::shape_error>(
      [&] {
        rev::ops::conv2d(x.reshape({6, 25}), w, nullptr, p);
      },
      [&] {
        rev::ops::conv2d(xd.reshape({6, 25}), wd, nullptr, p);
      });
  same_error<rev::value_error>([&] { rev::ops::conv2d(x, w, nullptr, stride0); },
                               [&] { rev::ops::conv2d(xd, wd, nullptr, stride0); });
  same_error<rev::shape_error>([&] { rev::ops::conv2d(x, w, nullptr, groups2); },
                               [&] { rev::ops::conv2d(xd, wd, nullptr, groups2); });
  // Backward: the output gradient and the gradients' extents.
  const host<float> dy({2, 4, 5, 5}), dy_bad({2, 4, 3, 3});
  const device<float> dyd = rev::to_device(dy), dy_badd = rev::to_device(dy_bad);
  host<float> dw_bad({4, 3, 3, 1}), db_bad({5});
  device<float> dw_badd = rev::to_device(dw_bad), db_badd = rev::to_device(db_bad);
  same_error<rev::shape_error>([&] { rev::ops::conv2d_backward(x, w, dy_bad, p, nullptr, nullptr); },
                               [&] { rev::ops::conv2d_backward(xd, wd, dy_badd, p, nullptr, nullptr); });
  same_error<rev::shape_error>([&] { rev::ops::conv2d_backward(x, w, dy, p, &dw_bad, nullptr); },
                               [&] { rev::ops::conv2d_backward(xd, wd, dyd, p, &dw_badd, nullptr); });
  same_error<rev::shape_error>([&] { rev::ops::conv2d_backward(x, w, dy, p, nullptr, &db_bad); },
                               [&] { rev::ops::conv2d_backward(xd, wd, dyd, p, nullptr, &db_badd); });
}

namespace {

const std::vector<Shape> bn_shapes = {
    {3, 5, 7, 5},    // odd extents
    {2, 3, 1, 1},    // two values per channel
    {1, 7, 3, 3},    // one sample
    {4, 3, 64, 64},  // 16384 values per channel: several partial sums each
    {8, 16, 33, 31},
};

template <class T>
rev::ops::batch_stats<T, rev::cuda> stats_to_device(const rev::ops::batch_stats<T>& s) {
  return {rev::to_device(s.mean), rev::to_device(s.invstd), rev::to_device(s.var)};
}

}  // namespace

TEST_CASE_TEMPLATE("cuda batch norm: train, apply and both backwards match the CPU op", T, float, double) {
  constexpr double eps = 1e-5;
  std::uint64_t seed = 100;
  for (const Shape& s : bn_shapes) {
    CAPTURE(s);
    const index_t C = s[1];
    // Values far from 0 exercise the shifted sums; the channel's spread is what is normalised.
    const host<T> x = random<T>(s, seed++, 2, 4), weight = random<T>({C}, seed++, 0.5, 1.5),
                  bias = random<T>({C}, seed++);
    const host<double> xr = cast<double>(x), wr = cast<double>(weight), br = cast<double>(bias);
    const device<T> xd = rev::to_device(x), wd = rev::to_device(weight), bd = rev::to_device(bias);

    // Train: the statistics and the output.
    rev::ops::batch_stats<double> ref;
    const host<double> y_ref = rev::ops::batch_norm_train(xr, wr, br, eps, ref);
    rev::ops::batch_stats<T, rev::cuda> st;
    const device<T> y = rev::ops::batch_norm_train(xd, wd, bd, eps, st);
    check_close("y", y, y_ref);
    check_close("mean", st.mean, ref.mean);
    check_close("invstd", st.invstd, ref.invstd);

    // Apply with the kept statistics reproduces the train output bit for bit; a second train too.
    const host<T> y_host = rev::to_host(y);
    const host<T> y_apply = rev::to_host(rev::ops::batch_norm_apply(xd, wd, bd, st));
    rev::ops::batch_stats<T, rev::cuda> st2;
    const host<T> y_again = rev::to_host(rev::ops::batch_norm_train(xd, wd, bd, eps, st2));
    CHECK(std::equal(y_host.begin(), y_host.end(), y_apply.begin()));
    CHECK(std::equal(y_host.begin(), y_host.end(), y_again.begin()));

    // The backwards, with the reference's statistics rounded to T on both sides.
    const rev::ops::batch_stats<T> st_t{cast<T>(ref.mean), cast<T>(ref.invstd), cast<T>(ref.var)};
    const rev::ops::batch_stats<double> st_r{cast<double>(st_t.mean), cast<double>(st_t.invstd),
                                             cast<double>(st_t.var)};
    const rev::ops::batch_stats<T, rev::cuda> st_d = stats_to_device(st_t);
    check_close("y (apply)", rev::ops::batch_norm_apply(xd, wd, bd, st_d),
                rev::ops::batch_norm_apply(xr, wr, br, st_r));
    const host<T> dy = random<T>(s, seed++), dw0 = random<T>({C}, seed++), db0 = random<T>({C}, seed++);
    const host<double> dyr = cast<double>(dy);
    const device<T> dyd = rev::to_device(dy);
    // The eval input gradient weight * invstd * dy is also the size of the terms the train one
    // subtracts (with 2 values per channel they cancel to almost 0): its magnitude is the floor.
    double scale = 0;
    {
      host<double> dw_ref = cast<double>(dw0), db_ref = cast<double>(db0);
      const host<double> dx_ref = rev::ops::batch_norm_backward_eval(xr, wr, st_r, dyr, &dw_ref, &db_ref);
      for (double v : dx_ref) scale = std::max(scale, std::abs(v));
      device<T> dw = rev::to_device(dw0), db = rev::to_device(db0);
      check_close("dx (eval)", rev::ops::batch_norm_backward_eval(xd, wd, st_d, dyd, &dw, &db), dx_ref);
      check_close("dweight (eval)", dw, dw_ref);
      check_close("dbias (eval)", db, db_ref);
      check_close("dx (eval, no parameter gradients)",
                  rev::ops::batch_norm_backward_eval(xd, wd, st_d, dyd, nullptr, nullptr), dx_ref);
    }
    {
      host<double> dw_ref = cast<double>(dw0), db_ref = cast<double>(db0);
      const host<double> dx_ref = rev::ops::batch_norm_backward_train(xr, wr, st_r, dyr, &dw_ref, &db_ref);
      device<T> dw = rev::to_device(dw0), db = rev::to_device(db0);
      check_close("dx (train)", rev::ops::batch_norm_backward_train(xd, wd, st_d, dyd, &dw, &db), dx_ref, scale);
      check_close("dweight (train)", dw, dw_ref);
      check_close("dbias (train)", db, db_ref);
      check_close("dx (train, no parameter gradients)",
                  rev::ops::batch_norm_backward_train(xd, wd, st_d, dyd, nullptr, nullptr), dx_ref, scale);
    }
    // Running statistics: (1 - momentum) running + momentum batch, unbiased variance.
    const index_t n = s[0] * s[2] * s[3];
    const host<T> rm0 = random<T>({C}, seed++), rv0 = random<T>({C}, seed++, 0.5, 2);
    host<double> rm_ref = cast<double>(rm0), rv_ref = cast<double>(rv0);
    rev::ops::batch_norm_update_running(rm_ref, rv_ref, st_r, n, 0.1);
    device<T> rm = rev::to_device(rm0), rv = rev::to_device(rv0);
    rev::ops::batch_norm_update_running(rm, rv, st_d, n, 0.1);
    check_close("running_mean", rm, rm_ref);
    check_close("running_var", rv, rv_ref);
  }
}

TEST_CASE("cuda batch norm: bad arguments raise the CPU op's errors") {
  const host<float> x({2, 3, 4, 4}), w({3}), b({3}), w_bad({4}), one({1, 3, 1, 1}), x3({2, 3, 4});
  const device<float> xd = rev::to_device(x), wd = rev::to_device(w), bd = rev::to_device(b),
                      w_badd = rev::to_device(w_bad), oned = rev::to_device(one), x3d = rev::to_device(x3);
  rev::ops::batch_stats<float> s{host<float>({3}), host<float>({3}), host<float>({3})},
      s_bad{host<float>({4}), host<float>({3}), host<float>({4})};
  rev::ops::batch_stats<float, rev::cuda> sd = stats_to_device(s), s_badd = stats_to_device(s_bad);
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_train(x, w_bad, b, 1e-5, s); },
                               [&] { rev::ops::batch_norm_train(xd, w_badd, bd, 1e-5, sd); });
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_train(x3, w, b, 1e-5, s); },
                               [&] { rev::ops::batch_norm_train(x3d, wd, bd, 1e-5, sd); });
  same_error<rev::value_error>([&] { rev::ops::batch_norm_train(one, w, b, 1e-5, s); },
                               [&] { rev::ops::batch_norm_train(oned, wd, bd, 1e-5, sd); });
  same_error<rev::value_error>([&] { rev::ops::batch_norm_train(x, w, b, -1.0, s); },
                               [&] { rev::ops::batch_norm_train(xd, wd, bd, -1.0, sd); });
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_apply(x, w, b, s_bad); },
                               [&] { rev::ops::batch_norm_apply(xd, wd, bd, s_badd); });
  const host<float> dy_bad({2, 3, 4, 5});
  const device<float> dy_badd = rev::to_device(dy_bad);
  host<float> g_bad({2});
  device<float> g_badd = rev::to_device(g_bad);
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_backward_train(x, w, s, dy_bad, nullptr, nullptr); },
                               [&] { rev::ops::batch_norm_backward_train(xd, wd, sd, dy_badd, nullptr, nullptr); });
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_backward_train(x, w, s, x, &g_bad, nullptr); },
                               [&] { rev::ops::batch_norm_backward_train(xd, wd, sd, xd, &g_badd, nullptr); });
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_backward_eval(x, w, s, x, nullptr, &g_bad); },
                               [&] { rev::ops::batch_norm_backward_eval(xd, wd, sd, xd, nullptr, &g_badd); });
  host<float> rm({3}), rv({3}), rv_bad({2});
  device<float> rmd = rev::to_device(rm), rvd = rev::to_device(rv), rv_badd = rev::to_device(rv_bad);
  same_error<rev::shape_error>([&] { rev::ops::batch_norm_update_running(rm, rv_bad, s, 32, 0.1); },
                               [&] { rev::ops::batch_norm_update_running(rmd, rv_badd, sd, 32, 0.1); });
  same_error<rev::value_error>([&] { rev::ops::batch_norm_update_running(rm, rv, s, 1, 0.1); },
                               [&] { rev::ops::batch_norm_update_running(rmd, rvd, sd, 1, 0.1); });
}
