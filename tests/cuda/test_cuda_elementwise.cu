// The CUDA backend's element-wise and data-movement ops against the CPU ops: arithmetic, sum and
// dot, activations, up-sampling, space-to-depth, pooling, channel split/concat and dropout,
// forward and backward, on odd extents. Inputs are values that float represents exactly, so the
// float32 results differ from the CPU's float64 ones by float rounding only; the float64 results
// agree to ~1e-12 (exactly for pure data movement), dropout's masks and values exactly, and bad
// arguments raise the CPU's error type with the CPU's message.
#include <doctest/doctest.h>

#include <rev/rev.hpp>
// The CUDA backend after the CPU ops it forwards from.
#include <rev/cuda.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "rev/testing/check_gradients.hpp"

namespace {

using rev::index_t;
using rev::Shape;
using rev::Tensor;
template <class T>
using DTensor = Tensor<T, rev::cuda>;

// Uniform values in [lo, hi), rounded to float (exact in both element types).
Tensor<double> random_exact(const Shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  return rev::ops::cast<double>(rev::ops::cast<float>(rev::testing::random_uniform<double>(s, seed, lo, hi)));
}

template <class T>
DTensor<T> device(const Tensor<double>& x) {
  return rev::to_device(rev::ops::cast<T>(x));
}

// max |got - want| / max |want| (0 when both are 0).
template <class T>
double rel_error(const DTensor<T>& got, const Tensor<double>& want) {
  const Tensor<T> host = rev::to_host(got);
  REQUIRE(host.shape() == want.shape());
  double err = 0, ref = 0;
  for (index_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(host.data()[i]) - want.data()[i]));
    ref = std::max(ref, std::abs(want.data()[i]));
  }
  return err == 0 ? 0 : err / ref;
}

// op(x) on the GPU in float and double against op(x) on the CPU in double. op is generic: the
// same rev::ops call runs on either backend.
template <class Op>
void check_unary(Op op, const Tensor<double>& x, double float_tol, double double_tol) {
  const Tensor<double> want = op(x);
  CHECK(rel_error(op(device<float>(x)), want) <= float_tol);
  CHECK(rel_error(op(device<double>(x)), want) <= double_tol);
}

template <class Op>
void check_binary(Op op, const Tensor<double>& a, const Tensor<double>& b, double float_tol, double double_tol) {
  const Tensor<double> want = op(a, b);
  CHECK(rel_error(op(device<float>(a), device<float>(b)), want) <= float_tol);
  CHECK(rel_error(op(device<double>(a), device<double>(b)), want) <= double_tol);
}

// The CUDA call throws what the CPU call throws: the same type E and message.
template <class E, class CpuCall, class CudaCall>
void check_same_error(CpuCall cpu_call, CudaCall cuda_call) {
  std::string message;
  try {
    cpu_call();
  } catch (const E& e) {
    message = e.what();
  }
  REQUIRE_FALSE(message.empty());
  CHECK_THROWS_WITH_AS(cuda_call(), message.c_str(), E);
}

bool bit_identical(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}
bool bit_identical(const Tensor<double>& a, const Tensor<double>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

constexpr double f32 = 1e-5;  // float rounding of up to a few dozen operations, relative to the largest value

const Shape odd{3, 5, 7, 9};

}  // namespace

TEST_CASE("cuda elementwise: add, sub, mul, add_ and scale_ match the CPU") {
  const Tensor<double> a = random_exact(odd, 1), b = random_exact(odd, 2);
  check_binary([](const auto& x, const auto& y) { return rev::ops::add(x, y); }, a, b, f32, 0);
  check_binary([](const auto& x, const auto& y) { return rev::ops::sub(x, y); }, a, b, f32, 0);
  check_binary([](const auto& x, const auto& y) { return rev::ops::mul(x, y); }, a, b, f32, 0);
  check_binary(
      [](const auto& x, const auto& y) {
        auto z = x.clone();
        rev::ops::add_(z, y);
        return z;
      },
      a, b, f32, 0);
  check_unary(
      [](const auto& x) {
        auto z = x.clone();
        rev::ops::scale_(z, static_cast<typename std::remove_cvref_t<decltype(x)>::value_type>(-0.375));
        return z;
      },
      a, 0, 0);
}

TEST_CASE("cuda elementwise: accumulate adopts, adds in place or copies like the CPU") {
  const Tensor<double> a = random_exact(odd, 3), b = random_exact(odd, 4);
  const DTensor<double> t = device<double>(b);
  DTensor<double> acc;
  rev::ops::accumulate(acc, t);
  CHECK(acc.shares_buffer_with(t));  // an empty accumulator adopts t's buffer
  DTensor<double> own = device<double>(a);
  const double* before = own.data();
  rev::ops::accumulate(own, t);
  CHECK(own.data() == before);  // unique: updated in place
  CHECK(rel_error(own, rev::ops::add(a, b)) == 0);
  DTensor<double> shared = device<double>(a);
  const DTensor<double> other = shared;
  rev::ops::accumulate(shared, t);
  CHECK_FALSE(shared.shares_buffer_with(other));  // shared: a new buffer, the other handle keeps a
  CHECK(rel_error(shared, rev::ops::add(a, b)) == 0);
  CHECK(rel_error(other, a) == 0);
}

TEST_CASE("cuda elementwise: sum and dot reduce in double") {
  for (const Shape& s : {Shape{1}, odd, Shape{1000003}}) {
    INFO("extents ", s);
    const Tensor<double> a = random_exact(s, 5), b = random_exact(s, 6);
    double abs_sum = 0, abs_dot = 0;
    for (index_t i = 0; i < a.numel(); ++i) {
      abs_sum += std::abs(a.data()[i]);
      abs_dot += std::abs(a.data()[i] * b.data()[i]);
    }
    // The float inputs equal the double ones and products of floats are exact in double: only the
    // order of summation differs.
    CHECK(std::abs(rev::ops::sum(device<float>(a)) - rev::ops::sum(a)) <= 1e-12 * abs_sum);
    CHECK(std::abs(rev::ops::sum(device<double>(a)) - rev::ops::sum(a)) <= 1e-12 * abs_sum);
    CHECK(std::abs(rev::ops::dot(device<float>(a), device<float>(b)) - rev::ops::dot(a, b)) <= 1e-12 * abs_dot);
    CHECK(std::abs(rev::ops::dot(device<double>(a), device<double>(b)) - rev::ops::dot(a, b)) <= 1e-12 * abs_dot);
  }
  CHECK(rev::ops::sum(DTensor<float>(Shape{0})) == 0.0);
}

TEST_CASE_TEMPLATE("cuda elementwise: activation and activation_backward match the CPU", A, rev::ops::act::relu,
                   rev::ops::act::hardswish, rev::ops::act::hardsigmoid, rev::ops::act::gelu, rev::ops::act::sigmoid,
                   rev::ops::act::silu) {
  Tensor<double> x = random_exact(odd, 7, -6, 6);
  // The kinks, where the derivative conventions matter.
  const double kinks[] = {0.0, -3.0, 3.0, -0.0};
  for (std::size_t k = 0; k < 4; ++k) x.data()[k] = kinks[k];
  const Tensor<double> dy = random_exact(odd, 8);
  check_unary([](const auto& v) { return rev::ops::activation<A>(v); }, x, f32, 1e-14);
  check_binary([](const auto& v, const auto& g) { return rev::ops::activation_backward<A>(v, g); }, x, dy, f32, 1e-14);
}

TEST_CASE("cuda resample: nearest and bilinear up-sampling and their backwards match the CPU") {
  const Tensor<double> x = random_exact(odd, 9);
  for (int f : {1, 2, 3, 4, 8}) {
    INFO("factor ", f);
    const Tensor<double> dy = random_exact({3, 5, 7 * f, 9 * f}, 10);
    check_unary([f](const auto& v) { return rev::ops::upsample_nearest(v, f); }, x, 0, 0);
    check_unary([f](const auto& g) { return rev::ops::upsample_nearest_backward(g, f); }, dy, f32, 1e-14);
    check_unary([f](const auto& v) { return rev::ops::upsample_bilinear(v, f); }, x, f32, 1e-14);
    check_unary([f](const auto& g) { return rev::ops::upsample_bilinear_backward(g, f); }, dy, f32, 1e-13);
  }
  // Maps of one row or column: every output reads the border.
  for (const Shape& s : {Shape{2, 3, 1, 5}, Shape{2, 3, 4, 1}, Shape{1, 1, 1, 1}}) {
    INFO("extents ", s);
    const Tensor<double> v = random_exact(s, 11);
    const Tensor<double> g = random_exact({s[0], s[1], s[2] * 3, s[3] * 3}, 12);
    check_unary([](const auto& t) { return rev::ops::upsample_bilinear(t, 3); }, v, f32, 1e-14);
    check_unary([](const auto& t) { return rev::ops::upsample_bilinear_backward(t, 3); }, g, f32, 1e-13);
  }
}

TEST_CASE("cuda resample: the backwards are the adjoints of the forwards on the GPU") {
  const Tensor<double> x = random_exact(odd, 13);
  const Tensor<double> g = random_exact({3, 5, 14, 18}, 14);
  const DTensor<double> dx = device<double>(x), dg = device<double>(g);
  const double bilinear = rev::ops::dot(rev::ops::upsample_bilinear(dx, 2), dg);
  CHECK(bilinear == doctest::Approx(rev::ops::dot(dx, rev::ops::upsample_bilinear_backward(dg, 2))).epsilon(1e-12));
  const double nearest = rev::ops::dot(rev::ops::upsample_nearest(dx, 2), dg);
  CHECK(nearest == doctest::Approx(rev::ops::dot(dx, rev::ops::upsample_nearest_backward(dg, 2))).epsilon(1e-12));
}

TEST_CASE("cuda space_to_depth: both channel orders, both directions, are the CPU's permutations") {
  using rev::ops::s2d_order;
  for (s2d_order order : {s2d_order::revbifpn, s2d_order::pixel_unshuffle}) {
    for (int b : {1, 2, 3, 4}) {
      INFO("order ", static_cast<int>(order), ", block ", b);
      const Tensor<double> x = random_exact({3, 5, 7 * b, 9 * b}, 15);
      const Tensor<double> y = random_exact({3, 5 * b * b, 7, 9}, 16);
      check_unary([=](const auto& v) { return rev::ops::space_to_depth(v, b, order); }, x, 0, 0);
      check_unary([=](const auto& v) { return rev::ops::depth_to_space(v, b, order); }, y, 0, 0);
      const DTensor<double> dx = device<double>(x);
      CHECK(rel_error(rev::ops::depth_to_space(rev::ops::space_to_depth(dx, b, order), b, order), x) == 0);
    }
  }
}

TEST_CASE("cuda pool: global and k x k average pooling and their backwards match the CPU") {
  const Tensor<double> x = random_exact(odd, 17);
  check_unary([](const auto& v) { return rev::ops::global_avg_pool(v); }, x, f32, 1e-14);
  const Tensor<double> gy = random_exact({3, 5, 1, 1}, 18);
  check_unary([](const auto& g) { return rev::ops::global_avg_pool_backward(odd, g); }, gy, f32, 0);
  // A large map: many threads per block add up one plane.
  const Tensor<double> big = random_exact({2, 3, 101, 103}, 19);
  check_unary([](const auto& v) { return rev::ops::global_avg_pool(v); }, big, f32, 1e-13);
  for (int k : {1, 2, 3, 7}) {
    INFO("kernel ", k);
    check_unary([k](const auto& v) { return rev::ops::avg_pool2d(v, k); }, x, f32, 1e-14);
    const Tensor<double> g = random_exact({3, 5, 7 / k, 9 / k}, 20);
    check_unary([k](const auto& t) { return rev::ops::avg_pool2d_backward(odd, t, k); }, g, f32, 0);
  }
}

TEST_CASE("cuda channels: split_channels and concat_channels move the CPU's elements") {
  for (const Shape& s : {odd, Shape{1, 5, 7, 9}, Shape{4, 5}, Shape{2, 5, 11}}) {
    INFO("extents ", s);
    const Tensor<double> x = random_exact(s, 21);
    const std::vector<index_t> sizes{2, 0, 3};
    const std::vector<Tensor<double>> want = rev::ops::split_channels(x, sizes);
    const DTensor<float> dx = device<float>(x);
    const std::vector<DTensor<float>> parts = rev::ops::split_channels(dx, sizes);
    REQUIRE(parts.size() == want.size());
    for (std::size_t k = 0; k < parts.size(); ++k) CHECK(rel_error(parts[k], want[k]) == 0);
    CHECK(rel_error(rev::ops::concat_channels(parts), x) == 0);
    // Braced lists of sizes, through rev::ops and to the backend's own overload.
    const auto listed = rev::ops::split_channels(device<double>(x), {4, 1});
    CHECK(rel_error(listed[0], rev::ops::split_channels(x, {4, 1})[0]) == 0);
    CHECK(rel_error(rev::kernels<rev::cuda>::split_channels(device<double>(x), {4, 1})[1],
                    rev::ops::split_channels(x, {4, 1})[1]) == 0);
    CHECK(rel_error(rev::ops::concat_channels({listed[0], listed[1]}), x) == 0);
  }
}

TEST_CASE("cuda dropout: masks and values are the CPU's for the same rng_state") {
  for (std::uint64_t offset : {0, 1, 3, 6}) {
    const rev::rng_state s{0x5eed1234abcdull, offset};
    INFO("offset ", offset);
    for (const Shape& shape : {odd, Shape{1}, Shape{5, 101, 13}}) {
      INFO("extents ", shape);
      const Tensor<double> x = random_exact(shape, 22);
      const Tensor<float> xf = rev::ops::cast<float>(x);
      for (double p : {0.0, 0.1, 0.5, 0.95}) {
        INFO("p ", p);
        CHECK(bit_identical(rev::to_host(rev::ops::dropout(device<float>(x), p, s)), rev::ops::dropout(xf, p, s)));
        CHECK(bit_identical(rev::to_host(rev::ops::dropout_backward(device<double>(x), p, s)),
                            rev::ops::dropout_backward(x, p, s)));
        CHECK(bit_identical(rev::to_host(rev::ops::drop_path(device<float>(x), p, s)), rev::ops::drop_path(xf, p, s)));
        CHECK(bit_identical(rev::to_host(rev::ops::drop_path_backward(device<double>(x), p, s)),
                            rev::ops::drop_path_backward(x, p, s)));
      }
    }
  }
}

TEST_CASE("cuda elementwise and data movement: bad arguments raise the CPU's errors") {
  using rev::shape_error;
  using rev::value_error;
  const Tensor<double> x = random_exact(odd, 23), y = random_exact({3, 5, 7, 8}, 24), v = random_exact({6}, 25);
  const DTensor<double> dx = device<double>(x), dy = device<double>(y), dv = device<double>(v);
  check_same_error<shape_error>([&] { (void)rev::ops::add(x, y); }, [&] { (void)rev::ops::add(dx, dy); });
  check_same_error<shape_error>([&] { (void)rev::ops::sub(x, y); }, [&] { (void)rev::ops::sub(dx, dy); });
  check_same_error<shape_error>([&] { (void)rev::ops::mul(x, y); }, [&] { (void)rev::ops::mul(dx, dy); });
  check_same_error<shape_error>(
      [&] {
        Tensor<double> a = x.clone();
        rev::ops::add_(a, y);
      },
      [&] {
        DTensor<double> a = dx.clone();
        rev::ops::add_(a, dy);
      });
  check_same_error<shape_error>([&] { (void)rev::ops::dot(x, y); }, [&] { (void)rev::ops::dot(dx, dy); });
  using relu = rev::ops::act::relu;
  check_same_error<shape_error>([&] { (void)rev::ops::activation_backward<relu>(x, y); },
                                [&] { (void)rev::ops::activation_backward<relu>(dx, dy); });
  // Up-sampling: factor, rank, gradient extents not divisible by the factor.
  check_same_error<value_error>([&] { (void)rev::ops::upsample_bilinear(x, 0); },
                                [&] { (void)rev::ops::upsample_bilinear(dx, 0); });
  check_same_error<shape_error>([&] { (void)rev::ops::upsample_nearest(v, 2); },
                                [&] { (void)rev::ops::upsample_nearest(dv, 2); });
  check_same_error<shape_error>([&] { (void)rev::ops::upsample_bilinear_backward(x, 2); },
                                [&] { (void)rev::ops::upsample_bilinear_backward(dx, 2); });
  check_same_error<shape_error>([&] { (void)rev::ops::upsample_nearest_backward(y, 3); },
                                [&] { (void)rev::ops::upsample_nearest_backward(dy, 3); });
  // Space-to-depth: block, rank, divisibility.
  using rev::ops::s2d_order;
  check_same_error<value_error>([&] { (void)rev::ops::space_to_depth(x, 0, s2d_order::revbifpn); },
                                [&] { (void)rev::ops::space_to_depth(dx, 0, s2d_order::revbifpn); });
  check_same_error<shape_error>([&] { (void)rev::ops::space_to_depth(v, 2, s2d_order::revbifpn); },
                                [&] { (void)rev::ops::space_to_depth(dv, 2, s2d_order::revbifpn); });
  check_same_error<shape_error>([&] { (void)rev::ops::space_to_depth(x, 2, s2d_order::pixel_unshuffle); },
                                [&] { (void)rev::ops::space_to_depth(dx, 2, s2d_order::pixel_unshuffle); });
  check_same_error<shape_error>([&] { (void)rev::ops::depth_to_space(x, 2, s2d_order::revbifpn); },
                                [&] { (void)rev::ops::depth_to_space(dx, 2, s2d_order::revbifpn); });
  check_same_error<value_error>([&] { (void)rev::ops::depth_to_space(x, -1, s2d_order::revbifpn); },
                                [&] { (void)rev::ops::depth_to_space(dx, -1, s2d_order::revbifpn); });
  // Pooling: rank, empty maps, kernel, window larger than the map, gradient extents.
  check_same_error<shape_error>([&] { (void)rev::ops::global_avg_pool(v); },
                                [&] { (void)rev::ops::global_avg_pool(dv); });
  const Tensor<double> empty_map(Shape{2, 3, 0, 4});
  const DTensor<double> d_empty_map(Shape{2, 3, 0, 4});
  check_same_error<shape_error>([&] { (void)rev::ops::global_avg_pool(empty_map); },
                                [&] { (void)rev::ops::global_avg_pool(d_empty_map); });
  check_same_error<shape_error>([&] { (void)rev::ops::global_avg_pool_backward(odd, x); },
                                [&] { (void)rev::ops::global_avg_pool_backward(odd, dx); });
  check_same_error<value_error>([&] { (void)rev::ops::avg_pool2d(x, 0); }, [&] { (void)rev::ops::avg_pool2d(dx, 0); });
  check_same_error<shape_error>([&] { (void)rev::ops::avg_pool2d(x, 8); }, [&] { (void)rev::ops::avg_pool2d(dx, 8); });
  check_same_error<shape_error>([&] { (void)rev::ops::avg_pool2d_backward(odd, x, 2); },
                                [&] { (void)rev::ops::avg_pool2d_backward(odd, dx, 2); });
  check_same_error<value_error>([&] { (void)rev::ops::avg_pool2d_backward(odd, x, 0); },
                                [&] { (void)rev::ops::avg_pool2d_backward(odd, dx, 0); });
  // Channels: rank, negative sizes, sizes not summing to C, no parts, mismatched parts.
  const std::vector<index_t> bad_sum{2, 2}, negative{6, -1};
  check_same_error<shape_error>([&] { (void)rev::ops::split_channels(v, bad_sum); },
                                [&] { (void)rev::ops::split_channels(dv, bad_sum); });
  check_same_error<shape_error>([&] { (void)rev::ops::split_channels(x, negative); },
                                [&] { (void)rev::ops::split_channels(dx, negative); });
  check_same_error<shape_error>([&] { (void)rev::ops::split_channels(x, bad_sum); },
                                [&] { (void)rev::ops::split_channels(dx, bad_sum); });
  check_same_error<shape_error>([&] { (void)rev::ops::concat_channels(std::vector<Tensor<double>>{}); },
                                [&] { (void)rev::ops::concat_channels(std::vector<DTensor<double>>{}); });
  check_same_error<shape_error>([&] { (void)rev::ops::concat_channels(std::vector<Tensor<double>>{v}); },
                                [&] { (void)rev::ops::concat_channels(std::vector<DTensor<double>>{dv}); });
  check_same_error<shape_error>(
      [&] {
        (void)rev::ops::concat_channels(std::vector<Tensor<double>>{x, y});
      },
      [&] {
        (void)rev::ops::concat_channels(std::vector<DTensor<double>>{dx, dy});
      });
  // Dropout: p outside [0, 1), drop_path of a rank-0 tensor.
  const rev::rng_state s{1, 0};
  check_same_error<value_error>([&] { (void)rev::ops::dropout(x, 1.0, s); },
                                [&] { (void)rev::ops::dropout(dx, 1.0, s); });
  check_same_error<value_error>([&] { (void)rev::ops::dropout_backward(x, -0.1, s); },
                                [&] { (void)rev::ops::dropout_backward(dx, -0.1, s); });
  check_same_error<value_error>([&] { (void)rev::ops::drop_path(x, 1.5, s); },
                                [&] { (void)rev::ops::drop_path(dx, 1.5, s); });
  const Tensor<double> scalar(Shape{});
  const DTensor<double> d_scalar(Shape{});
  check_same_error<shape_error>([&] { (void)rev::ops::drop_path_backward(scalar, 0.5, s); },
                                [&] { (void)rev::ops::drop_path_backward(d_scalar, 0.5, s); });
}
