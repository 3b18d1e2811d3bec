// Public test utilities for reversible blocks:
//   rev::testing::check_invertible(block, x)            inverse(forward(x)) ~ x and forward(inverse(y)) ~ y
//   rev::testing::check_reversible_gradients(block, x)  Stored-mode vs Reversible-mode gradients
//   rev::testing::compare_states(a, b)                  max |a - b| and max |a - b| / max |b|
// Both work on any coupling (and on Chain/Repeat of couplings), for one tensor or several.
#pragma once

#include <algorithm>
#include <cmath>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/graph/chain.hpp"
#include "rev/testing/check_gradients.hpp"

namespace rev::testing {

/// Calls f(tensor) for the tensor, or each tensor, of a block's state.
template <class State, class F>
void for_each_tensor(State& s, F&& f) {
  if constexpr (requires { s.shape(); }) f(s);
  else
    for (auto& t : s) f(t);
}

/// How far a state is from a reference: max_abs = max |a - b| and max_rel = max |a - b| / max |b|
/// over all elements of all tensors. Not finite where a state holds a NaN or an infinity, so that
/// a check `max_rel <= tol` fails on it.
struct difference {
  double max_abs = 0;
  double max_rel = 0;
};

/// The difference of state `a` (a tensor or an array of tensors, e.g. a reconstructed input)
/// from the reference state `b` of the same type and extents (shape_error otherwise):
///   rev::testing::compare_states(net.inverse(y, ctx), x).max_rel <= 1e-5
template <class State>
difference compare_states(const State& a, const State& b) {
  double err = 0, ref = 0;
  auto visit = [&](const auto& x, const auto& y) {
    check<shape_error>(x.shape() == y.shape(), "rev::testing::compare_states: states differ in extents: ", x.shape(),
                       " vs ", y.shape());
    for (index_t i = 0; i < x.numel(); ++i) {
      const double d = std::abs(static_cast<double>(x.data()[i]) - static_cast<double>(y.data()[i]));
      if (std::isnan(d) || d > err) err = std::isnan(err) ? err : d;  // a NaN sticks
      ref = std::max(ref, std::abs(static_cast<double>(y.data()[i])));
    }
  };
  if constexpr (requires { a.shape(); }) visit(a, b);
  else
    for (std::size_t k = 0; k < a.size(); ++k) visit(a[k], b[k]);
  return {err, err / std::max(ref, 1e-300)};
}

struct invertibility_report {
  difference forward_then_inverse;  // inverse(forward(x)) vs x
  difference inverse_then_forward;  // forward(inverse(y)) vs y
  bool ok(double rel_tol) const {
    return forward_then_inverse.max_rel <= rel_tol && inverse_then_forward.max_rel <= rel_tol;
  }
  friend std::ostream& operator<<(std::ostream& os, const invertibility_report& r) {
    return os << "inverse(forward(x)) - x: max abs " << r.forward_then_inverse.max_abs << ", rel "
              << r.forward_then_inverse.max_rel << "; forward(inverse(y)) - y: max abs "
              << r.inverse_then_forward.max_abs << ", rel " << r.inverse_then_forward.max_rel;
  }
  std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
};

/// Checks that `block` inverts exactly in the eval phase, both ways round: y = forward(x) is
/// mapped back to x, and forward(inverse(y')) returns y' for y' = forward(x) + a perturbation.
template <class C>
requires(checked_coupling<C>() && Coupling<C>) invertibility_report
    check_invertible(C& block, const input_t<C>& x, std::uint64_t seed = 3) {
  static_assert(std::same_as<typename C::backend, cpu>,
                "rev::testing::check_invertible: CPU-only for now (it compares host tensors); the block must run on "
                "rev::cpu");
  context ctx{phase::eval, &default_generator()};
  invertibility_report r;
  output_t<C> y = block.forward(x, ctx);
  r.forward_then_inverse = compare_states(block.inverse(y, ctx), x);
  for_each_tensor(y, [&](auto& t) {
    using T = typename std::remove_cvref_t<decltype(t)>::value_type;
    auto noise = random_uniform<T>(t.shape(), seed++, -0.1, 0.1);
    auto moved = t.clone();
    for (index_t i = 0; i < moved.numel(); ++i) moved.data()[i] += noise.data()[i];
    t = moved;
  });
  r.inverse_then_forward = compare_states(block.forward(block.inverse(y, ctx), ctx), y);
  return r;
}

struct reversible_gradient_report {
  std::vector<std::pair<std::string, difference>> tensors;  // input and every parameter
  double worst_relative() const {
    double w = 0;
    for (auto& t : tensors) w = std::max(w, t.second.max_rel);
    return w;
  }
  bool ok(double rel_tol) const { return worst_relative() <= rel_tol; }
  friend std::ostream& operator<<(std::ostream& os, const reversible_gradient_report& r) {
    for (auto& [name, d] : r.tensors) os << "  " << name << ": max abs " << d.max_abs << ", rel " << d.max_rel << "\n";
    return os;
  }
  std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
};

/// A block that runs in Stored and Reversible mode: a coupling, or a Chain/Repeat (whose tape
/// chooses the mode) that may mix couplings with ordinary, checkpointed layers.
template <class C>
concept ReversibleRunnable = checked_block<C>() &&(Coupling<C> || Container<C>);

/// Trains one step of `block` on x in Stored mode and in Reversible mode (the same random
/// output gradient, the same generator state, buffers restored in between) and compares the
/// input gradients and every parameter gradient.
template <ReversibleRunnable C>
reversible_gradient_report check_reversible_gradients(C& block, const input_t<C>& x, std::uint64_t seed = 5) {
  static_assert(std::same_as<typename C::backend, cpu>,
                "rev::testing::check_reversible_gradients: CPU-only for now (it compares host tensors); the block "
                "must run on rev::cpu");
  using T = typename C::value_type;
  std::vector<std::pair<Tensor<T, typename C::backend>*, Tensor<T, typename C::backend>>> buffers;
  block.for_each_buffer([&](const std::string&, auto& b) { buffers.emplace_back(&b, b.clone()); });
  auto restore = [&] {
    for (auto& [b, saved] : buffers) std::copy(saved.begin(), saved.end(), b->begin());
  };

  Generator gen(seed);
  auto run = [&](bool reversible) {
    restore();
    gen.set_state({seed, 0});
    context ctx{phase::train, &gen};
    zero_grad(block);
    output_t<C> dy;
    input_t<C> dx;
    auto make_dy = [&](const output_t<C>& y) {
      output_t<C> d = y;
      std::uint64_t s = seed + 100;
      for_each_tensor(d, [&](auto& t) { t = random_uniform<T>(t.shape(), s++); });
      return d;
    };
    if constexpr (std::constructible_from<typename C::cache, mode>) {
      typename C::cache tape{reversible ? mode::reversible : mode::stored};
      output_t<C> y = block.forward(x, ctx, tape);
      dy = make_dy(y);
      dx = block.backward(tape, dy);
    } else if (reversible) {
      output_t<C> y = block.forward(x, ctx);
      dy = make_dy(y);
      dx = block.backward_reversible(y, dy).dx;
    } else {
      typename C::cache c;
      output_t<C> y = block.forward(x, ctx, c);
      dy = make_dy(y);
      dx = block.backward(c, dy);
    }
    std::vector<std::pair<std::string, Tensor<T, typename C::backend>>> grads;
    block.for_each_parameter([&](const std::string& name, auto& p) { grads.emplace_back(name, p.grad.clone()); });
    return std::make_pair(dx, grads);
  };
  auto [dx_stored, g_stored] = run(false);
  auto [dx_rev, g_rev] = run(true);
  restore();
  reversible_gradient_report r;
  r.tensors.emplace_back("input", compare_states(dx_rev, dx_stored));
  for (std::size_t k = 0; k < g_stored.size(); ++k)
    r.tensors.emplace_back(g_stored[k].first, compare_states(g_rev[k].second, g_stored[k].second));
  return r;
}

}  // namespace rev::testing
