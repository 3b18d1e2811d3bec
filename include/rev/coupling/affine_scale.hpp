// The scale policies of affine couplings: rev::Affine's scale and the soft clamp of the RevSilo's
// affine merge (rev::affine_merge) are one implementation.
#pragma once

#include <cmath>
#include <numbers>

#include "rev/core/errors.hpp"

namespace rev {

/// Scale policies of rev::Affine: log_scale(raw) = log scale, scale(raw, log_scale) = scale and
/// dlog_scale(raw) = d log scale / d raw, for float and double.
namespace affine_scale {

/// scale = exp(raw) (RealNVP, unclamped). float32 loses invertibility for raw below about -5
/// and overflows for raw above 88.
struct exp {
  template <class V>
  V log_scale(V raw) const {
    return raw;
  }
  template <class V>
  V scale(V, V log_scale) const {
    return std::exp(log_scale);
  }
  template <class V>
  V dlog_scale(V) const {
    return V(1);
  }
};

/// scale = exp(s), s = α (2/π) atan(raw / α): the soft clamp |s| < α of FrEIA.
struct exp_clamped {
  double alpha = 2;

  exp_clamped() = default;
  explicit exp_clamped(double a) : alpha(a) {
    check<value_error>(std::isfinite(a) && a > 0,
                       "rev::affine_scale::exp_clamped: alpha must be positive and finite, got ", a);
  }
  template <class V>
  V log_scale(V raw) const {
    const V a = static_cast<V>(alpha);
    return a * std::numbers::inv_pi_v<V> * V(2) * std::atan(raw / a);
  }
  template <class V>
  V scale(V, V log_scale) const {
    return std::exp(log_scale);
  }
  // ds/draw = (2/π) / (1 + (raw/α)²)
  template <class V>
  V dlog_scale(V raw) const {
    const V u = raw / static_cast<V>(alpha);
    return V(2) * std::numbers::inv_pi_v<V> / (V(1) + u * u);
  }
};

/// scale = sigmoid(raw + 2) (Glow): scale < 1, and 0.88 at raw = 0.
struct sigmoid {
  // log sigmoid(z) = -log(1 + exp(-z)), evaluated without overflow.
  template <class V>
  V log_scale(V raw) const {
    const V z = raw + V(2);
    return z >= V(0) ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z));
  }
  template <class V>
  V scale(V raw, V) const {
    const V z = raw + V(2);
    return z >= V(0) ? V(1) / (V(1) + std::exp(-z)) : std::exp(z) / (V(1) + std::exp(z));
  }
  // d log sigmoid(z) / dz = 1 - sigmoid(z) = sigmoid(-z)
  template <class V>
  V dlog_scale(V raw) const {
    const V z = raw + V(2);
    return z >= V(0) ? std::exp(-z) / (V(1) + std::exp(-z)) : V(1) / (V(1) + std::exp(z));
  }
};

}  // namespace affine_scale

}  // namespace rev
