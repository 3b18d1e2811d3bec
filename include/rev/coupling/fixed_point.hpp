// rev::FixedPointResidual<G>: the invertible residual block of i-ResNet and RevUp,
//
//   y = x + g(x),   g contractive (Lip(g) < 1, e.g. spectrally normalised convolutions, nn::SNConv2d);
//
// inverted by the fixed-point iteration (Banach; RevUp's Algorithm 1)
//
//   x^0 = y,   x^{n+1} = y - g(x^n),   ||x - x^n|| <= Lip(g)^n ||g(x)||,
//
// stopped after `iterations` evaluations of g (N counts evaluations of g: N = 1 is
// x^ = y - g(y), RevUp's training setting) or as soon as the relative step
// ||x^{n+1} - x^n|| / ||x^n|| is <= `tolerance`.
//
// Reversible backward (the RevUp paper, Sec. 2.3-2.4): x^ is reconstructed by the iteration in the recompute
// phase (no BatchNorm or spectral-norm updates; dropout replays), then g is evaluated ONCE more
// at x^ with a cache and dx = dy + J_g(x^)^T dy. This costs N + 1 evaluations of g: unlike the
// exact couplings (Additive, ...), the reconstruction and the gradient cannot share one
// evaluation, because the gradient needs g at the reconstructed input, which is only known after
// the last evaluation. The gradients equal Stored mode's up to the reconstruction error (they
// agree to float rounding once x^ has converged); with N = 1 they are those of the block at
// x^ = y - g(y), an approximation whose error is <= Lip(g) ||g(x)|| in the input (see
// docs/couplings.md for measured numbers).
//
// g's parameters and buffers keep their own names (no prefix is added): the block is the
// residual branch plus the identity shortcut.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// g maps C channels to C channels (or accepts any channel count and keeps it).
template <class G>
concept KeepsChannels = channels_match(in_channels_of<G>(), out_channels_of<G>());

/// How the latest reconstruction (inverse or backward_reversible) of a FixedPointResidual went.
struct fixed_point_report {
  int evaluations = 0;     // evaluations of g used by the iteration
  double last_step = 0;    // ||x^n - x^{n-1}|| / ||x^{n-1}|| of its last iteration
  bool converged = false;  // stopped because last_step <= tolerance
};

template <class G>
class FixedPointResidual {
  static_assert(KeepsChannels<G>,
                "rev::FixedPointResidual<G>: g must keep the channel count (G::in_channels == G::out_channels)");

 public:
  template <class T2, class B2>
  using rebind = FixedPointResidual<rebind_t<G, T2, B2>>;
  using value_type = typename G::value_type;
  using backend = typename G::backend;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<value_type, backend>;
  static_assert(std::same_as<typename G::tensor_type, tensor_type>,
                "rev::FixedPointResidual<G>: g must map one tensor to one tensor");
  static_assert(std::same_as<backend, cpu>,
                "rev::FixedPointResidual<G>: CPU-only for now (its fixed-point iteration loops over host memory); "
                "G must run on rev::cpu");
  static constexpr int in_channels = in_channels_of<G>() != any_channels ? in_channels_of<G>() : out_channels_of<G>();
  static constexpr int out_channels = in_channels;

  /// The default tolerance: a relative step float32 reaches reliably (its rounding floor is
  /// ~1e-7), and 1e-12 for float64.
  static constexpr double default_tolerance = std::same_as<value_type, float> ? 1e-6 : 1e-12;

  struct cache {
    typename G::cache g;
  };

  /// N: the most evaluations of g one reconstruction may use (>= 1).
  int iterations = 50;
  /// Stop as soon as ||x^{n+1} - x^n|| / ||x^n|| <= tolerance (0 or negative: always N).
  double tolerance = default_tolerance;

  FixedPointResidual() = default;
  explicit FixedPointResidual(G g, int n = 50, double tol = default_tolerance)
      : iterations(n), tolerance(tol), g_(std::move(g)) {}

  tensor_type forward(const tensor_type& x, context& ctx) { return ops::add(x, checked(g_.forward(x, ctx), x)); }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    return ops::add(x, checked(g_.forward(x, ctx, c.g), x));
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return ops::add(dy, g_.backward(c.g, dy)); }

  /// x from y by the fixed-point iteration. g is evaluated without side effects: a train-phase
  /// context is treated as the recompute phase (no statistics or power-iteration updates).
  tensor_type inverse(const tensor_type& y, context& ctx) {
    context c = ctx;
    if (c.mode == phase::train) c.mode = phase::recompute;
    return iterate(y, c);
  }

  /// Reconstructs x^ from y (N evaluations at most), re-runs g once at x^ and returns
  /// {x^, dy + J_g(x^)^T dy}, adding g's parameter gradients at x^.
  reconstructed<tensor_type> backward_reversible(const tensor_type& y, const tensor_type& dy) {
    expect_shape(dy, y.shape(), "rev::FixedPointResidual<G>::backward_reversible", "output gradient");
    context ctx = recompute_context();
    tensor_type x = iterate(y, ctx);
    typename G::cache c;
    checked(g_.forward(x, ctx, c), x);
    tensor_type dx = ops::add(dy, g_.backward(c, dy));
    return {std::move(x), std::move(dx)};
  }

  /// How the latest inverse or backward_reversible converged.
  const fixed_point_report& last_report() const { return report_; }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    g_.for_each_parameter(v, prefix);
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    g_.for_each_buffer(v, prefix);
  }
  /// Calls v(g) (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    v(g_);
  }

  G& g() { return g_; }
  const G& g() const { return g_; }

 private:
  static constexpr const char* who = "rev::FixedPointResidual<G>";

  // g must keep the extents (channels and spatial size) for y = x + g(x) to make sense.
  static const tensor_type& checked(const tensor_type& gx, const tensor_type& x) {
    check<shape_error>(gx.shape() == x.shape(), who, ": g maps extents ", x.shape(), " to ", gx.shape(),
                       "; a residual branch must keep the extents (stride 1, same channels)");
    return gx;
  }

  tensor_type iterate(const tensor_type& y, context& ctx) {
    check<value_error>(iterations >= 1, who, ": iterations = ", iterations, " must be at least 1");
    report_ = {};
    tensor_type x = y;  // x^0
    for (int n = 1; n <= iterations; ++n) {
      tensor_type next = ops::sub(y, checked(g_.forward(x, ctx), x));
      double diff = 0, norm = 0;
      const value_type *a = next.data(), *b = x.data();
      for (index_t i = 0; i < next.numel(); ++i) {
        const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        diff += d * d;
        norm += static_cast<double>(b[i]) * b[i];
      }
      report_.evaluations = n;
      report_.last_step = diff == 0 ? 0.0 : std::sqrt(diff) / std::sqrt(norm);
      x = std::move(next);
      if (report_.last_step <= tolerance) {
        report_.converged = true;
        break;
      }
    }
    return x;
  }

  G g_;
  fixed_point_report report_;
};

}  // namespace rev
