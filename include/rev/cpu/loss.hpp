// Cross-entropy of logits against class indices, with PyTorch's label smoothing: the target
// distribution of a sample of class t over K classes is q_k = (1 - s) [k = t] + s / K, and
//
//   loss = mean_n sum_k -q_k log softmax(z_n)_k = mean_n (lse(z_n) - (1 - s) z_{n,t} - s/K sum_k z_{n,k}).
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

template <Scalar T, class B>
void ce_check(const char* who, const Tensor<T, B>& logits, std::span<const int> targets, double label_smoothing) {
  check<shape_error>(logits.rank() == 2, who, ": logits have rank ", logits.rank(), " (extents ", logits.shape(),
                     "), expected rank 2 [N, K]");
  const index_t N = logits.size(0), K = logits.size(1);
  check<shape_error>(N > 0 && K > 0, who, ": logits have extents ", logits.shape(), ", expected N > 0 and K > 0");
  check<shape_error>(static_cast<index_t>(targets.size()) == N, who, ": ", targets.size(), " targets for logits ",
                     logits.shape(), ", expected ", N);
  check<value_error>(label_smoothing >= 0 && label_smoothing <= 1, who, ": label_smoothing must be in [0, 1], got ",
                     label_smoothing);
  for (std::size_t i = 0; i < targets.size(); ++i)
    check<value_error>(targets[i] >= 0 && targets[i] < K, who, ": target ", targets[i], " of sample ", i,
                       " is out of range [0, ", K, ")");
}

// The mean of the per-sample losses, summed in sample order; a non-finite one is an error naming
// its sample (every backend's cross_entropy ends here).
inline double ce_mean(std::span<const double> per_sample, const char* who) {
  double loss = 0;
  for (std::size_t n = 0; n < per_sample.size(); ++n) {
    check<value_error>(std::isfinite(per_sample[n]), who, ": the loss of sample ", n,
                       " is not finite; its logits hold an infinity or a NaN");
    loss += per_sample[n];
  }
  return loss / static_cast<double>(per_sample.size());
}

// log sum_k exp(z_k), in double.
template <Scalar T>
double ce_logsumexp(const T* z, index_t K) {
  const double m = static_cast<double>(*std::max_element(z, z + K));
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (index_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(z[k]) - m);
  return m + std::log(s);
}

}  // namespace detail

/// Mean cross-entropy of logits [N, K] against class indices targets[n] in [0, K), with label
/// smoothing s in [0, 1]. Throws rev::value_error if the loss is not finite.
template <Scalar T>
double cross_entropy(const Tensor<T>& logits, std::span<const int> targets, double label_smoothing = 0) {
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

/// Gradient of dloss * cross_entropy(logits, targets, s) with respect to the logits:
///   dz_{n,k} = dloss / N * (softmax(z_n)_k - q_{n,k}).
template <Scalar T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, std::span<const int> targets, double label_smoothing = 0,
                                 double dloss = 1) {
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

}  // namespace rev::ops
