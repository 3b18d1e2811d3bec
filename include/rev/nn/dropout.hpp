// Dropout and DropPath layers (no parameters). By the context's phase (core/layer.hpp):
//   train      draws ctx.rng->draw(count) and keeps the rng_state, in the layer, in the cache and
//              in ctx.replay (the tape's replay record) when there is one
//   recompute  replays the rng_state kept in ctx.replay, else the layer's: the same mask,
//              nothing drawn
//   eval       the identity (a copy of x); so is p = 0 in every phase, without a draw
// count is the number of elements (Dropout) or of samples (DropPath). Only the last train-phase
// draw is kept, so a layer object serves one call site of one forward pass. set_state() lets
// two layers share a mask (SlowFast's Rev-ViT blocks use one drop-path mask for F and G).
#pragma once

#include <cstdint>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/dropout.hpp"

namespace rev::nn {

namespace detail {

// What Dropout and DropPath share: the probability, the kept draw and the phase logic. Op
// applies the mask (ops::dropout or ops::drop_path), Count says how many numbers a draw takes.
template <Scalar T, class B, class Op, class Count>
class drop_layer : public layer_types<T, B>, public no_parameters {
 public:
  using tensor_type = Tensor<T, B>;
  struct cache {
    rng_state state;
    bool active = false;  // false: the forward was the identity
  };

  explicit drop_layer(double p, const char* who) : p_(p), who_(who) { ops::detail::check_drop_probability(p, who); }

  double p() const { return p_; }
  /// Changes the probability (as assigning a PyTorch module's p).
  void set_p(double p) {
    ops::detail::check_drop_probability(p, who_);
    p_ = p;
  }
  /// The rng_state of the last train-phase forward (what the recompute phase replays).
  rng_state state() const { return state_; }
  /// Makes the recompute phase replay `s` for inputs whose draw takes `count` numbers.
  void set_state(const rng_state& s, std::uint64_t count) {
    state_ = s;
    count_ = count;
    has_state_ = true;
  }

  tensor_type forward(const tensor_type& x, context& ctx) {
    cache c;
    return forward(x, ctx, c);
  }

  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.active = ctx.mode != phase::eval && p_ > 0;
    if (!c.active) return x.clone();
    const std::uint64_t count = Count{}(x);
    if (ctx.mode == phase::train) {
      set_state(ctx.rng->draw(count), count);
      if (ctx.replay) ctx.replay->put(this, draw{state_, count_});
      c.state = state_;
    } else {
      const draw d = replayed(ctx);
      check<shape_error>(count == d.count, who_, ": the recompute-phase input ", x.shape(), " needs ", count,
                         " random numbers, the train-phase forward drew ", d.count);
      c.state = d.state;
    }
    return Op::forward(x, p_, c.state);
  }

  tensor_type backward(cache& c, const tensor_type& dy) {
    return c.active ? Op::backward(dy, p_, c.state) : dy.clone();
  }

 private:
  struct draw {
    rng_state state;
    std::uint64_t count = 0;
  };

  // The draw the recompute phase replays: that of the tape's forward, or the layer's last one.
  draw replayed(const context& ctx) const {
    if (ctx.replay) {
      const draw* d = ctx.replay->find<draw>(this);
      check<error>(d != nullptr, who_,
                   ": recompute phase without an rng_state in the tape being walked back (the layer did not run in "
                   "that tape's train-phase forward)");
      return *d;
    }
    check<error>(has_state_, who_, ": recompute phase before any train-phase forward (no rng_state to replay)");
    return {state_, count_};
  }

  double p_;
  const char* who_;
  rng_state state_;
  std::uint64_t count_ = 0;
  bool has_state_ = false;
};

struct dropout_op {
  template <class T, class B>
  static Tensor<T, B> forward(const Tensor<T, B>& x, double p, const rng_state& s) {
    return ops::dropout(x, p, s);
  }
  template <class T, class B>
  static Tensor<T, B> backward(const Tensor<T, B>& dy, double p, const rng_state& s) {
    return ops::dropout_backward(dy, p, s);
  }
};
struct drop_path_op {
  template <class T, class B>
  static Tensor<T, B> forward(const Tensor<T, B>& x, double p, const rng_state& s) {
    return ops::drop_path(x, p, s);
  }
  template <class T, class B>
  static Tensor<T, B> backward(const Tensor<T, B>& dy, double p, const rng_state& s) {
    return ops::drop_path_backward(dy, p, s);
  }
};
struct element_count {
  template <class T>
  std::uint64_t operator()(const T& x) const {
    return static_cast<std::uint64_t>(x.numel());
  }
};
struct sample_count {
  template <class T>
  std::uint64_t operator()(const T& x) const {
    return x.rank() >= 1 ? static_cast<std::uint64_t>(x.size(0)) : 0;
  }
};

}  // namespace detail

/// Element-wise dropout with probability p (kept values scaled by 1/(1-p)).
template <Scalar T = float, class B = cpu>
class Dropout : public detail::drop_layer<T, B, detail::dropout_op, detail::element_count> {
 public:
  template <Scalar T2, class B2>
  using rebind = Dropout<T2, B2>;
  /// p = 0.5 by default, as PyTorch's nn.Dropout.
  explicit Dropout(double p = 0.5)
      : detail::drop_layer<T, B, detail::dropout_op, detail::element_count>(p, "rev::nn::Dropout") {}
};

/// Drop-path (stochastic depth): each sample (index along dim 0) is zeroed with probability p,
/// kept samples are scaled by 1/(1-p).
template <Scalar T = float, class B = cpu>
class DropPath : public detail::drop_layer<T, B, detail::drop_path_op, detail::sample_count> {
 public:
  template <Scalar T2, class B2>
  using rebind = DropPath<T2, B2>;
  explicit DropPath(double p = 0.0)
      : detail::drop_layer<T, B, detail::drop_path_op, detail::sample_count>(p, "rev::nn::DropPath") {}
};

}  // namespace rev::nn
