// The CPU kernels of rev/ops/loss.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/loss.hpp"

namespace rev::ops::detail {

// log sum_k exp(z_k), in double.
template <Scalar T>
double ce_logsumexp(const T* z, index_t K) {
  const double m = static_cast<double>(*std::max_element(z, z + K));
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (index_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(z[k]) - m);
  return m + std::log(s);
}

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct loss_kernels {
  template <Scalar T>
  static double cross_entropy(const Tensor<T>& logits, std::span<const int> targets, double label_smoothing) {
    constexpr const char* who = "rev::ops::cross_entropy";
    detail::ce_check(who, logits, targets, label_smoothing);
    const index_t N = logits.size(0), K = logits.size(1);
    std::vector<double> per_sample(static_cast<std::size_t>(N));
    parallel_for(N, std::max<index_t>(1, (index_t{1} << 13) / K), [&](index_t b, index_t e) {
      for (index_t n = b; n < e; ++n) {
        const T* z = logits.data() + n * K;
        double sum = 0;
        for (index_t k = 0; k < K; ++k) sum += static_cast<double>(z[k]);
        const double zt = static_cast<double>(z[targets[static_cast<std::size_t>(n)]]);
        per_sample[static_cast<std::size_t>(n)] =
            detail::ce_logsumexp(z, K) - (1 - label_smoothing) * zt - label_smoothing / static_cast<double>(K) * sum;
      }
    });
    return detail::ce_mean(per_sample, who);
  }

  template <Scalar T>
  static Tensor<T> cross_entropy_backward(const Tensor<T>& logits, std::span<const int> targets, double label_smoothing,
                                          double dloss) {
    detail::ce_check("rev::ops::cross_entropy_backward", logits, targets, label_smoothing);
    const index_t N = logits.size(0), K = logits.size(1);
    Tensor<T> dz = Tensor<T>::uninitialized(logits.shape());
    const double scale = dloss / static_cast<double>(N), uniform = label_smoothing / static_cast<double>(K);
    parallel_for(N, std::max<index_t>(1, (index_t{1} << 13) / K), [&](index_t b, index_t e) {
      for (index_t n = b; n < e; ++n) {
        const T* z = logits.data() + n * K;
        T* d = dz.data() + n * K;
        const double lse = detail::ce_logsumexp(z, K);
        const index_t t = targets[static_cast<std::size_t>(n)];
        for (index_t k = 0; k < K; ++k) {
          const double q = uniform + (k == t ? 1 - label_smoothing : 0.0);
          d[k] = static_cast<T>(scale * (std::exp(static_cast<double>(z[k]) - lse) - q));
        }
      }
    });
    return dz;
  }

  template <Scalar T>
  static double bce_with_logits(const Tensor<T>& logits, const Tensor<T>& target) {
    constexpr const char* who = "rev::ops::bce_with_logits";
    detail::bce_check(who, logits, target);
    const T* z = logits.data();
    const T* t = target.data();
    double sum = 0;
    for (index_t i = 0; i < logits.numel(); ++i) {
      const double zi = z[i];
      sum += std::max(zi, 0.0) - zi * static_cast<double>(t[i]) + std::log1p(std::exp(-std::abs(zi)));
    }
    check<value_error>(std::isfinite(sum), who,
                       ": the loss is not finite; the logits or targets hold an infinity or a NaN");
    return sum / static_cast<double>(logits.numel());
  }

  template <Scalar T>
  static Tensor<T> bce_with_logits_backward(const Tensor<T>& logits, const Tensor<T>& target, double dloss) {
    detail::bce_check("rev::ops::bce_with_logits_backward", logits, target);
    Tensor<T> dz = Tensor<T>::uninitialized(logits.shape());
    const double scale = dloss / static_cast<double>(logits.numel());
    const T* z = logits.data();
    const T* t = target.data();
    T* d = dz.data();
    for (index_t i = 0; i < logits.numel(); ++i)
      d[i] = static_cast<T>(scale * (1 / (1 + std::exp(-static_cast<double>(z[i]))) - static_cast<double>(t[i])));
    return dz;
  }
};

}  // namespace rev::ops::host
