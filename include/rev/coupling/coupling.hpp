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
//
// A coupling says that it is one:
//
//   static constexpr bool is_coupling = true;
//
// and a block that says so but misses a requirement is a compile error naming the requirement
// (in Chain, Repeat and the testing helpers), instead of a block quietly run as an ordinary,
// checkpointed one whose memory grows with depth. A block with a backward_reversible that does
// not declare itself is an error too.
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

/// The block declares itself a coupling: `static constexpr bool is_coupling = true;`.
template <class C>
concept DeclaresCoupling = requires {
  requires C::is_coupling;
};

namespace detail {
// The requirements of the coupling protocol, one concept each so that a failure can name one.
template <class C>
concept coupling_forward = requires(C& c, const input_t<C>& x, context& ctx) {
  { c.forward(x, ctx) } -> std::same_as<output_t<C>>;
};
template <class C>
concept coupling_forward_cache = requires(C& c, const input_t<C>& x, context& ctx, typename C::cache& k) {
  { c.forward(x, ctx, k) } -> std::same_as<output_t<C>>;
};
template <class C>
concept coupling_backward = requires(C& c, const output_t<C>& dy, typename C::cache& k) {
  { c.backward(k, dy) } -> std::same_as<input_t<C>>;
};
template <class C>
concept coupling_inverse = requires(C& c, const output_t<C>& y, context& ctx) {
  { c.inverse(y, ctx) } -> std::same_as<input_t<C>>;
};
template <class C>
concept coupling_backward_reversible = requires(C& c, const output_t<C>& y) {
  { c.backward_reversible(y, y) } -> std::same_as<reconstructed<input_t<C>>>;
};
}  // namespace detail

template <class C>
concept Coupling = DeclaresCoupling<C> && detail::coupling_forward<C> && detail::coupling_forward_cache<C> &&
    detail::coupling_backward<C> && detail::coupling_inverse<C> && detail::coupling_backward_reversible<C>;

/// true; instantiated for a block C that declares is_coupling and misses a requirement, or has a
/// backward_reversible without declaring is_coupling, it is a compile error that names what is
/// missing. Chain, Repeat and the testing helpers check each block with it.
template <class C>
constexpr bool checked_coupling() {
  if constexpr (DeclaresCoupling<C>) {
    static_assert(detail::coupling_forward<C>,
                  "rev::Coupling: a block declaring is_coupling lacks `Out forward(const In& x, context& ctx)`");
    static_assert(
        detail::coupling_forward_cache<C>,
        "rev::Coupling: a block declaring is_coupling lacks `Out forward(const In& x, context& ctx, cache& c)`");
    static_assert(detail::coupling_backward<C>,
                  "rev::Coupling: a block declaring is_coupling lacks `In backward(cache& c, const Out& dy)`");
    static_assert(detail::coupling_inverse<C>,
                  "rev::Coupling: a block declaring is_coupling lacks `In inverse(const Out& y, context& ctx)`");
    static_assert(
        detail::coupling_backward_reversible<C>,
        "rev::Coupling: a block declaring is_coupling lacks `rev::reconstructed<In> backward_reversible(const "
        "Out& y, const Out& dy)`");
  } else {
    static_assert(
        !requires { &C::backward_reversible; },
        "rev::Coupling: a block has backward_reversible but does not declare `static constexpr bool "
        "is_coupling = true;`");
  }
  return true;
}

/// The context inner functions are re-evaluated in during a reversible backward: the recompute
/// phase, with the replay record of the walk back running on this thread (core/replay.hpp).
inline context recompute_context() { return context{phase::recompute, &default_generator(), current_replay()}; }

}  // namespace rev
