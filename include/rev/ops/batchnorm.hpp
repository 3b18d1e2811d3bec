// Batch normalisation of NCHW maps over (N, H, W) per channel (Ioffe & Szegedy 2015, with
// PyTorch's conventions: biased variance for normalising, unbiased for the running variance).
//
//   y = (x - mean_c) * invstd_c * weight_c + bias_c,   invstd_c = 1 / sqrt(var_c + eps)
//
// Statistics are accumulated in double over shifted data (sums of x - k and (x - k)^2 with k a
// value of the channel), on every backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

/// Per-channel statistics [C]: mean and invstd = 1 / sqrt(biased variance + eps); batch_norm_train
/// also sets var, the biased variance itself, which the running update reads (rebuilt from a
/// float invstd as 1 / invstd^2 - eps it would lose the variance when that is small against eps).
template <Scalar T, class B = cpu>
struct batch_stats {
  Tensor<T, B> mean, invstd;
  Tensor<T, B> var = {};  // (a default, so that {mean, invstd} is a complete initialiser)
};

namespace detail {

// An NCHW map seen per channel: channel c is N runs of HW contiguous values.
struct bn_layout {
  index_t N, C, HW;
  index_t count() const { return N * HW; }
  index_t offset(index_t n, index_t c) const { return (n * C + c) * HW; }
};

inline bn_layout bn_layout_of(const char* who, const Shape& xs) {
  check<shape_error>(xs.rank() == 4, who, ": input has rank ", xs.rank(), " (extents ", xs,
                     "), expected rank 4 [N, C, H, W]");
  return {xs[0], xs[1], xs[2] * xs[3]};
}

// The checks read extents only, so every backend shares them.
template <Scalar T, class B>
bn_layout bn_check_inputs(const char* who, const Tensor<T, B>& x, const Tensor<T, B>& weight,
                          std::type_identity_t<const Tensor<T, B>*> bias) {
  const bn_layout l = bn_layout_of(who, x.shape());
  expect_shape(weight, Shape{l.C}, who, "weight");
  if (bias) expect_shape(*bias, Shape{l.C}, who, "bias");
  return l;
}

template <Scalar T, class B>
void bn_check_stats(const char* who, const bn_layout& l, const batch_stats<T, B>& s) {
  expect_shape(s.mean, Shape{l.C}, who, "stats.mean");
  expect_shape(s.invstd, Shape{l.C}, who, "stats.invstd");
}

template <Scalar T, class B>
void bn_check_grads(const char* who, const bn_layout& l, const Tensor<T, B>* dweight, const Tensor<T, B>* dbias) {
  if (dweight) expect_shape(*dweight, Shape{l.C}, who, "dweight");
  if (dbias) expect_shape(*dbias, Shape{l.C}, who, "dbias");
}

// The arguments of batch_norm_update_running; returns the channel count C.
template <Scalar T, class B>
index_t bn_check_running(const char* who, const Tensor<T, B>& running_mean, const Tensor<T, B>& running_var,
                         const batch_stats<T, B>& s, index_t n) {
  const index_t C = s.mean.numel();
  check<shape_error>(s.mean.rank() == 1, who, ": stats.mean has extents ", s.mean.shape(), ", expected rank 1");
  expect_shape(s.invstd, Shape{C}, who, "stats.invstd");
  check<value_error>(!s.var.empty(), who,
                     ": stats.var is empty; the running update needs the statistics of "
                     "batch_norm_train, which sets it");
  expect_shape(s.var, Shape{C}, who, "stats.var");
  expect_shape(running_mean, Shape{C}, who, "running_mean");
  expect_shape(running_var, Shape{C}, who, "running_var");
  check<value_error>(n > 1, who, ": the unbiased variance needs more than 1 value per channel, got n = ", n);
  return C;
}

// y = (x - mean) * scale + bias over channel c, scale = weight * invstd. Train and apply share
// it, so a recomputation with the kept statistics reproduces the train output bit for bit.
template <Scalar T>
void bn_normalise_channel(const bn_layout& l, index_t c, const T* x, T* y, T mean, T invstd, T weight, T bias) {
  const T scale = static_cast<T>(static_cast<double>(weight) * static_cast<double>(invstd));
  for (index_t n = 0; n < l.N; ++n) {
    const T* px = x + l.offset(n, c);
    T* py = y + l.offset(n, c);
    for (index_t i = 0; i < l.HW; ++i) py[i] = (px[i] - mean) * scale + bias;
  }
}

}  // namespace detail

/// Train mode: the batch statistics of x (biased variance) into `stats`, and x normalised with
/// them. x [N, C, H, W]; weight, bias [C]. Needs more than one value per channel.
template <Scalar T, class B>
Tensor<T, B> batch_norm_train(const Tensor<T, B>& x, const Tensor<T, B>& weight, const Tensor<T, B>& bias, double eps,
                              batch_stats<T, B>& stats) {
  return kernels<B>::batch_norm_train(x, weight, bias, eps, stats);
}

/// x normalised with the given statistics (eval: from the running statistics; recompute: the
/// kept batch statistics).
template <Scalar T, class B>
Tensor<T, B> batch_norm_apply(const Tensor<T, B>& x, const Tensor<T, B>& weight, const Tensor<T, B>& bias,
                              const batch_stats<T, B>& stats) {
  return kernels<B>::batch_norm_apply(x, weight, bias, stats);
}

/// Backward of batch_norm_train: the statistics are functions of x, so with xhat = (x - mean) * invstd
///   dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
///   dweight += sum(dy * xhat),  dbias += sum(dy)   (means and sums over N, H, W).
template <Scalar T, class B>
Tensor<T, B> batch_norm_backward_train(const Tensor<T, B>& x, const Tensor<T, B>& weight,
                                       const batch_stats<T, B>& stats, const Tensor<T, B>& dy,
                                       std::type_identity_t<Tensor<T, B>*> dweight,
                                       std::type_identity_t<Tensor<T, B>*> dbias) {
  return kernels<B>::batch_norm_backward_train(x, weight, stats, dy, dweight, dbias);
}

/// Backward with constant statistics (eval mode):
///   dx = dy * weight * invstd,  dweight += sum(dy * xhat),  dbias += sum(dy).
template <Scalar T, class B>
Tensor<T, B> batch_norm_backward_eval(const Tensor<T, B>& x, const Tensor<T, B>& weight, const batch_stats<T, B>& stats,
                                      const Tensor<T, B>& dy, std::type_identity_t<Tensor<T, B>*> dweight,
                                      std::type_identity_t<Tensor<T, B>*> dbias) {
  return kernels<B>::batch_norm_backward_eval(x, weight, stats, dy, dweight, dbias);
}

/// running = (1 - momentum) * running + momentum * batch, where the batch variance is the
/// unbiased one, stats.var * n / (n - 1) (PyTorch's BatchNorm2d).
/// n = N * H * W, the number of values per channel the statistics came from.
template <Scalar T, class B>
void batch_norm_update_running(Tensor<T, B>& running_mean, Tensor<T, B>& running_var, const batch_stats<T, B>& stats,
                               index_t n, double momentum) {
  return kernels<B>::batch_norm_update_running(running_mean, running_var, stats, n, momentum);
}

}  // namespace rev::ops
