// rev::Affine<S, T, Scale>: the one-sided affine coupling of RealNVP (Dinh et al. 2017) and
// Glow (Kingma & Dhariwal 2018), with its log-determinant:
//
//   x = (x1, x2) split along channels,  raw = S(x1),  t = T(x1),
//   y1 = x1,  y2 = x2 ⊙ scale(raw) + t;           inverse: x2 = (y2 - t) / scale(raw);
//   log|det ∂y/∂x| = Σ_{c,h,w} log scale(raw)    per sample (the Jacobian is block triangular
//                                                 with diagonal blocks I and diag(scale)).
//
// S and T map x1's channels to x2's (C/2 -> C/2); they need not be invertible. The Scale policy
// turns the raw output of S into a positive scale (docs/couplings.md, "Affine", has the
// float32-safe ranges):
//   affine_scale::exp          scale = exp(raw)                                  (RealNVP)
//   affine_scale::exp_clamped  scale = exp(α (2/π) atan(raw / α)), α = 2         (FrEIA's soft clamp; default)
//   affine_scale::sigmoid      scale = sigmoid(raw + 2)                          (Glow)
//
// Log-determinant API (normalizing flows):
//   forward(x, ctx, log_det) / forward(x, ctx, cache, log_det) also return log_det [N];
//   inverse(y, ctx, log_det) returns the inverse map's log-det (= -log_det of the forward);
//   backward(cache, dy, &dlog_det) and backward_reversible(y, dy, &dlog_det) take dL/dlog_det [N];
//   last_log_det() is the log-det of the latest forward or inverse (read it after a Chain ran);
//   set_log_det_grad(g) is the dL/dlog_det the two-argument backward forms use (inside a Chain).
#pragma once

#include <array>
#include <cmath>
#include <concepts>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/parallel.hpp"
#include "rev/coupling/affine_scale.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/coupling/halves.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// A scale policy of rev::Affine (see namespace affine_scale).
template <class P>
concept AffineScale = std::copyable<P> && requires(const P& p, float f, double d) {
  { p.log_scale(f) } -> std::same_as<float>;
  { p.scale(f, f) } -> std::same_as<float>;
  { p.dlog_scale(f) } -> std::same_as<float>;
  { p.log_scale(d) } -> std::same_as<double>;
  { p.scale(d, d) } -> std::same_as<double>;
  { p.dlog_scale(d) } -> std::same_as<double>;
};

/// Which half conditions which.
/// S and T both map x1's channels to x2's, which are the same count (C/2 each).
template <class S, class T>
concept AffineCompatible = channels_match(in_channels_of<S>(), out_channels_of<S>()) &&
    channels_match(in_channels_of<T>(), out_channels_of<T>()) &&
    channels_match(in_channels_of<S>(), in_channels_of<T>()) &&
    channels_match(out_channels_of<S>(), out_channels_of<T>()) &&
    channels_match(in_channels_of<S>(), out_channels_of<T>()) &&
    channels_match(out_channels_of<S>(), in_channels_of<T>());

namespace detail {

// The first channel count stated by S or T (the half width C/2), or any_channels.
template <class S, class T>
constexpr int affine_half_channels() {
  for (int c : {in_channels_of<S>(), out_channels_of<S>(), in_channels_of<T>(), out_channels_of<T>()})
    if (c != any_channels) return c;
  return any_channels;
}

// Tasks of whole channel planes of about 8k elements.
inline index_t affine_plane_grain(index_t plane) {
  return std::max<index_t>(1, (index_t{1} << 13) / std::max<index_t>(plane, 1));
}

// Forward (Inverse = false): out = in ⊙ scale + t; inverse: out = (in - t) / scale. Also writes
// log_det[n] = ± Σ_{c,h,w} log scale(raw[n]) (+ forward, - inverse), summed in double.
template <bool Inverse, class P, Scalar V>
Tensor<V> affine_apply(const P& p, const Tensor<V>& in, const Tensor<V>& raw, const Tensor<V>& t, Tensor<V>& log_det) {
  const index_t N = in.size(0), planes = N * in.size(1), plane = in.numel() / std::max<index_t>(planes, 1);
  Tensor<V> out = Tensor<V>::uninitialized(in.shape());
  std::vector<double> partial(static_cast<std::size_t>(planes));
  const V *pi = in.data(), *pr = raw.data(), *pt = t.data();
  V* po = out.data();
  parallel_for(planes, affine_plane_grain(plane), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      double sum = 0;
      for (index_t i = q * plane; i < (q + 1) * plane; ++i) {
        const V ls = p.log_scale(pr[i]);
        const V sc = p.scale(pr[i], ls);
        if constexpr (Inverse) po[i] = (pi[i] - pt[i]) / sc;
        else po[i] = pi[i] * sc + pt[i];
        sum += ls;
      }
      partial[static_cast<std::size_t>(q)] = sum;
    }
  });
  log_det = Tensor<V>::uninitialized({N});
  const index_t per_sample = planes / std::max<index_t>(N, 1);
  for (index_t n = 0; n < N; ++n) {
    double sum = 0;
    for (index_t q = n * per_sample; q < (n + 1) * per_sample; ++q) sum += partial[static_cast<std::size_t>(q)];
    log_det.data()[n] = static_cast<V>(Inverse ? -sum : sum);
  }
  return out;
}

// Backward of y2 = x2 ⊙ scale(raw) + t with L also depending on log_det = Σ log scale(raw):
//   d raw = (dy2 ⊙ x2 ⊙ scale + dlog_det[n]) ⊙ dlog_scale(raw),  dx2 = dy2 ⊙ scale  (dt = dy2).
template <class P, Scalar V>
std::pair<Tensor<V>, Tensor<V>> affine_backward(const P& p, const Tensor<V>& x2, const Tensor<V>& raw,
                                                const Tensor<V>& dy2, const Tensor<V>* dlog_det) {
  const index_t planes = x2.size(0) * x2.size(1), plane = x2.numel() / std::max<index_t>(planes, 1);
  const index_t C = x2.size(1);
  Tensor<V> draw = Tensor<V>::uninitialized(x2.shape()), dx2 = Tensor<V>::uninitialized(x2.shape());
  const V *px = x2.data(), *pr = raw.data(), *pd = dy2.data(), *pl = dlog_det ? dlog_det->data() : nullptr;
  V *pdr = draw.data(), *pdx = dx2.data();
  parallel_for(planes, affine_plane_grain(plane), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      const V dl = pl ? pl[q / C] : V(0);
      for (index_t i = q * plane; i < (q + 1) * plane; ++i) {
        const V sc = p.scale(pr[i], p.log_scale(pr[i]));
        pdr[i] = (pd[i] * px[i] * sc + dl) * p.dlog_scale(pr[i]);
        pdx[i] = pd[i] * sc;
      }
    }
  });
  return {std::move(draw), std::move(dx2)};
}

}  // namespace detail

template <class S, class T, AffineScale Scale = affine_scale::exp_clamped,
          coupling_layout Layout = coupling_layout::halves>
class Affine {
  static_assert(std::same_as<typename S::value_type, typename T::value_type> &&
                    std::same_as<typename S::backend, typename T::backend>,
                "rev::Affine<S,T>: S and T must have the same element type and backend");
  static_assert(AffineCompatible<S, T>,
                "rev::Affine<S,T>: S and T must both map x1's channels to x2's channels, and the two halves have "
                "the same count (S::in_channels == S::out_channels == T::in_channels == T::out_channels == C/2)");

 public:
  template <class T2, class B2>
  using rebind = Affine<rebind_t<S, T2, B2>, rebind_t<T, T2, B2>, Scale, Layout>;
  using value_type = typename S::value_type;
  using backend = typename S::backend;
  static constexpr bool is_coupling = true;
  static_assert(std::same_as<backend, cpu>,
                "rev::Affine<S,T>: CPU-only for now (its scale and log-determinant loop over host memory); S and T "
                "must run on rev::cpu");
  using tensor_type = Tensor<value_type, backend>;
  using input_type = tensor_type;
  using output_type = tensor_type;
  using scale_type = Scale;
  static constexpr int half_channels = detail::affine_half_channels<S, T>();
  static constexpr int in_channels = half_channels == any_channels ? any_channels : 2 * half_channels;
  static constexpr int out_channels = in_channels;

  struct cache {
    typename S::cache s;
    typename T::cache t;
    tensor_type x2;   // the transformed half's input
    tensor_type raw;  // S(x1)
  };

  Affine() = default;
  explicit Affine(Scale scale) : scale_(std::move(scale)) {}
  Affine(S s, T t, Scale scale = {}) : s_(std::move(s)), t_(std::move(t)), scale_(std::move(scale)) {}

  output_type forward(const input_type& x, context& ctx) {
    tensor_type log_det;
    return forward(x, ctx, log_det);
  }
  output_type forward(const input_type& x, context& ctx, cache& c) {
    tensor_type log_det;
    return forward(x, ctx, c, log_det);
  }

  /// forward that also returns log|det ∂y/∂x| per sample ([N]).
  output_type forward(const input_type& x, context& ctx, tensor_type& log_det) {
    auto [x1, x2] = unpack(x, "input");
    tensor_type raw = s_.forward(x1, ctx);
    tensor_type t = t_.forward(x1, ctx);
    check_inner(raw, t, x2);
    tensor_type y2 = detail::affine_apply<false>(scale_, x2, raw, t, log_det);
    last_log_det_ = log_det;
    return pack(x1, y2);
  }
  output_type forward(const input_type& x, context& ctx, cache& c, tensor_type& log_det) {
    auto [x1, x2] = unpack(x, "input");
    c.raw = s_.forward(x1, ctx, c.s);
    tensor_type t = t_.forward(x1, ctx, c.t);
    check_inner(c.raw, t, x2);
    c.x2 = x2;
    tensor_type y2 = detail::affine_apply<false>(scale_, x2, c.raw, t, log_det);
    last_log_det_ = log_det;
    return pack(x1, y2);
  }

  /// Returns dL/dx; dlog_det is dL/dlog_det [N] (nullptr: the one set by set_log_det_grad, if any).
  input_type backward(cache& c, const output_type& dy, const tensor_type* dlog_det = nullptr) {
    check<shape_error>(!c.x2.empty(), "rev::Affine<S,T>: backward needs the cache of a forward");
    auto [dy1, dy2] = unpack(dy, "output gradient");
    check_gradient(dy2, c.x2, dlog_det);
    auto [draw, dx2] = detail::affine_backward(scale_, c.x2, c.raw, dy2, log_det_gradient(dlog_det));
    tensor_type dx1 = ops::add(dy1, s_.backward(c.s, draw));
    ops::add_(dx1, t_.backward(c.t, dy2));
    return pack(dx1, dx2);
  }

  input_type inverse(const output_type& y, context& ctx) {
    tensor_type log_det;
    return inverse(y, ctx, log_det);
  }
  /// inverse that also returns the inverse map's log-det per sample (-log_det of the forward).
  input_type inverse(const output_type& y, context& ctx, tensor_type& log_det) {
    auto [y1, y2] = unpack(y, "input of the inverse");
    tensor_type raw = s_.forward(y1, ctx);
    tensor_type t = t_.forward(y1, ctx);
    check_inner(raw, t, y2);
    tensor_type x2 = detail::affine_apply<true>(scale_, y2, raw, t, log_det);
    last_log_det_ = log_det;
    return pack(y1, x2);
  }

  /// Reconstructs x from y = forward(x), evaluating S and T once each (recompute phase), and
  /// backpropagates dy (and dL/dlog_det, as in backward) through that one evaluation.
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy,
                                                const tensor_type* dlog_det = nullptr) {
    check<shape_error>(dy.shape() == y.shape(), "rev::Affine<S,T>: output gradient has extents ", dy.shape(),
                       ", expected ", y.shape(), " (those of the output)");
    context ctx = recompute_context();
    auto [y1, y2] = unpack(y, "output");
    auto [dy1, dy2] = unpack(dy, "output gradient");
    typename S::cache cs;
    typename T::cache ct;
    tensor_type raw = s_.forward(y1, ctx, cs);
    tensor_type t = t_.forward(y1, ctx, ct);
    check_inner(raw, t, y2);
    check_gradient(dy2, y2, dlog_det);
    tensor_type log_det;
    tensor_type x2 = detail::affine_apply<true>(scale_, y2, raw, t, log_det);
    auto [draw, dx2] = detail::affine_backward(scale_, x2, raw, dy2, log_det_gradient(dlog_det));
    tensor_type dx1 = ops::add(dy1, s_.backward(cs, draw));
    ops::add_(dx1, t_.backward(ct, dy2));
    return {pack(y1, x2), pack(dx1, dx2)};
  }

  /// log|det ∂y/∂x| [N] of the latest forward, or the inverse map's of the latest inverse.
  const tensor_type& last_log_det() const { return last_log_det_; }
  /// dL/dlog_det [N] for the two-argument backward forms (a Chain or Repeat calls those); an
  /// empty tensor (the default) means the loss does not depend on the log-det.
  void set_log_det_grad(tensor_type g) { log_det_grad_ = std::move(g); }
  const tensor_type& log_det_grad() const { return log_det_grad_; }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    s_.for_each_parameter(v, join_name(prefix, "s"));
    t_.for_each_parameter(v, join_name(prefix, "t"));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    s_.for_each_buffer(v, join_name(prefix, "s"));
    t_.for_each_buffer(v, join_name(prefix, "t"));
  }
  /// Calls v on s and t (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    v(s_);
    v(t_);
  }

  S& s() { return s_; }
  T& t() { return t_; }
  const Scale& scale() const { return scale_; }

 private:
  // (x1, x2) of the layout, as fresh tensors.
  std::array<tensor_type, 2> unpack(const tensor_type& x, const char* what) const {
    return detail::split_halves<Layout>(x, half_channels, "rev::Affine<S,T>", what);
  }
  tensor_type pack(const tensor_type& a1, const tensor_type& a2) const { return detail::join_halves<Layout>(a1, a2); }
  static void check_inner(const tensor_type& raw, const tensor_type& t, const tensor_type& x2) {
    check<shape_error>(raw.shape() == x2.shape(), "rev::Affine<S,T>: S(x1) has extents ", raw.shape(), ", expected ",
                       x2.shape(), " (those of x2)");
    check<shape_error>(t.shape() == x2.shape(), "rev::Affine<S,T>: T(x1) has extents ", t.shape(), ", expected ",
                       x2.shape(), " (those of x2)");
  }
  void check_gradient(const tensor_type& dy2, const tensor_type& x2, const tensor_type* dlog_det) const {
    check<shape_error>(dy2.shape() == x2.shape(), "rev::Affine<S,T>: output gradient's half has extents ", dy2.shape(),
                       ", expected ", x2.shape());
    const tensor_type* g = log_det_gradient(dlog_det);
    check<shape_error>(!g || g->shape() == Shape{x2.size(0)}, "rev::Affine<S,T>: log-det gradient has extents ",
                       g ? g->shape() : Shape{}, ", expected [", x2.size(0), "]");
  }
  const tensor_type* log_det_gradient(const tensor_type* explicit_grad) const {
    if (explicit_grad) return explicit_grad;
    return log_det_grad_.empty() ? nullptr : &log_det_grad_;
  }

  S s_;
  T t_;
  Scale scale_;
  tensor_type last_log_det_;
  tensor_type log_det_grad_;
};

}  // namespace rev
