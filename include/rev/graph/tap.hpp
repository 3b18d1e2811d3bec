// rev::Tap<Head>: an intermediate head on the main path, y = x, whose loss adds its gradient to
// the main backward at x (RevCol's intermediate supervision, Sec. 2.3 of its paper: a loss on
// the output of some of the columns). Tap<Head, rev::stream<I, N>> reads stream I of an
// N-stream state (RevCol's heads read the top level of a column's state {x, b_0, ..., b_3}).
//
// The head runs on x in the forward pass; `on_output(h)`, set by the user, returns the gradient
// of the head's loss with respect to its output h (and may record the loss). Only that gradient
// is kept (in the tape), not the head's activations: during the walk back, at the x the walk
// has just reconstructed, the head is re-run once in the recompute phase and backpropagated, and
// its gradient added to the main one. Tap is a coupling (its input is its output), so in a
// reversible Chain it keeps nothing but the head's output gradient.
//
//   rev::Tap<AuxHead> tap;
//   tap.on_output = [&](const rev::Tensor<float>& logits) {
//     aux_loss += weight * rev::ops::cross_entropy(logits, labels);
//     return rev::ops::cross_entropy_backward(logits, labels, 0.0, weight);  // d aux loss / d logits
//   };
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/replay.hpp"
#include "rev/core/signature.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// Where a Tap's head reads: the whole state (one tensor) ...
struct whole_state {
  static constexpr int index = 0, count = 0;
};
/// ... or stream I of a state of N tensors.
template <int I, int N>
struct stream {
  static_assert(0 <= I && I < N, "rev::stream<I, N>: I must be in [0, N)");
  static constexpr int index = I, count = N;
};

template <class Head, class At = whole_state>
class Tap {
  static_assert(std::same_as<input_t<Head>, typename Head::tensor_type>,
                "rev::Tap<Head>: the head takes one tensor (the main path's state, or one stream of it)");
  static constexpr bool whole = At::count == 0;

 public:
  template <class T2, class B2>
  using rebind = Tap<rebind_t<Head, T2, B2>, At>;
  using value_type = typename Head::value_type;
  using backend = typename Head::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = std::conditional_t<whole, tensor_type, Tensors<value_type, At::count, backend>>;
  using output_type = input_type;
  using side_type = output_t<Head>;
  static constexpr bool is_coupling = true;
  static constexpr auto in_signature = [] {
    signature<whole ? 1 : At::count> s{};
    s[whole ? 0 : At::index] = {in_layout_of<Head>(), in_channels_of<Head>()};
    return s;
  }();
  static constexpr auto out_signature(const decltype(in_signature)& reaching) { return reaching; }

  /// The gradient of the head's loss with respect to the head's output; an empty tensor: none.
  std::function<side_type(const side_type&)> on_output;

  struct cache {
    typename Head::cache head;
    side_type dside;  // the gradient on_output returned
  };

  /// x; runs the head and on_output. In a reversible tape the gradient is kept in the tape.
  output_type forward(const input_type& x, context& ctx) {
    if (ctx.mode != phase::recompute && on_output) {
      side_type d = on_output(head_.forward(read(x), ctx));
      if (ctx.replay && ctx.mode == phase::train) ctx.replay->put(this, std::move(d));
    }
    return x;
  }
  output_type forward(const input_type& x, context& ctx, cache& c) {
    if (on_output) c.dside = on_output(head_.forward(read(x), ctx, c.head));
    return x;
  }
  input_type backward(cache& c, const output_type& dy) {
    input_type dx = dy;
    if (!empty(c.dside)) dx = with_side(dy, head_.backward(c.head, c.dside));
    c = cache{};
    return dx;
  }
  input_type inverse(const output_type& y, context&) { return y; }
  /// At x = y: dx = dy + Head'(x)^T dside, the head re-run once in the recompute phase.
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) {
    const replay_record* r = current_replay();
    const side_type* d = r ? r->find<side_type>(this) : nullptr;
    if (d == nullptr || empty(*d)) return {y, dy};
    context ctx = recompute_context();
    typename Head::cache c;
    head_.forward(read(y), ctx, c);
    return {y, with_side(dy, head_.backward(c, *d))};
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    head_.for_each_parameter(v, prefix);
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    head_.for_each_buffer(v, prefix);
  }
  /// Calls v(head) (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    v(head_);
  }

  Head& head() { return head_; }

 private:
  static const tensor_type& read(const input_type& x) {
    if constexpr (whole) return x;
    else return x[At::index];
  }
  // dy with the head's input gradient g added where the head reads.
  static input_type with_side(const input_type& dy, const tensor_type& g) {
    if constexpr (whole) {
      return ops::add(dy, g);
    } else {
      input_type dx = dy;
      dx[At::index] = ops::add(dy[At::index], g);
      return dx;
    }
  }
  // Whether on_output returned "no gradient" (an empty tensor, or a state of empty tensors).
  static bool empty(const side_type& d) {
    if constexpr (std::same_as<side_type, tensor_type>) return d.empty();
    else return std::all_of(d.begin(), d.end(), [](const tensor_type& t) { return t.empty(); });
  }

  Head head_;
};

}  // namespace rev
