// The CPU kernels of rev/ops/layernorm.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/moments.hpp"
#include "rev/ops/layernorm.hpp"

namespace rev::ops::detail {

// Runs body(begin, end, dw, db) over [0, items) split into a fixed number of blocks, each
// with its own partial parameter gradients dw, db [D] in double (nullptr when neither gradient
// is wanted); the partials are summed in block order and added to dweight and dbias. The
// blocks do not depend on the thread count, so the gradients are the same on any number of
// threads. `grain` is the number of items worth a parallel task.
template <Scalar T, class F>
void ln_blocked(index_t items, index_t grain, index_t D, Tensor<T>* dweight, Tensor<T>* dbias, F body) {
  constexpr index_t max_blocks = 64;
  const bool wanted = dweight || dbias;
  const index_t blocks = std::min(items, max_blocks);
  std::vector<double> partial(wanted ? static_cast<std::size_t>(blocks * 2 * D) : 0, 0.0);
  const index_t per_block = std::max<index_t>(1, items / std::max<index_t>(blocks, 1));
  parallel_for(blocks, std::max<index_t>(1, grain / per_block), [&](index_t b, index_t e) {
    for (index_t k = b; k < e; ++k) {
      double* dw = wanted ? partial.data() + k * 2 * D : nullptr;
      body(items * k / blocks, items * (k + 1) / blocks, dw, wanted ? dw + D : nullptr);
    }
  });
  if (!wanted) return;
  for (index_t i = 0; i < D; ++i) {
    double sw = 0, sb = 0;
    for (index_t k = 0; k < blocks; ++k) {
      sw += partial[static_cast<std::size_t>(k * 2 * D + i)];
      sb += partial[static_cast<std::size_t>(k * 2 * D + D + i)];
    }
    if (dweight) dweight->data()[i] += static_cast<T>(sw);
    if (dbias) dbias->data()[i] += static_cast<T>(sb);
  }
}

// Pixels per tile of layer_norm_channels: a tile's C x tile values stay in cache for the passes.
inline constexpr index_t ln_tile = 128;

// Mean and rstd of the C values at each pixel p of a tile: x[c * HW + p], p < P. One pass over
// values shifted by the pixel's first channel (as cpu/moments.hpp), vectorised across pixels.
template <Scalar T>
void ln_pixel_stats(const T* x, index_t C, index_t HW, index_t P, double eps, double* mean, double* rstd) {
  for (index_t p = 0; p < P; ++p) mean[p] = rstd[p] = 0.0;
  for (index_t c = 1; c < C; ++c)
    for (index_t p = 0; p < P; ++p) {
      const double d = static_cast<double>(x[c * HW + p]) - static_cast<double>(x[p]);
      mean[p] += d;
      rstd[p] += d * d;
    }
  const double n = static_cast<double>(C);
  for (index_t p = 0; p < P; ++p) {
    const double d = mean[p] / n;
    mean[p] = static_cast<double>(x[p]) + d;
    rstd[p] = 1.0 / std::sqrt(std::max(0.0, rstd[p] / n - d * d) + eps);
  }
}

// Mean and rstd of the D contiguous values of a row, in one pass over shifted values.
template <Scalar T>
void ln_row_stats(const T* x, index_t D, double eps, double& mean, double& rstd) {
  const double k = static_cast<double>(x[0]);
  double s1 = 0, s2 = 0;
  sum_shifted(x, D, k, s1, s2);
  const double d = s1 / static_cast<double>(D);
  mean = k + d;
  rstd = 1.0 / std::sqrt(std::max(0.0, s2 / static_cast<double>(D) - d * d) + eps);
}

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct layernorm_kernels {
  template <Scalar T>
  static Tensor<T> layer_norm_channels(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, double eps) {
    constexpr const char* who = "rev::ops::layer_norm_channels";
    expect_rank(x, 4, who);
    const index_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
    detail::ln_check_params(who, C, weight, &bias);
    detail::ln_check_eps(who, eps);
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    const index_t tiles = (HW + detail::ln_tile - 1) / detail::ln_tile;
    const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
    T* py = y.data();
    const index_t grain =
        std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(C * std::min(HW, detail::ln_tile), 1));
    parallel_for(N * tiles, grain, [&](index_t b, index_t e) {
      std::array<double, detail::ln_tile> mean, rstd;
      std::array<T, detail::ln_tile> tm, tr;
      for (index_t t = b; t < e; ++t) {
        const index_t n = t / tiles, p0 = (t % tiles) * detail::ln_tile, P = std::min(detail::ln_tile, HW - p0);
        const T* xs = px + n * C * HW + p0;
        T* ys = py + n * C * HW + p0;
        detail::ln_pixel_stats(xs, C, HW, P, eps, mean.data(), rstd.data());
        for (index_t p = 0; p < P; ++p) {
          tm[p] = static_cast<T>(mean[p]);
          tr[p] = static_cast<T>(rstd[p]);
        }
        for (index_t c = 0; c < C; ++c)
          for (index_t p = 0; p < P; ++p) ys[c * HW + p] = (xs[c * HW + p] - tm[p]) * tr[p] * pw[c] + pb[c];
      }
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> layer_norm_channels_backward(const Tensor<T>& x, const Tensor<T>& weight, double eps,
                                                const Tensor<T>& dy, std::type_identity_t<Tensor<T>*> dweight,
                                                std::type_identity_t<Tensor<T>*> dbias) {
    constexpr const char* who = "rev::ops::layer_norm_channels_backward";
    expect_rank(x, 4, who);
    const index_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
    detail::ln_check_params<T>(who, C, weight, nullptr);
    detail::ln_check_eps(who, eps);
    expect_shape(dy, x.shape(), who, "dy");
    detail::ln_check_grads(who, C, dweight, dbias);
    Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
    const index_t tiles = (HW + detail::ln_tile - 1) / detail::ln_tile;
    const T *px = x.data(), *pw = weight.data(), *pg = dy.data();
    T* pdx = dx.data();
    const index_t grain =
        std::max<index_t>(1, (index_t{1} << 13) / std::max<index_t>(C * std::min(HW, detail::ln_tile), 1));
    detail::ln_blocked(N * tiles, grain, C, dweight, dbias, [&](index_t b, index_t e, double* dw, double* db) {
      std::array<double, detail::ln_tile> mean, rstd, sg, sgx, gx;
      std::array<T, detail::ln_tile> tm, tr, k0, k1;
      for (index_t t = b; t < e; ++t) {
        const index_t n = t / tiles, p0 = (t % tiles) * detail::ln_tile, P = std::min(detail::ln_tile, HW - p0);
        const index_t off = n * C * HW + p0;
        const T *xs = px + off, *gs = pg + off;
        T* ds = pdx + off;
        detail::ln_pixel_stats(xs, C, HW, P, eps, mean.data(), rstd.data());
        std::fill(sg.begin(), sg.begin() + P, 0.0);
        std::fill(sgx.begin(), sgx.begin() + P, 0.0);
        for (index_t c = 0; c < C; ++c) {
          const double w = static_cast<double>(pw[c]);
          const T* xc = xs + c * HW;
          const T* gc = gs + c * HW;
          for (index_t p = 0; p < P; ++p) {
            const double xhat = (static_cast<double>(xc[p]) - mean[p]) * rstd[p], g = static_cast<double>(gc[p]);
            sg[p] += g * w;
            sgx[p] += g * w * xhat;
            gx[p] = g * xhat;
          }
          if (dw) {
            dw[c] += detail::sum_values(gx.data(), P);
            db[c] += detail::sum_values(gc, P);
          }
        }
        // dx = rstd * (g * w - mean_c(g * w)) - k1 * (x - mean) with k1 = rstd^2 mean_c(g * w * xhat).
        for (index_t p = 0; p < P; ++p) {
          tm[p] = static_cast<T>(mean[p]);
          tr[p] = static_cast<T>(rstd[p]);
          k0[p] = static_cast<T>(rstd[p] * sg[p] / static_cast<double>(C));
          k1[p] = static_cast<T>(rstd[p] * rstd[p] * sgx[p] / static_cast<double>(C));
        }
        for (index_t c = 0; c < C; ++c) {
          const T w = pw[c];
          const T* xc = xs + c * HW;
          const T* gc = gs + c * HW;
          T* dc = ds + c * HW;
          for (index_t p = 0; p < P; ++p) dc[p] = tr[p] * gc[p] * w - k0[p] - k1[p] * (xc[p] - tm[p]);
        }
      }
    });
    return dx;
  }

  template <Scalar T>
  static Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, double eps) {
    constexpr const char* who = "rev::ops::layer_norm";
    check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected [..., D]");
    const index_t D = x.size(-1), rows = D > 0 ? x.numel() / D : 0;
    detail::ln_check_params(who, D, weight, &bias);
    detail::ln_check_eps(who, eps);
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
    T* py = y.data();
    parallel_for(rows, std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(D, 1)), [&](index_t b, index_t e) {
      for (index_t r = b; r < e; ++r) {
        const T* xs = px + r * D;
        T* ys = py + r * D;
        double mean, rstd;
        detail::ln_row_stats(xs, D, eps, mean, rstd);
        const T tm = static_cast<T>(mean), tr = static_cast<T>(rstd);
        for (index_t i = 0; i < D; ++i) ys[i] = (xs[i] - tm) * tr * pw[i] + pb[i];
      }
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> layer_norm_backward(const Tensor<T>& x, const Tensor<T>& weight, double eps, const Tensor<T>& dy,
                                       std::type_identity_t<Tensor<T>*> dweight,
                                       std::type_identity_t<Tensor<T>*> dbias) {
    constexpr const char* who = "rev::ops::layer_norm_backward";
    check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected [..., D]");
    const index_t D = x.size(-1), rows = D > 0 ? x.numel() / D : 0;
    detail::ln_check_params<T>(who, D, weight, nullptr);
    detail::ln_check_eps(who, eps);
    expect_shape(dy, x.shape(), who, "dy");
    detail::ln_check_grads(who, D, dweight, dbias);
    Tensor<T> dx = Tensor<T>::uninitialized(x.shape());
    const T *px = x.data(), *pw = weight.data(), *pg = dy.data();
    T* pdx = dx.data();
    const index_t grain = std::max<index_t>(1, (index_t{1} << 13) / std::max<index_t>(D, 1));
    detail::ln_blocked(rows, grain, D, dweight, dbias, [&](index_t b, index_t e, double* dw, double* db) {
      for (index_t r = b; r < e; ++r) {
        const T *xs = px + r * D, *gs = pg + r * D;
        T* ds = pdx + r * D;
        double mean, rstd, sg = 0, sgx = 0;  // sum(g), sum(g * (x - mean)) with g = dy * weight
        detail::ln_row_stats(xs, D, eps, mean, rstd);
        detail::sum_grad(xs, gs, pw, D, mean, sg, sgx);
        // dx = rstd * g - k1 * (x - mean) - k0 with k1 = rstd^3 mean(g (x - mean)), k0 = rstd mean(g).
        const double n = static_cast<double>(D);
        const T tr = static_cast<T>(rstd), tm = static_cast<T>(mean), k1 = static_cast<T>(rstd * rstd * rstd * sgx / n),
                k0 = static_cast<T>(rstd * sg / n);
        for (index_t i = 0; i < D; ++i) ds[i] = tr * gs[i] * pw[i] - k1 * (xs[i] - tm) - k0;
        if (dw)
          for (index_t i = 0; i < D; ++i) {
            const double g = static_cast<double>(gs[i]);
            dw[i] += g * (static_cast<double>(xs[i]) - mean) * rstd;
            db[i] += g;
          }
      }
    });
    return dx;
  }
};

}  // namespace rev::ops::host
