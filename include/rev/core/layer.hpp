// The layer protocol. A layer knows its parameters by name, its forward, and its backward
// given what its forward saved; it does not know whether the network around it is reversible.
//
//   Tensor y  = layer.forward(x, ctx);          // keeps nothing (inference, reversible forward)
//   Tensor y  = layer.forward(x, ctx, cache);   // saves in `cache` what backward needs
//   Tensor dx = layer.backward(cache, dy);      // returns dL/dx, ADDS dL/dθ to each param's grad
//
// The context's phase says how batch-dependent and random layers behave:
//   eval      BatchNorm uses running statistics; dropout is the identity.
//   train     BatchNorm uses batch statistics, updates its running statistics once and keeps the
//             batch statistics; dropout draws a mask from ctx.rng and keeps the rng_state.
//   recompute the reversible backward re-evaluates a function: BatchNorm reuses the batch
//             statistics of the train forward without updating anything; dropout replays the
//             kept rng_state. The result equals the train forward's up to reconstruction error.
// What the recompute phase replays is kept in ctx.replay when the context has a record (the
// tape of a reversible Chain or Repeat, core/replay.hpp), else in the layer.
#pragma once

#include <concepts>
#include <string>

#include "rev/core/replay.hpp"
#include "rev/core/rng.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/tensor.hpp"

namespace rev {

enum class phase { eval, train, recompute };

struct context {
  phase mode = phase::eval;
  Generator* rng = &default_generator();
  /// Where train-phase forwards put, and recompute-phase forwards find, what the recompute
  /// replays (nullptr: the layers keep it themselves).
  replay_record* replay = nullptr;

  bool training() const { return mode != phase::eval; }
};

/// A learnable tensor and its gradient (same extents; zero until a backward adds to it).
template <Scalar T, class B = cpu>
struct Param {
  Tensor<T, B> value;
  Tensor<T, B> grad;

  Param() = default;
  explicit Param(const Shape& shape) : value(shape), grad(shape) {}
  const Shape& shape() const { return value.shape(); }
  void zero_grad() { grad.fill(T(0)); }
};

/// Called by for_each_parameter: f(name, param); and by for_each_buffer: f(name, tensor).
template <class L>
concept Layer = requires(L& l, const typename L::tensor_type& x, context& ctx, typename L::cache& c) {
  typename L::value_type;
  typename L::backend;
  typename L::cache;
  { l.forward(x, ctx) } -> std::same_as<typename L::tensor_type>;
  { l.forward(x, ctx, c) } -> std::same_as<typename L::tensor_type>;
  { l.backward(c, x) } -> std::same_as<typename L::tensor_type>;
};

/// The common typedefs of a layer over element type T on backend B.
template <Scalar T, class B>
struct layer_types {
  using value_type = T;
  using backend = B;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
};

/// Joins a parameter-name prefix and a name the way PyTorch's state_dict does ("a.b.weight").
inline std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

/// The name prefix of child i of a container: "<prefix>.<i>", or "<prefix>" for a child that
/// names itself (rev::Named adds its own key).
template <class S>
std::string child_prefix(const std::string& prefix, std::size_t i) {
  if constexpr (requires { S::key; }) return prefix;
  else return join_name(prefix, std::to_string(i));
}
/// The name prefix of a child a container calls `name` (a coupling's "f"): "<prefix>.<name>"
/// (a Named child adds its key below it), or "<prefix>" for a rev::Unnamed child, whose own
/// children then name themselves (Rev-ViT's "F" and "G" in place of "f" and "g").
template <class S>
std::string child_prefix(const std::string& prefix, const char* name) {
  if constexpr (requires { S::key.empty(); }) {
    if (S::key.empty()) return prefix;
  }
  return join_name(prefix, name);
}

/// Visits nothing: for layers without parameters or buffers.
struct no_parameters {
  template <class F>
  void for_each_parameter(F&&, const std::string& = "") {}
  template <class F>
  void for_each_buffer(F&&, const std::string& = "") {}
};

/// Calls fn on `layer` and on every layer inside it, parents before children, where fn takes it
/// (PyTorch's Module.apply, typed by fn's parameter): a layer that holds other layers names them
/// with `for_each_child(v)`, calling v(child) for each.
///   rev::apply(net, [](nn::DropPath<float>& d) { d.set_p(0.1); });
template <class L, class Fn>
void apply(L& layer, Fn&& fn) {
  if constexpr (std::invocable<Fn&, L&>) fn(layer);
  if constexpr (requires { layer.for_each_child([](auto&) {}); })
    layer.for_each_child([&](auto& child) { apply(child, fn); });
}

/// Sets every parameter gradient of `layer` to zero.
template <class L>
void zero_grad(L& layer) {
  layer.for_each_parameter([](const std::string&, auto& p) { p.zero_grad(); });
}

/// The number of learnable scalars of `layer`.
template <class L>
index_t parameter_count(L& layer) {
  index_t n = 0;
  layer.for_each_parameter([&](const std::string&, auto& p) { n += p.value.numel(); });
  return n;
}

}  // namespace rev
