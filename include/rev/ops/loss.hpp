// Cross-entropy of logits against class indices, with PyTorch's label smoothing: the target
// distribution of a sample of class t over K classes is q_k = (1 - s) [k = t] + s / K, and
//
//   loss = mean_n sum_k -q_k log softmax(z_n)_k = mean_n (lse(z_n) - (1 - s) z_{n,t} - s/K sum_k z_{n,k}).
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "rev/core/device.hpp"
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

}  // namespace detail

/// Mean cross-entropy of logits [N, K] against class indices targets[n] in [0, K), with label
/// smoothing s in [0, 1]. Throws rev::value_error if the loss is not finite.
template <Scalar T, class B>
double cross_entropy(const Tensor<T, B>& logits, std::span<const int> targets, double label_smoothing = 0) {
  return kernels<B>::cross_entropy(logits, targets, label_smoothing);
}

/// Gradient of dloss * cross_entropy(logits, targets, s) with respect to the logits:
///   dz_{n,k} = dloss / N * (softmax(z_n)_k - q_{n,k}).
template <Scalar T, class B>
Tensor<T, B> cross_entropy_backward(const Tensor<T, B>& logits, std::span<const int> targets,
                                    double label_smoothing = 0, double dloss = 1) {
  return kernels<B>::cross_entropy_backward(logits, targets, label_smoothing, dloss);
}

namespace detail {
template <Scalar T, class B>
void bce_check(const char* who, const Tensor<T, B>& logits, const Tensor<T, B>& target) {
  check<shape_error>(logits.shape() == target.shape(), who, ": logits have extents ", logits.shape(), ", the target ",
                     target.shape(), "; they must be equal");
  check<shape_error>(logits.numel() > 0, who, ": empty logits");
}
}  // namespace detail

/// Mean binary cross-entropy of logits z against targets t in [0, 1] (PyTorch's
/// BCEWithLogitsLoss, mean over every element): mean(max(z, 0) - z t + log(1 + exp(-|z|))).
/// Throws rev::value_error if the loss is not finite.
template <Scalar T, class B>
double bce_with_logits(const Tensor<T, B>& logits, const Tensor<T, B>& target) {
  return kernels<B>::bce_with_logits(logits, target);
}

/// Gradient of dloss * bce_with_logits(z, t) with respect to z: dloss (sigmoid(z) - t) / numel.
template <Scalar T, class B>
Tensor<T, B> bce_with_logits_backward(const Tensor<T, B>& logits, const Tensor<T, B>& target, double dloss = 1) {
  return kernels<B>::bce_with_logits_backward(logits, target, dloss);
}

}  // namespace rev::ops
