// Batch normalisation of NCHW maps over (N, H, W) per channel (Ioffe & Szegedy 2015, with
// PyTorch's conventions: biased variance for normalising, unbiased for the running variance).
//
//   y = (x - mean_c) * invstd_c * weight_c + bias_c,   invstd_c = 1 / sqrt(var_c + eps)
//
// Statistics are accumulated in double in a single pass over shifted data (sums of x - k and
// (x - k)^2 with k a value of the channel, cpu/moments.hpp); every op runs in parallel over
// channels.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "rev/core/errors.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/moments.hpp"

namespace rev::ops {

/// Per-channel statistics [C]: mean and invstd = 1 / sqrt(biased variance + eps).
template <Scalar T, class B = cpu>
struct batch_stats {
  Tensor<T, B> mean, invstd;
};

namespace detail {

// An NCHW map seen per channel: channel c is N runs of HW contiguous values.
struct bn_layout {
  index_t N, C, HW;
  index_t count() const { return N * HW; }
  index_t offset(index_t n, index_t c) const { return (n * C + c) * HW; }
};

// Channels per parallel task: about 32k values of work each.
inline index_t bn_grain(const bn_layout& l) {
  return std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(l.count(), 1));
}

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
template <Scalar T>
Tensor<T> batch_norm_train(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, double eps,
                           batch_stats<T>& stats) {
  constexpr const char* who = "rev::ops::batch_norm_train";
  const detail::bn_layout l = detail::bn_check_inputs(who, x, weight, &bias);
  check<value_error>(l.count() > 1, who, ": expected more than 1 value per channel when training, got input extents ",
                     x.shape());
  check<value_error>(eps >= 0 && std::isfinite(eps), who, ": eps must be finite and >= 0, got ", eps);
  Tensor<T> mean = Tensor<T>::uninitialized({l.C}), invstd = Tensor<T>::uninitialized({l.C});
  Tensor<T> y = Tensor<T>::uninitialized(x.shape());
  if (op_counts* c = rev::detail::active_op_counts()) c->bn_elements += y.numel();
  const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
  T *py = y.data(), *pm = mean.data(), *pi = invstd.data();
  parallel_for(l.C, detail::bn_grain(l), [&](index_t cb, index_t ce) {
    for (index_t c = cb; c < ce; ++c) {
      const double k = static_cast<double>(px[l.offset(0, c)]);
      double s1 = 0, s2 = 0;
      for (index_t n = 0; n < l.N; ++n) detail::sum_shifted(px + l.offset(n, c), l.HW, k, s1, s2);
      const double cnt = static_cast<double>(l.count()), d = s1 / cnt;
      const double var = std::max(0.0, s2 / cnt - d * d);  // biased: E[(x-k)^2] - (E[x-k])^2
      pm[c] = static_cast<T>(k + d);
      pi[c] = static_cast<T>(1.0 / std::sqrt(var + eps));
      detail::bn_normalise_channel(l, c, px, py, pm[c], pi[c], pw[c], pb[c]);
    }
  });
  stats.mean = mean;
  stats.invstd = invstd;
  return y;
}

/// x normalised with the given statistics (eval: from the running statistics; recompute: the
/// kept batch statistics).
template <Scalar T>
Tensor<T> batch_norm_apply(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                           const batch_stats<T>& stats) {
  constexpr const char* who = "rev::ops::batch_norm_apply";
  const detail::bn_layout l = detail::bn_check_inputs(who, x, weight, &bias);
  detail::bn_check_stats(who, l, stats);
  Tensor<T> y = Tensor<T>::uninitialized(x.shape());
  if (op_counts* c = rev::detail::active_op_counts()) c->bn_elements += y.numel();
  const T *px = x.data(), *pw = weight.data(), *pb = bias.data(), *pm = stats.mean.data(), *pi = stats.invstd.data();
  T* py = y.data();
  parallel_for(l.C, detail::bn_grain(l), [&](index_t cb, index_t ce) {
    for (index_t c = cb; c < ce; ++c) detail::bn_normalise_channel(l, c, px, py, pm[c], pi[c], pw[c], pb[c]);
  });
  return y;
}

/// Backward of batch_norm_train: the statistics are functions of x, so with xhat = (x - mean) * invstd
///   dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
///   dweight += sum(dy * xhat),  dbias += sum(dy)   (means and sums over N, H, W).
template <Scalar T>
Tensor<T> batch_norm_backward_train(const Tensor<T>& x, const Tensor<T>& weight, const batch_stats<T>& stats,
                                    const Tensor<T>& dy, std::type_identity_t<Tensor<T>*> dweight,
                                    std::type_identity_t<Tensor<T>*> dbias) {
  constexpr const char* who = "rev::ops::batch_norm_backward_train";
  const detail::bn_layout l = detail::bn_check_inputs<T>(who, x, weight, nullptr);
  detail::bn_check_stats(who, l, stats);
  expect_shape(dy, x.shape(), who, "dy");
  detail::bn_check_grads(who, l, dweight, dbias);
  Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
  const T *px = x.data(), *pg = dy.data(), *pw = weight.data(), *pm = stats.mean.data(), *pi = stats.invstd.data();
  T* pdx = dx.data();
  T* pdw = dweight ? dweight->data() : nullptr;
  T* pdb = dbias ? dbias->data() : nullptr;
  parallel_for(l.C, detail::bn_grain(l), [&](index_t cb, index_t ce) {
    for (index_t c = cb; c < ce; ++c) {
      const double m = static_cast<double>(pm[c]), is = static_cast<double>(pi[c]);
      double sdy = 0, sdyx = 0;  // sum(dy), sum(dy * (x - mean))
      for (index_t n = 0; n < l.N; ++n)
        detail::sum_grad(px + l.offset(n, c), pg + l.offset(n, c), static_cast<const T*>(nullptr), l.HW, m, sdy, sdyx);
      if (pdb) pdb[c] += static_cast<T>(sdy);
      if (pdw) pdw[c] += static_cast<T>(sdyx * is);
      // dx = a * dy - k1 * (x - mean) - k0.
      const double cnt = static_cast<double>(l.count()), a = static_cast<double>(pw[c]) * is;
      const T ta = static_cast<T>(a), k1 = static_cast<T>(a * is * is * sdyx / cnt), k0 = static_cast<T>(a * sdy / cnt);
      const T tm = pm[c];
      for (index_t n = 0; n < l.N; ++n) {
        const T* xs = px + l.offset(n, c);
        const T* gs = pg + l.offset(n, c);
        T* ds = pdx + l.offset(n, c);
        for (index_t i = 0; i < l.HW; ++i) ds[i] = ta * gs[i] - k1 * (xs[i] - tm) - k0;
      }
    }
  });
  return dx;
}

/// Backward with constant statistics (eval mode):
///   dx = dy * weight * invstd,  dweight += sum(dy * xhat),  dbias += sum(dy).
template <Scalar T>
Tensor<T> batch_norm_backward_eval(const Tensor<T>& x, const Tensor<T>& weight, const batch_stats<T>& stats,
                                   const Tensor<T>& dy, std::type_identity_t<Tensor<T>*> dweight,
                                   std::type_identity_t<Tensor<T>*> dbias) {
  constexpr const char* who = "rev::ops::batch_norm_backward_eval";
  const detail::bn_layout l = detail::bn_check_inputs<T>(who, x, weight, nullptr);
  detail::bn_check_stats(who, l, stats);
  expect_shape(dy, x.shape(), who, "dy");
  detail::bn_check_grads(who, l, dweight, dbias);
  Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
  const T *px = x.data(), *pg = dy.data(), *pw = weight.data(), *pm = stats.mean.data(), *pi = stats.invstd.data();
  T* pdx = dx.data();
  T* pdw = dweight ? dweight->data() : nullptr;
  T* pdb = dbias ? dbias->data() : nullptr;
  parallel_for(l.C, detail::bn_grain(l), [&](index_t cb, index_t ce) {
    for (index_t c = cb; c < ce; ++c) {
      if (pdw || pdb) {
        double sdy = 0, sdyx = 0;
        for (index_t n = 0; n < l.N; ++n)
          detail::sum_grad(px + l.offset(n, c), pg + l.offset(n, c), static_cast<const T*>(nullptr), l.HW,
                           static_cast<double>(pm[c]), sdy, sdyx);
        if (pdb) pdb[c] += static_cast<T>(sdy);
        if (pdw) pdw[c] += static_cast<T>(sdyx * static_cast<double>(pi[c]));
      }
      const T a = static_cast<T>(static_cast<double>(pw[c]) * static_cast<double>(pi[c]));
      for (index_t n = 0; n < l.N; ++n) {
        const T* gs = pg + l.offset(n, c);
        T* ds = pdx + l.offset(n, c);
        for (index_t i = 0; i < l.HW; ++i) ds[i] = a * gs[i];
      }
    }
  });
  return dx;
}

/// running = (1 - momentum) * running + momentum * batch, where the batch variance is the
/// unbiased one, var * n / (n - 1) with var = 1 / invstd^2 - eps (PyTorch's BatchNorm2d).
/// n = N * H * W, the number of values per channel the statistics came from.
template <Scalar T>
void batch_norm_update_running(Tensor<T>& running_mean, Tensor<T>& running_var, const batch_stats<T>& stats, double eps,
                               index_t n, double momentum) {
  constexpr const char* who = "rev::ops::batch_norm_update_running";
  const index_t C = detail::bn_check_running(who, running_mean, running_var, stats, n);
  const double bessel = static_cast<double>(n) / static_cast<double>(n - 1);
  for (index_t c = 0; c < C; ++c) {
    const double is = static_cast<double>(stats.invstd.data()[c]);
    const double var = std::max(0.0, 1.0 / (is * is) - eps) * bessel;
    T& rm = running_mean.data()[c];
    T& rv = running_var.data()[c];
    rm =
        static_cast<T>((1 - momentum) * static_cast<double>(rm) + momentum * static_cast<double>(stats.mean.data()[c]));
    rv = static_cast<T>((1 - momentum) * static_cast<double>(rv) + momentum * var);
  }
}

}  // namespace rev::ops
