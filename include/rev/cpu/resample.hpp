// The CPU kernels of rev/ops/resample.hpp.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/resample.hpp"

namespace rev::ops::detail {

inline constexpr index_t resample_grain = 1 << 14;  // output elements per task

// Calls fn(std::integral_constant<int, F>) with F = factor for the common factors (so that the
// inner loops unroll), else with F = 0 (factor known at run time only).
template <class Fn>
void dispatch_factor(int factor, Fn&& fn) {
  switch (factor) {
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    default: fn(std::integral_constant<int, 0>{});
  }
}

// Bilinear taps along one axis of length n, up-sampled by f (PyTorch's align_corners = false): output o reads
// u = max((o + 0.5)/f - 0.5, 0), i0 = floor(u), i1 = min(i0 + 1, n - 1), weight u - i0 on i1.
// Grouped by cell: output o = f*i + h + r (h = floor(f/2), 0 <= r < f) has i0 = i, i1 = i + 1 and
// weight w_r = (h + r + 0.5)/f - 0.5 for i + 1 < n; the first h outputs have u clamped to 0 and
// equal input 0, the outputs from f*(n-1) + h on have i0 = i1 = n - 1 and equal input n - 1.
template <Scalar T>
struct bilinear_axis {
  int f, h;
  std::vector<T> a, b;  // 1 - w_r, w_r

  explicit bilinear_axis(int factor) : f(factor), h(factor / 2), a(static_cast<std::size_t>(factor)), b(a.size()) {
    for (int r = 0; r < f; ++r) {
      const double w = (h + r + 0.5) / f - 0.5;
      a[static_cast<std::size_t>(r)] = static_cast<T>(1 - w);
      b[static_cast<std::size_t>(r)] = static_cast<T>(w);
    }
  }

  // The two source rows and their weights of output row o of an axis of length n.
  void taps(index_t o, index_t n, index_t& i0, index_t& i1, T& w0, T& w1) const {
    const index_t i = o < h ? -1 : (o - h) / f;
    if (i < 0 || i + 1 >= n) {
      i0 = i1 = i < 0 ? 0 : n - 1;
      w0 = T(1), w1 = T(0);
    } else {
      const auto r = static_cast<std::size_t>((o - h) % f);
      i0 = i, i1 = i + 1, w0 = a[r], w1 = b[r];
    }
  }

  // dst[0, n*f) = src[0, n) up-sampled.
  template <int F>
  void interpolate(const T* src, index_t n, T* dst) const {
    const int fs = F > 0 ? F : f;
    T wa[F > 0 ? F : 1], wb[F > 0 ? F : 1];  // local copies: no aliasing with dst
    if constexpr (F > 0) std::copy(a.begin(), a.end(), wa), std::copy(b.begin(), b.end(), wb);
    const T* pa = F > 0 ? wa : a.data();
    const T* pb = F > 0 ? wb : b.data();
    for (int o = 0; o < h; ++o) dst[o] = src[0];
    T* d = dst + h;
    for (index_t i = 0; i + 1 < n; ++i, d += fs) {
      const T lo = src[i], hi = src[i + 1];
      for (int r = 0; r < fs; ++r) d[r] = pa[r] * lo + pb[r] * hi;
    }
    for (index_t o = fs * (n - 1) + h; o < n * fs; ++o) dst[o] = src[n - 1];
  }

  // dst[0, n) = the adjoint of interpolate applied to g[0, n*f).
  template <int F>
  void adjoint(const T* g, index_t n, T* dst) const {
    const int fs = F > 0 ? F : f;
    T wa[F > 0 ? F : 1], wb[F > 0 ? F : 1];
    if constexpr (F > 0) std::copy(a.begin(), a.end(), wa), std::copy(b.begin(), b.end(), wb);
    const T* pa = F > 0 ? wa : a.data();
    const T* pb = F > 0 ? wb : b.data();
    std::fill(dst, dst + n, T(0));
    for (int o = 0; o < h; ++o) dst[0] += g[o];
    const T* s = g + h;
    for (index_t i = 0; i + 1 < n; ++i, s += fs) {
      T lo = 0, hi = 0;
      for (int r = 0; r < fs; ++r) lo += pa[r] * s[r], hi += pb[r] * s[r];
      dst[i] += lo;
      dst[i + 1] += hi;
    }
    for (index_t o = fs * (n - 1) + h; o < n * fs; ++o) dst[n - 1] += g[o];
  }
};

// Bilinear taps along one axis of length n, up-sampled to n*f with align_corners = true: output
// o reads u = o * (n - 1) / (n*f - 1), i0 = floor(u), i1 = min(i0 + 1, n - 1), weight u - i0 on i1.
template <Scalar T>
struct aligned_axis {
  std::vector<index_t> i0, i1;
  std::vector<T> w1;

  aligned_axis(index_t n, int f) {
    const index_t m = n * f;
    const double scale = m > 1 ? static_cast<double>(n - 1) / static_cast<double>(m - 1) : 0.0;
    for (index_t o = 0; o < m; ++o) {
      const double u = scale * static_cast<double>(o);
      const index_t i = std::min(static_cast<index_t>(u), n - 1);
      i0.push_back(i);
      i1.push_back(std::min(i + 1, n - 1));
      w1.push_back(static_cast<T>(u - static_cast<double>(i)));
    }
  }
  index_t size() const { return static_cast<index_t>(i0.size()); }
};

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct resample_kernels {
  template <Scalar T>
  static Tensor<T> upsample_bilinear(const Tensor<T>& x, int factor) {
    detail::check_resample_args(x, factor, "rev::ops::upsample_bilinear", "input");
    const index_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), Ho = H * factor, Wo = W * factor;
    Tensor<T> y = Tensor<T>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    if (op_counts* c = rev::detail::active_op_counts()) c->upsample_elements += y.numel();
    if (y.numel() == 0) return y;
    const detail::bilinear_axis<T> axis(factor);
    const T* px = x.data();
    T* py = y.data();
    // Per plane: interpolate each input row along W into `rows` [H, Wo], then blend pairs of rows.
    detail::dispatch_factor(factor, [&](auto fc) {
      constexpr int F = decltype(fc)::value;
      parallel_for(planes, std::max<index_t>(1, detail::resample_grain / (Ho * Wo)), [&](index_t b, index_t e) {
        std::vector<T> rows(static_cast<std::size_t>(H * Wo));
        for (index_t p = b; p < e; ++p) {
          const T* in = px + p * H * W;
          T* out = py + p * Ho * Wo;
          for (index_t h = 0; h < H; ++h) axis.template interpolate<F>(in + h * W, W, rows.data() + h * Wo);
          for (index_t oh = 0; oh < Ho; ++oh) {
            index_t h0, h1;
            T w0, w1;
            axis.taps(oh, H, h0, h1, w0, w1);
            const T* r0 = rows.data() + h0 * Wo;
            const T* r1 = rows.data() + h1 * Wo;
            T* dst = out + oh * Wo;
            for (index_t o = 0; o < Wo; ++o) dst[o] = w0 * r0[o] + w1 * r1[o];
          }
        }
      });
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> upsample_bilinear_backward(const Tensor<T>& dy, int factor) {
    const Shape xs = detail::downsampled_shape(dy, factor, "rev::ops::upsample_bilinear_backward");
    const index_t planes = xs[0] * xs[1], H = xs[2], W = xs[3], Ho = dy.size(2), Wo = dy.size(3);
    Tensor<T> dx = Tensor<T>::uninitialized(xs);
    if (dx.numel() == 0) return dx;
    const detail::bilinear_axis<T> axis(factor);
    const T* pdy = dy.data();
    T* pdx = dx.data();
    // The forward's steps transposed, in reverse: scatter output rows onto `rows` [H, Wo], then
    // reduce each row along W.
    detail::dispatch_factor(factor, [&](auto fc) {
      constexpr int F = decltype(fc)::value;
      parallel_for(planes, std::max<index_t>(1, detail::resample_grain / (Ho * Wo)), [&](index_t b, index_t e) {
        std::vector<T> rows(static_cast<std::size_t>(H * Wo));
        for (index_t p = b; p < e; ++p) {
          const T* g = pdy + p * Ho * Wo;
          std::fill(rows.begin(), rows.end(), T(0));
          for (index_t oh = 0; oh < Ho; ++oh) {
            index_t h0, h1;
            T w0, w1;
            axis.taps(oh, H, h0, h1, w0, w1);
            T* r0 = rows.data() + h0 * Wo;
            T* r1 = rows.data() + h1 * Wo;
            const T* src = g + oh * Wo;
            for (index_t o = 0; o < Wo; ++o) r0[o] += w0 * src[o];
            if (w1 != T(0))
              for (index_t o = 0; o < Wo; ++o) r1[o] += w1 * src[o];
          }
          T* out = pdx + p * H * W;
          for (index_t h = 0; h < H; ++h) axis.template adjoint<F>(rows.data() + h * Wo, W, out + h * W);
        }
      });
    });
    return dx;
  }

  template <Scalar T>
  static Tensor<T> upsample_bilinear_aligned(const Tensor<T>& x, int factor) {
    detail::check_resample_args(x, factor, "rev::ops::upsample_bilinear_aligned", "input");
    const index_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), Ho = H * factor, Wo = W * factor;
    Tensor<T> y = Tensor<T>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    if (op_counts* c = rev::detail::active_op_counts()) c->upsample_elements += y.numel();
    if (y.numel() == 0) return y;
    const detail::aligned_axis<T> ah(H, factor), aw(W, factor);
    const T* px = x.data();
    T* py = y.data();
    // Per plane: interpolate each input row along W into `rows` [H, Wo], then blend pairs of rows.
    parallel_for(planes, std::max<index_t>(1, detail::resample_grain / (Ho * Wo)), [&](index_t b, index_t e) {
      std::vector<T> rows(static_cast<std::size_t>(H * Wo));
      for (index_t p = b; p < e; ++p) {
        const T* in = px + p * H * W;
        T* out = py + p * Ho * Wo;
        for (index_t h = 0; h < H; ++h)
          for (index_t o = 0; o < Wo; ++o) {
            const auto k = static_cast<std::size_t>(o);
            const T w1 = aw.w1[k];
            rows[static_cast<std::size_t>(h * Wo + o)] = (T(1) - w1) * in[h * W + aw.i0[k]] + w1 * in[h * W + aw.i1[k]];
          }
        for (index_t oh = 0; oh < Ho; ++oh) {
          const auto k = static_cast<std::size_t>(oh);
          const T w1 = ah.w1[k], w0 = T(1) - w1;
          const T* r0 = rows.data() + ah.i0[k] * Wo;
          const T* r1 = rows.data() + ah.i1[k] * Wo;
          T* dst = out + oh * Wo;
          for (index_t o = 0; o < Wo; ++o) dst[o] = w0 * r0[o] + w1 * r1[o];
        }
      }
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> upsample_bilinear_aligned_backward(const Tensor<T>& dy, int factor) {
    const Shape xs = detail::downsampled_shape(dy, factor, "rev::ops::upsample_bilinear_aligned_backward");
    const index_t planes = xs[0] * xs[1], H = xs[2], W = xs[3], Ho = dy.size(2), Wo = dy.size(3);
    Tensor<T> dx = Tensor<T>::uninitialized(xs);
    if (dx.numel() == 0) return dx;
    const detail::aligned_axis<T> ah(H, factor), aw(W, factor);
    const T* pdy = dy.data();
    T* pdx = dx.data();
    // The forward's steps transposed, in reverse: scatter output rows onto `rows` [H, Wo], then
    // scatter each row along W.
    parallel_for(planes, std::max<index_t>(1, detail::resample_grain / (Ho * Wo)), [&](index_t b, index_t e) {
      std::vector<T> rows(static_cast<std::size_t>(H * Wo));
      for (index_t p = b; p < e; ++p) {
        const T* g = pdy + p * Ho * Wo;
        std::fill(rows.begin(), rows.end(), T(0));
        for (index_t oh = 0; oh < Ho; ++oh) {
          const auto k = static_cast<std::size_t>(oh);
          const T w1 = ah.w1[k], w0 = T(1) - w1;
          T* r0 = rows.data() + ah.i0[k] * Wo;
          T* r1 = rows.data() + ah.i1[k] * Wo;
          const T* src = g + oh * Wo;
          for (index_t o = 0; o < Wo; ++o) r0[o] += w0 * src[o];
          for (index_t o = 0; o < Wo; ++o) r1[o] += w1 * src[o];
        }
        T* out = pdx + p * H * W;
        std::fill(out, out + H * W, T(0));
        for (index_t h = 0; h < H; ++h)
          for (index_t o = 0; o < Wo; ++o) {
            const auto k = static_cast<std::size_t>(o);
            const T v = rows[static_cast<std::size_t>(h * Wo + o)], w1 = aw.w1[k];
            out[h * W + aw.i0[k]] += (T(1) - w1) * v;
            out[h * W + aw.i1[k]] += w1 * v;
          }
      }
    });
    return dx;
  }

  template <Scalar T>
  static Tensor<T> upsample_nearest(const Tensor<T>& x, int factor) {
    detail::check_resample_args(x, factor, "rev::ops::upsample_nearest", "input");
    const index_t H = x.size(2), W = x.size(3), Ho = H * factor, Wo = W * factor;
    Tensor<T> y = Tensor<T>::uninitialized({x.size(0), x.size(1), Ho, Wo});
    if (y.numel() == 0) return y;
    const T* px = x.data();
    T* py = y.data();
    // One task unit = one input row, which fills `factor` identical output rows.
    detail::dispatch_factor(factor, [&](auto fc) {
      constexpr int F = decltype(fc)::value;
      const int f = F > 0 ? F : factor;
      parallel_for(x.size(0) * x.size(1) * H, std::max<index_t>(1, detail::resample_grain / (Wo * f)),
                   [&](index_t b, index_t e) {
                     for (index_t r = b; r < e; ++r) {
                       const T* src = px + r * W;
                       T* dst = py + r * f * Wo;
                       for (index_t w = 0; w < W; ++w)
                         for (int j = 0; j < f; ++j) dst[w * f + j] = src[w];
                       for (int i = 1; i < f; ++i) std::copy(dst, dst + Wo, dst + i * Wo);
                     }
                   });
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> upsample_nearest_backward(const Tensor<T>& dy, int factor) {
    const Shape xs = detail::downsampled_shape(dy, factor, "rev::ops::upsample_nearest_backward");
    const index_t W = xs[3], Wo = dy.size(3);
    Tensor<T> dx = Tensor<T>::uninitialized(xs);
    if (dx.numel() == 0) return dx;
    const T* pdy = dy.data();
    T* pdx = dx.data();
    detail::dispatch_factor(factor, [&](auto fc) {
      constexpr int F = decltype(fc)::value;
      const int f = F > 0 ? F : factor;
      parallel_for(xs[0] * xs[1] * xs[2], std::max<index_t>(1, detail::resample_grain / (Wo * f)),
                   [&](index_t b, index_t e) {
                     for (index_t r = b; r < e; ++r) {
                       const T* src = pdy + r * f * Wo;
                       T* dst = pdx + r * W;
                       // Row i of the block adds its groups of f columns.
                       for (index_t w = 0; w < W; ++w) {
                         T s = 0;
                         for (int j = 0; j < f; ++j) s += src[w * f + j];
                         dst[w] = s;
                       }
                       for (int i = 1; i < f; ++i)
                         for (index_t w = 0; w < W; ++w) {
                           T s = 0;
                           for (int j = 0; j < f; ++j) s += src[i * Wo + w * f + j];
                           dst[w] += s;
                         }
                     }
                   });
    });
    return dx;
  }
};

}  // namespace rev::ops::host
