// Element-wise invertible merges g(x, f) for the RevSilo (RevBiFPN eqs. 3 and 4): how a level x
// and the sum f of the transforms that feed it combine into the level's output.
//
//   combine(x, f) -> z        separate(z, f) -> x        backward(x, f, dz) -> {dx, df}
//   transform_channels(c): the channels f must have for a level of c channels.
#pragma once

#include <cmath>
#include <numbers>
#include <utility>

#include "rev/core/tensor.hpp"
#include "rev/coupling/affine_scale.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// z = x + f (RevBiFPN's choice).
struct additive_merge {
  static constexpr bool creates_levels = true;  // a level with no input is z = f
  static constexpr bool needs_inputs = false;   // backward does not read x or f
  static constexpr int transform_channels(int c) { return c; }

  template <class T, class B>
  static Tensor<T, B> combine(const Tensor<T, B>& x, const Tensor<T, B>& f) {
    return ops::add(x, f);
  }
  template <class T, class B>
  static Tensor<T, B> separate(const Tensor<T, B>& z, const Tensor<T, B>& f) {
    return ops::sub(z, f);
  }
  template <class T, class B>
  static std::pair<Tensor<T, B>, Tensor<T, B>> backward(const Tensor<T, B>&, const Tensor<T, B>&,
                                                        const Tensor<T, B>& dz) {
    return {dz, dz};
  }
};

/// z = x * exp(s) + t with f = [s_raw | t] (2c channels) and the soft clamp
/// s = alpha * (2/pi) * atan(s_raw / alpha), |s| < alpha (RealNVP-style affine coupling).
template <int Alpha = 2>
struct affine_merge {
  static constexpr bool creates_levels = false;
  static constexpr bool needs_inputs = true;
  static constexpr int transform_channels(int c) { return c < 0 ? c : 2 * c; }
  static constexpr double alpha = Alpha;

  inline static const affine_scale::exp_clamped clamp{alpha};
  static double log_scale(double raw) { return clamp.log_scale(raw); }
  static double dlog_scale(double raw) { return clamp.dlog_scale(raw); }

  template <class T>
  static Tensor<T> combine(const Tensor<T>& x, const Tensor<T>& f) {
    auto [s, t] = halves(f, x);
    return ops::zip(ops::zip(x, s, [](T v, T r) { return static_cast<T>(v * std::exp(log_scale(r))); }), t,
                    [](T v, T b) { return v + b; });
  }
  template <class T>
  static Tensor<T> separate(const Tensor<T>& z, const Tensor<T>& f) {
    auto [s, t] = halves(f, z);
    return ops::zip(ops::sub(z, t), s, [](T v, T r) { return static_cast<T>(v * std::exp(-log_scale(r))); });
  }
  template <class T>
  static std::pair<Tensor<T>, Tensor<T>> backward(const Tensor<T>& x, const Tensor<T>& f, const Tensor<T>& dz) {
    auto [s, t] = halves(f, x);
    Tensor<T> dx = ops::zip(dz, s, [](T g, T r) { return static_cast<T>(g * std::exp(log_scale(r))); });
    Tensor<T> ds = ops::zip(ops::mul(dz, x), s,
                            [](T g, T r) { return static_cast<T>(g * std::exp(log_scale(r)) * dlog_scale(r)); });
    const Tensor<T> parts[] = {ds, dz};
    return {dx, ops::concat_channels(parts)};
  }

 private:
  template <class T>
  static std::pair<Tensor<T>, Tensor<T>> halves(const Tensor<T>& f, const Tensor<T>& level) {
    check<shape_error>(f.rank() == 4 && level.rank() == 4 && f.size(1) == 2 * level.size(1),
                       "rev::affine_merge: transform output has extents ", f.shape(),
                       ", expected twice the channels of ", level.shape());
    const index_t sizes[] = {level.size(1), level.size(1)};
    auto parts = ops::split_channels(f, sizes);
    return {parts[0], parts[1]};
  }
};

}  // namespace rev
