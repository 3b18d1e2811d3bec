// rev::testing::check_gradients: compares a hand-written backward pass with central finite
// differences in float64. Part of the public API: point it at your own layers and ops.
//
//   auto r = rev::testing::check_gradients(layer, x);      // a Layer<double>
//   CHECK(r.ok());  std::cout << r;                           // per-tensor errors
//
// The loss is L = <f(x), w> for a fixed random w; every element of the input and of every
// parameter is perturbed by +-eps. Batch statistics, running statistics and random masks are
// kept fixed across the evaluations (buffers are restored, the generator is replayed).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/rng.hpp"

namespace rev::testing {

struct gradient_check_options {
  double eps = 1e-6;   // finite-difference step
  double rtol = 1e-6;  // allowed error relative to the tensor's largest |numeric gradient|
  double atol = 1e-9;  // allowed absolute error
  std::uint64_t seed = 7;
  phase mode = phase::train;  // phase of the layer's forward (layers only)
};

/// The comparison of one tensor's analytic and numeric gradients.
struct gradient_error {
  std::string name;
  double max_abs_error = 0;  // max |analytic - numeric|
  double max_abs_numeric = 0;
  double tolerance = 0;
  bool ok() const { return max_abs_error <= tolerance; }
};

struct gradient_report {
  std::vector<gradient_error> tensors;
  bool ok() const {
    return std::all_of(tensors.begin(), tensors.end(), [](const gradient_error& e) { return e.ok(); });
  }
  double worst_relative() const {
    double w = 0;
    for (auto& e : tensors) w = std::max(w, e.max_abs_error / std::max(e.max_abs_numeric, 1e-300));
    return w;
  }
  friend std::ostream& operator<<(std::ostream& os, const gradient_report& r) {
    for (auto& e : r.tensors)
      os << (e.ok() ? "  ok   " : "  FAIL ") << e.name << ": max |analytic - numeric| = " << e.max_abs_error
         << " (tolerance " << e.tolerance << ", max |numeric| = " << e.max_abs_numeric << ")\n";
    return os;
  }
  std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
};

/// A tensor of uniform values in [lo, hi), reproducible from `seed`.
template <Scalar T = double>
Tensor<T> random_uniform(const Shape& shape, std::uint64_t seed, double lo = -1, double hi = 1) {
  Tensor<T> t = Tensor<T>::uninitialized(shape);
  const rng_state s{seed, 0};
  for (index_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<T>(lo + (hi - lo) * philox::uniform(s, static_cast<std::uint64_t>(i)));
  return t;
}

namespace detail {

inline double inner(const Tensor<double>& a, const Tensor<double>& b) {
  check<shape_error>(a.shape() == b.shape(), "rev::testing::check_gradients: output extents changed from ", b.shape(),
                     " to ", a.shape());
  double s = 0;
  for (index_t i = 0; i < a.numel(); ++i) s += a.data()[i] * b.data()[i];
  return s;
}

inline gradient_error compare(const std::string& name, const Tensor<double>& analytic, const Tensor<double>& numeric,
                              const gradient_check_options& o) {
  gradient_error e{name};
  check<shape_error>(analytic.shape() == numeric.shape(), "rev::testing::check_gradients: gradient of '", name,
                     "' has extents ", analytic.shape(), ", expected ", numeric.shape());
  for (index_t i = 0; i < numeric.numel(); ++i) {
    e.max_abs_error = std::max(e.max_abs_error, std::abs(analytic.data()[i] - numeric.data()[i]));
    e.max_abs_numeric = std::max(e.max_abs_numeric, std::abs(numeric.data()[i]));
  }
  e.tolerance = o.atol + o.rtol * e.max_abs_numeric;
  if (!std::isfinite(e.max_abs_error)) e.max_abs_error = INFINITY;
  return e;
}

// d<f, w>/dt for each element t of `target`, by central differences; `loss` re-evaluates f.
inline Tensor<double> numeric_gradient(Tensor<double>& target, const std::function<double()>& loss, double eps) {
  Tensor<double> g(target.shape());
  for (index_t i = 0; i < target.numel(); ++i) {
    const double saved = target.data()[i];
    target.data()[i] = saved + eps;
    const double up = loss();
    target.data()[i] = saved - eps;
    const double down = loss();
    target.data()[i] = saved;
    g.data()[i] = (up - down) / (2 * eps);
  }
  return g;
}

}  // namespace detail

/// Checks a function of several tensors. `forward(inputs)` returns the output;
/// `backward(inputs, dy)` returns one gradient per input (an empty Tensor skips that input).
template <class Forward, class Backward>
requires std::invocable < Forward&, const std::vector<Tensor<double>>
& > gradient_report check_gradients(Forward&& forward, Backward&& backward, std::vector<Tensor<double>> inputs,
                                    const gradient_check_options& o = {}) {
  const Tensor<double> y0 = forward(std::as_const(inputs));
  const Tensor<double> w = random_uniform(y0.shape(), o.seed);
  const std::vector<Tensor<double>> analytic = backward(std::as_const(inputs), w);
  check<shape_error>(analytic.size() == inputs.size(), "rev::testing::check_gradients: backward returned ",
                     analytic.size(), " gradients for ", inputs.size(), " inputs");
  gradient_report report;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (analytic[k].empty()) continue;
    auto loss = [&] {
      const Tensor<double> y = forward(std::as_const(inputs));
      return detail::inner(y, w);
    };
    const Tensor<double> numeric = detail::numeric_gradient(inputs[k], loss, o.eps);
    report.tensors.push_back(detail::compare("input " + std::to_string(k), analytic[k], numeric, o));
  }
  return report;
}

/// Checks a layer: the gradient of its input and of every parameter.
template <class L>
requires Layer<L> && std::same_as<typename L::value_type, double> gradient_report
check_gradients(L& layer, const Tensor<double>& input, const gradient_check_options& o = {}) {
  Tensor<double> x = input.clone();
  // Buffers (running statistics, ...) are restored before each evaluation, and the generator
  // replays the same draw, so every evaluation sees the same layer state.
  std::vector<std::pair<Tensor<double>*, Tensor<double>>> buffers;
  layer.for_each_buffer([&](const std::string&, Tensor<double>& b) { buffers.emplace_back(&b, b.clone()); });
  Generator gen(o.seed);
  auto evaluate = [&](typename L::cache* c) {
    for (auto& [b, saved] : buffers) std::copy(saved.begin(), saved.end(), b->begin());
    gen.set_state({o.seed, 0});
    context ctx{o.mode, &gen};
    return c ? layer.forward(x, ctx, *c) : layer.forward(x, ctx);
  };

  typename L::cache cache;
  const Tensor<double> y0 = evaluate(&cache);
  const Tensor<double> w = random_uniform(y0.shape(), o.seed + 1);
  zero_grad(layer);
  const Tensor<double> dx = layer.backward(cache, w);

  auto loss = [&] { return detail::inner(evaluate(nullptr), w); };
  gradient_report report;
  report.tensors.push_back(detail::compare("input", dx, detail::numeric_gradient(x, loss, o.eps), o));
  layer.for_each_parameter([&](const std::string& name, Param<double>& p) {
    report.tensors.push_back(detail::compare(name, p.grad, detail::numeric_gradient(p.value, loss, o.eps), o));
  });
  for (auto& [b, saved] : buffers) std::copy(saved.begin(), saved.end(), b->begin());
  return report;
}

}  // namespace rev::testing
