// Anomaly mode, as PyTorch's torch.autograd.detect_anomaly: while a rev::detect_anomaly scope is
// alive on a thread, rev::Chain and rev::Repeat check, for every block, its output in the
// forward pass, and in the backward pass the input the walk back hands on (reconstructed by a
// coupling, re-read from a checkpoint otherwise) and the gradient dL/dx. The first NaN or infinity
// raises rev::value_error naming the block by its path in the network ("rev_stack.4", the names
// of its parameters' prefix), the pass and the step:
//
//   rev::detect_anomaly anomaly(step);   // until the end of the scope
//   auto y = net.forward(x, ctx, tape);  // value_error: "... block 'rev_stack.4' ... forward ..."
//
// Off by default: a container then tests one thread-local flag per block. On, each check is one
// parallel pass over the state.
#pragma once

#include <atomic>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/core/traits.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// The pass a checked state belongs to.
enum class pass { forward, reconstruction, backward };

namespace detail {
struct anomaly_state {
  bool on = false;
  long long step = -1;
  std::vector<std::string> path;  // the names of the blocks running, outermost first
};
inline anomaly_state& anomaly() {
  thread_local anomaly_state s;
  return s;
}
}  // namespace detail

/// Turns anomaly mode on for this thread until the scope ends (nested scopes restore the outer
/// state). `step` is named in the errors (-1: none); set_step changes it for the next step.
class detect_anomaly {
 public:
  explicit detect_anomaly(long long step = -1) : previous_(std::exchange(detail::anomaly(), {true, step, {}})) {}
  ~detect_anomaly() { detail::anomaly() = std::move(previous_); }
  detect_anomaly(const detect_anomaly&) = delete;
  detect_anomaly& operator=(const detect_anomaly&) = delete;

  void set_step(long long step) { detail::anomaly().step = step; }
  /// Whether anomaly mode is on for this thread.
  static bool enabled() { return detail::anomaly().on; }

 private:
  detail::anomaly_state previous_;
};

namespace detail {

inline const char* pass_name(pass p) {
  switch (p) {
    case pass::forward: return "the forward pass (its output)";
    case pass::reconstruction: return "the backward pass (the input the walk back reconstructed or re-read)";
    case pass::backward: return "the backward pass (the gradient with respect to its input)";
  }
  return "";
}

// Whether every element of t is finite. On the CPU a parallel scan (x - x is 0 for a finite x,
// NaN otherwise); elsewhere the sum, which is finite exactly when every element is, unless it
// overflows: then a dot product with zeros decides (0 for finite elements, NaN otherwise).
template <Scalar T, class B>
bool all_finite(const Tensor<T, B>& t) {
  if (t.empty()) return true;
  if constexpr (std::same_as<B, cpu>) {
    std::atomic<bool> bad{false};
    parallel_for(t.numel(), index_t{1} << 16, [&](index_t b, index_t e) {
      const T* p = t.data();
      int any = 0;
      for (index_t i = b; i < e; ++i) any |= (p[i] - p[i]) != T(0);
      if (any) bad = true;
    });
    return !bad;
  } else {
    return std::isfinite(ops::sum(t)) || std::isfinite(ops::dot(t, Tensor<T, B>(t.shape())));
  }
}

// A block of a container while it runs, in anomaly mode: its name (what name() returns, asked
// only in anomaly mode) is on the thread's path for the checks of the blocks inside it; check()
// raises value_error for a non-finite state.
class anomaly_block {
 public:
  template <class Name>
  explicit anomaly_block(Name&& name) : on_(anomaly().on) {
    if (on_) anomaly().path.push_back(name());
  }
  ~anomaly_block() {
    if (on_) anomaly().path.pop_back();
  }
  anomaly_block(const anomaly_block&) = delete;
  anomaly_block& operator=(const anomaly_block&) = delete;

  template <class State>
  void check(const State& s, pass p) const {
    if (!on_) return;
    if constexpr (requires { s.shape(); }) {
      check_tensor(s, p, -1, 1);
    } else {
      for (std::size_t i = 0; i < s.size(); ++i) check_tensor(s[i], p, static_cast<int>(i), s.size());
    }
  }

 private:
  template <class Tensor_>
  void check_tensor(const Tensor_& t, pass p, int index, std::size_t count) const {
    if (all_finite(t)) return;
    std::string path;
    for (const std::string& n : anomaly().path) path += (path.empty() ? "" : ".") + n;
    const long long step = anomaly().step;
    throw value_error(concat("rev::detect_anomaly: NaN or infinity in block '", path, "' in ", pass_name(p),
                             index < 0 ? "" : ", tensor ", index < 0 ? "" : std::to_string(index),
                             index < 0 ? "" : " of ", index < 0 ? "" : std::to_string(count), " (extents ", t.shape(),
                             ")", step < 0 ? "" : ", step ", step < 0 ? "" : std::to_string(step)));
  }
  bool on_;
};

/// The name of child i of a container in an anomaly path: its key if it is Named, else i.
template <class S>
std::string child_name(std::size_t i) {
  if constexpr (requires { S::key; }) {
    if (!std::string_view(S::key).empty()) return std::string(S::key);
  }
  return std::to_string(i);
}

}  // namespace detail
}  // namespace rev
