// The CPU kernels of rev/ops/batchnorm.hpp: the statistics in a single pass over shifted data
// (cpu/moments.hpp); every op runs in parallel over channels.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "rev/core/errors.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/moments.hpp"
#include "rev/ops/batchnorm.hpp"

namespace rev::ops::detail {

// Channels per parallel task: about 32k values of work each.
inline index_t bn_grain(const bn_layout& l) {
  return std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(l.count(), 1));
}

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct batchnorm_kernels {
  template <Scalar T>
  static Tensor<T> batch_norm_train(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, double eps,
                                    batch_stats<T>& stats) {
    constexpr const char* who = "rev::ops::batch_norm_train";
    const detail::bn_layout l = detail::bn_check_inputs(who, x, weight, &bias);
    check<value_error>(l.count() > 1, who, ": expected more than 1 value per channel when training, got input extents ",
                       x.shape());
    check<value_error>(eps >= 0 && std::isfinite(eps), who, ": eps must be finite and >= 0, got ", eps);
    Tensor<T> mean = Tensor<T>::uninitialized({l.C}), invstd = Tensor<T>::uninitialized({l.C}),
              var = Tensor<T>::uninitialized({l.C});
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    if (op_counts* c = rev::detail::active_op_counts()) c->bn_elements += y.numel();
    const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
    T *py = y.data(), *pm = mean.data(), *pi = invstd.data(), *pv = var.data();
    parallel_for(l.C, detail::bn_grain(l), [&](index_t cb, index_t ce) {
      for (index_t c = cb; c < ce; ++c) {
        const double k = static_cast<double>(px[l.offset(0, c)]);
        double s1 = 0, s2 = 0;
        for (index_t n = 0; n < l.N; ++n) detail::sum_shifted(px + l.offset(n, c), l.HW, k, s1, s2);
        const double cnt = static_cast<double>(l.count()), d = s1 / cnt;
        const double v = std::max(0.0, s2 / cnt - d * d);  // biased: E[(x-k)^2] - (E[x-k])^2
        pm[c] = static_cast<T>(k + d);
        pi[c] = static_cast<T>(1.0 / std::sqrt(v + eps));
        pv[c] = static_cast<T>(v);
        detail::bn_normalise_channel(l, c, px, py, pm[c], pi[c], pw[c], pb[c]);
      }
    });
    stats.mean = mean;
    stats.invstd = invstd;
    stats.var = var;
    return y;
  }

  template <Scalar T>
  static Tensor<T> batch_norm_apply(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
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

  template <Scalar T>
  static Tensor<T> batch_norm_backward_train(const Tensor<T>& x, const Tensor<T>& weight, const batch_stats<T>& stats,
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
          detail::sum_grad(px + l.offset(n, c), pg + l.offset(n, c), static_cast<const T*>(nullptr), l.HW, m, sdy,
                           sdyx);
        if (pdb) pdb[c] += static_cast<T>(sdy);
        if (pdw) pdw[c] += static_cast<T>(sdyx * is);
        // dx = a * dy - k1 * (x - mean) - k0.
        const double cnt = static_cast<double>(l.count()), a = static_cast<double>(pw[c]) * is;
        const T ta = static_cast<T>(a), k1 = static_cast<T>(a * is * is * sdyx / cnt),
                k0 = static_cast<T>(a * sdy / cnt);
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

  template <Scalar T>
  static Tensor<T> batch_norm_backward_eval(const Tensor<T>& x, const Tensor<T>& weight, const batch_stats<T>& stats,
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

  template <Scalar T>
  static void batch_norm_update_running(Tensor<T>& running_mean, Tensor<T>& running_var, const batch_stats<T>& stats,
                                        index_t n, double momentum) {
    constexpr const char* who = "rev::ops::batch_norm_update_running";
    const index_t C = detail::bn_check_running(who, running_mean, running_var, stats, n);
    const double bessel = static_cast<double>(n) / static_cast<double>(n - 1);
    for (index_t c = 0; c < C; ++c) {
      const double var = static_cast<double>(stats.var.data()[c]) * bessel;
      T& rm = running_mean.data()[c];
      T& rv = running_var.data()[c];
      rm = static_cast<T>((1 - momentum) * static_cast<double>(rm) +
                          momentum * static_cast<double>(stats.mean.data()[c]));
      rv = static_cast<T>((1 - momentum) * static_cast<double>(rv) + momentum * var);
    }
  }
};

}  // namespace rev::ops::host
