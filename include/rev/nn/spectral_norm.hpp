// SNConv2d: a convolution whose weight is spectrally normalised as in i-ResNet / RevUp:
//
//   W_eff = W / max(1, sigma / c),   sigma ~ ||W||_2 of the convolution as a LINEAR OPERATOR on
//                                    the layer's real feature map [1, In, H, W]
//
// so that Lip(x -> conv(x; W_eff)) <= c (c = coeff, default 0.9), once the estimate has converged.
//
// sigma is estimated by power iteration with persistent vectors (Miyato et al. 2018, Algorithm 1):
//   v in R^{1 x In x H x W} and u in R^{1 x Out x Ho x Wo}, unit norm, kept between steps;
//   one step per train-phase forward:  v <- normalise(W^T u),  u <- normalise(W v);
//   sigma = <u, W v>, and the gradient flows through sigma into W (u, v held constant).
// W is the convolution with the layer's stride, padding, dilation and groups; W^T is its adjoint,
// the input gradient of the convolution (ops::conv2d_backward), which is exact for any stride
// (no output_padding to get right).
//
// How the spec's pitfalls are handled:
//   1. reshaped matrix != operator: the norm is taken of the operator on the real feature map,
//      never of the C_out x (C_in k k) matrix (the two differ by tens of per cent for 3x3 convs).
//   2. one step from a fresh vector under-estimates sigma (~0.76 of the truth): the vectors
//      persist, so the estimate converges over training steps. A freshly built layer needs a few
//      steps (0.90 / 0.97 / 0.999 of the truth after 5 / 10 / 30 in the spec's measurement); call
//      power_iterations(k) to warm up (e.g. after initialising or loading weights).
//   3. zero weights kill the vectors (W^T u = 0): a vector whose norm falls below collapse_eps (or
//      is not finite) is re-drawn from the generator (Gaussian, normalised), and normalisation is
//      skipped while sigma = 0 (W = 0). When W later becomes non-zero, the iteration resumes from
//      the re-drawn vector.
//   4. the norm depends on the spatial size: the vectors are allocated lazily by the first forward
//      from its real input extents, and re-made (re-drawn) when a TRAIN-phase forward sees another
//      spatial size. Eval and recompute forwards never re-make them: at another resolution they
//      keep using the vectors of the training size as a probe (the zero-padded norm grows slowly
//      with the size, <= 0.2 % above 32x32 in the spec's measurement).
//
// Phases (core/layer.hpp):
//   train      one power step (unless update_vectors is false), then sigma and W_eff from the
//              updated vectors; W_eff, sigma, u, v are kept in the layer and in ctx.replay (the
//              tape's replay record) when there is one;
//   recompute  the W_eff, sigma, u, v kept in ctx.replay, else those of the layer's last train
//              forward, bit for bit (nothing is updated); without either, as eval;
//   eval       sigma from the current vectors and W, nothing updated.
//
// Names: parameters "weight_orig" (W, [Out, In/groups, k, k]) and, with bias, "bias"; buffers
// "weight_u" (u) and "weight_v" (v), as PyTorch's spectral_norm and i-ResNet's conv version
// name them. The buffers are empty until the first forward or prepare(h, w): call prepare before
// loading saved buffers into a fresh layer.
#pragma once

#include <cmath>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/core/rng.hpp"
#include "rev/cpu.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/init.hpp"
#include "rev/ops/conv2d.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev::nn {

template <int In, int Out, conv_opts O = conv_opts{}, Scalar T = float, class B = cpu>
class SNConv2d : public layer_types<T, B> {
  static_assert(std::same_as<B, cpu>,
                "rev::nn::SNConv2d<In,Out,opts>: CPU-only for now (its power iteration and weight gradient loop over "
                "host memory); use rev::cpu");

 public:
  template <Scalar T2, class B2>
  using rebind = SNConv2d<In, Out, O, T2, B2>;
  using conv_type = Conv2d<In, Out, O, T, B>;  // also checks the options
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_channels = In, out_channels = Out;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr conv_opts opts = O;
  static constexpr ops::conv2d_params params = conv_type::params;
  /// A power-iteration vector whose norm is below this (or not finite) is re-drawn.
  static constexpr double collapse_eps = 1e-30;

  /// The normalisation one forward used: W_eff = W / factor, factor = max(1, sigma / coeff).
  struct normalisation {
    tensor_type w_eff;
    tensor_type u, v;   // the vectors sigma was taken with (constants of the sigma path)
    double sigma = 0;   // <u, W v>
    double factor = 1;  // 1: W_eff = W, no gradient through sigma
    bool active() const { return factor > 1; }
  };

  struct cache {
    tensor_type x;
    normalisation n;
  };

  param_type weight;  // W, the un-normalised weight ("weight_orig")
  param_type bias;    // [Out] with O.bias, else empty
  /// c: the bound on the normalised operator norm. Must be positive.
  double coeff = 0.9;
  /// false: train-phase forwards do no power step (sigma from the current vectors, as in eval,
  /// but kept for recompute). For finite-difference checks and frozen estimates.
  bool update_vectors = true;

  /// PyTorch's default Conv2d initialisation drawn from g, and coefficient c.
  explicit SNConv2d(Generator& g = default_generator(), double c = 0.9) : SNConv2d(conv_type(g), c) {}
  /// Spectral normalisation of an existing convolution's weight (and bias).
  explicit SNConv2d(conv_type conv, double c = 0.9)
      : weight(std::move(conv.weight)), bias(std::move(conv.bias)), coeff(c) {}

  /// "rev::nn::SNConv2d<In,Out>", the prefix of this layer's error messages.
  static std::string name() { return "rev::nn::SNConv2d<" + std::to_string(In) + "," + std::to_string(Out) + ">"; }

  tensor_type forward(const tensor_type& x, context& ctx) {
    check_input(x);
    const normalisation n = normalise(x, ctx);
    return ops::conv2d(x, n.w_eff, O.bias ? &bias.value : nullptr, params);
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    check_input(x);
    c.n = normalise(x, ctx);
    c.x = x;
    return ops::conv2d(x, c.n.w_eff, O.bias ? &bias.value : nullptr, params);
  }

  /// Returns dL/dx and adds dL/dW (through W_eff, including the path through sigma) and dL/dbias.
  ///   W_eff = c W / sigma  =>  dL/dW = G / factor - (<G, W_eff> / sigma) dsigma/dW,
  /// G = dL/dW_eff, dsigma/dW = the convolution's weight gradient at input v and output gradient u.
  tensor_type backward(cache& c, const tensor_type& dy) {
    const normalisation& n = c.n;
    tensor_type* db = O.bias ? &bias.grad : nullptr;
    if (!n.active()) return ops::conv2d_backward(c.x, n.w_eff, dy, params, &weight.grad, db);
    tensor_type gw(weight.shape());
    tensor_type dx = ops::conv2d_backward(c.x, n.w_eff, dy, params, &gw, db);
    tensor_type ds(weight.shape());
    ops::conv2d_backward(n.v, n.w_eff, n.u, params, &ds, nullptr, /*need_dx=*/false);
    const double k = ops::dot(gw, n.w_eff) / n.sigma, inv = 1.0 / n.factor;
    T* g = weight.grad.data();
    for (index_t i = 0; i < gw.numel(); ++i) g[i] += static_cast<T>(inv * gw.data()[i] - k * ds.data()[i]);
    return dx;
  }

  /// Allocates u and v for inputs of spatial size h x w (re-drawn from g if their size differs;
  /// a no-op if it is the same). Use before loading saved vectors or warming up a fresh layer.
  void prepare(index_t h, index_t w, Generator& g = default_generator()) {
    check<shape_error>(h >= 1 && w >= 1, name(), ": prepare(", h, ", ", w, "): the spatial size must be positive");
    const Shape vs{1, In, h, w};
    if (v_.shape() == vs && !u_.empty()) return;
    v_ = random_unit(vs, g);
    u_ = unit_or_redrawn(ops::conv2d(v_, weight.value, nullptr, params), g);
    kept_valid_ = false;
  }

  /// k power steps on the current weight (warm-up after initialising, loading or a size change).
  /// Needs the vectors: a forward or prepare(h, w) must have run. Returns the estimate of sigma.
  double power_iterations(int k, Generator& g = default_generator()) {
    check<value_error>(!v_.empty(), name(),
                       ": power_iterations needs the power-iteration vectors; run a forward or prepare(h, w) first");
    check<value_error>(k >= 0, name(), ": power_iterations(", k, "): k must not be negative");
    for (int i = 0; i < k; ++i) {
      const tensor_type wv = power_step(g);
      sigma_ = ops::dot(u_, wv);
    }
    factor_ = factor_of(sigma_);
    return sigma_;
  }

  /// The estimate of ||W||_2 used by the latest forward (or power_iterations). It converges to
  /// the operator norm from below; 0 before the first forward.
  double sigma() const { return sigma_; }
  /// The estimated operator norm of W_eff (Lipschitz constant of the convolution): sigma / factor
  /// = min(sigma, coeff) after normalisation. An under-estimate until the power iteration converged.
  double lipschitz_bound() const { return sigma_ / factor_; }
  /// W_eff = W / max(1, sigma() / coeff), a new tensor.
  tensor_type effective_weight() const { return scaled(weight.value, factor_of(sigma_)); }
  /// The vectors u [1, Out, Ho, Wo] and v [1, In, H, W] (empty before the first forward/prepare).
  const tensor_type& u() const { return u_; }
  const tensor_type& v() const { return v_; }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight_orig"), weight);
    if constexpr (O.bias) f(join_name(prefix, "bias"), bias);
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight_u"), u_);
    f(join_name(prefix, "weight_v"), v_);
  }

 private:
  static void check_input(const tensor_type& x) {
    if (x.rank() != 4) expect_rank(x, 4, name().c_str());
    check<shape_error>(x.size(1) == In, name(), ": input has ", x.size(1), " channels, expected ", In, " (input ",
                       x.shape(), ")");
  }

  double factor_of(double sigma) const { return std::isfinite(sigma) && sigma > coeff ? sigma / coeff : 1.0; }

  static tensor_type scaled(const tensor_type& w, double factor) {
    if (factor == 1.0) return w.clone();
    const T s = static_cast<T>(1.0 / factor);
    return ops::map(w, [s](T a) { return a * s; });
  }

  // A Gaussian vector of the given extents, normalised (uniformly distributed direction).
  static tensor_type random_unit(const Shape& shape, Generator& g) {
    for (;;) {
      tensor_type t = tensor_type::uninitialized(shape);
      init::normal(t, 0.0, 1.0, g);
      const double n = std::sqrt(ops::dot(t, t));
      if (n >= collapse_eps && std::isfinite(n)) {
        ops::scale_(t, static_cast<T>(1.0 / n));
        return t;
      }
    }
  }

  // t / ||t||, or a fresh random unit vector when t has collapsed (pitfall 3).
  static tensor_type unit_or_redrawn(const tensor_type& t, Generator& g) {
    const double n = std::sqrt(ops::dot(t, t));
    if (!(n >= collapse_eps) || !std::isfinite(n)) return random_unit(t.shape(), g);
    const T s = static_cast<T>(1.0 / n);
    return ops::map(t, [s](T a) { return a * s; });
  }

  // v <- normalise(W^T u), u <- normalise(W v). Returns W v for the new v (sigma = <u, W v>).
  // The vectors are replaced by new tensors, so normalisations handed out before stay intact.
  tensor_type power_step(Generator& g) {
    v_ = unit_or_redrawn(ops::conv2d_backward(v_, weight.value, u_, params, nullptr, nullptr), g);
    tensor_type wv = ops::conv2d(v_, weight.value, nullptr, params);
    u_ = unit_or_redrawn(wv, g);
    return wv;
  }

  normalisation measure(const tensor_type& wv, bool own_weight) {
    normalisation n;
    n.u = u_;
    n.v = v_;
    n.sigma = ops::dot(u_, wv);
    n.factor = factor_of(n.sigma);
    n.w_eff = n.active() || own_weight ? scaled(weight.value, n.factor) : weight.value;
    sigma_ = n.sigma;
    factor_ = n.factor;
    return n;
  }

  normalisation normalise(const tensor_type& x, context& ctx) {
    check<value_error>(coeff > 0 && std::isfinite(coeff), name(), ": coeff = ", coeff, " must be positive");
    Generator& g = ctx.rng ? *ctx.rng : default_generator();
    switch (ctx.mode) {
      case phase::train: {
        prepare(x.size(2), x.size(3), g);
        const tensor_type wv = update_vectors ? power_step(g) : ops::conv2d(v_, weight.value, nullptr, params);
        kept_ = measure(wv, /*own_weight=*/true);  // a copy: recompute sees this W_eff even if W moves
        kept_valid_ = true;
        if (ctx.replay) ctx.replay->put(this, kept_);
        return kept_;
      }
      case phase::recompute:
        if (const normalisation* n = ctx.replay ? ctx.replay->find<normalisation>(this) : nullptr) {
          sigma_ = n->sigma;
          factor_ = n->factor;
          return *n;
        }
        if (kept_valid_) {
          sigma_ = kept_.sigma;
          factor_ = kept_.factor;
          return kept_;
        }
        break;
      case phase::eval: break;
    }
    if (v_.empty()) prepare(x.size(2), x.size(3), g);
    return measure(ops::conv2d(v_, weight.value, nullptr, params), /*own_weight=*/false);
  }

  tensor_type u_, v_;
  normalisation kept_;  // of the last train-phase forward
  bool kept_valid_ = false;
  double sigma_ = 0, factor_ = 1;
};

}  // namespace rev::nn
