// The coupling protocol. A coupling is a reversible block: besides the layer protocol
// (forward, forward with cache, backward) it has
//
//   In   inverse(const Out& y, context& ctx);                      // x from y
//   reconstructed<In> backward_reversible(const Out& y, const Out& dy);
//
// backward_reversible starts from the OUTPUT: it reconstructs the input, evaluates each inner
// function exactly once (in the recompute phase, so BatchNorm reuses the forward's batch
// statistics and dropout replays its masks), and backpropagates through it. The
// reconstruction and the gradient share that one evaluation. It keeps nothing between calls.
#pragma once

#include <concepts>

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"

namespace rev {

/// A block's reconstructed input and the gradient of the loss with respect to it.
template <class In>
struct reconstructed {
  In x;
  In dx;
};

template <class C>
concept Coupling = requires(C& c, const input_t<C>& x, const output_t<C>& y, context& ctx, typename C::cache& k) {
  { c.forward(x, ctx) } -> std::same_as<output_t<C>>;
  { c.forward(x, ctx, k) } -> std::same_as<output_t<C>>;
  { c.backward(k, y) } -> std::same_as<input_t<C>>;
  { c.inverse(y, ctx) } -> std::same_as<input_t<C>>;
  { c.backward_reversible(y, y) } -> std::same_as<reconstructed<input_t<C>>>;
};

/// The context inner functions are re-evaluated in during a reversible backward.
inline context recompute_context() { return context{phase::recompute, &default_generator()}; }

}  // namespace rev
