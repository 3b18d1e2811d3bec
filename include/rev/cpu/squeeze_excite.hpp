// The CPU kernel of rev/ops/squeeze_excite.hpp: the pooled [N, W] map goes through both 1x1
// convolutions as matrix-vector products in double, one sample at a time, and the gate is
// applied (and its gradient summed) in parallel over the (n, c) planes.
#pragma once

#include <algorithm>
#include <vector>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/moments.hpp"
#include "rev/cpu/pool.hpp"
#include "rev/ops/squeeze_excite.hpp"

namespace rev::ops::host {

struct squeeze_excite_kernels {
  template <class Inner, class Gate, Scalar T>
  static Tensor<T> squeeze_excite(const Tensor<T>& x, const Tensor<T>& w1, const Tensor<T>& b1, const Tensor<T>& w2,
                                  const Tensor<T>& b2, squeeze_excite_cache<T>& c) {
    const index_t N = x.size(0), W = x.size(1), HW = x.size(2) * x.size(3), Q = w1.size(0);
    c.x = x;
    c.u = pool_kernels::global_avg_pool(x).reshape(Shape{N, W});
    c.z1 = Tensor<T>::uninitialized(Shape{N, Q});
    c.s = Tensor<T>::uninitialized(Shape{N, Q});
    c.z2 = Tensor<T>::uninitialized(Shape{N, W});
    c.g = Tensor<T>::uninitialized(Shape{N, W});
    for (index_t n = 0; n < N; ++n) {
      affine(w1.data(), b1.data(), c.u.data() + n * W, c.z1.data() + n * Q, Q, W);
      for (index_t q = 0; q < Q; ++q) c.s(n, q) = Inner::value(c.z1(n, q));
      affine(w2.data(), b2.data(), c.s.data() + n * Q, c.z2.data() + n * W, W, Q);
      for (index_t k = 0; k < W; ++k) c.g(n, k) = Gate::value(c.z2(n, k));
    }
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    const T *px = x.data(), *pg = c.g.data();
    T* py = y.data();
    parallel_for(N * W, plane_grain(HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        const T g = pg[i];
        for (index_t k = i * HW; k < (i + 1) * HW; ++k) py[k] = px[k] * g;
      }
    });
    return y;
  }

  template <class Inner, class Gate, Scalar T>
  static Tensor<T> squeeze_excite_backward(const squeeze_excite_cache<T>& c, const Tensor<T>& w1, const Tensor<T>& w2,
                                           const Tensor<T>& dy, squeeze_excite_grads<T> grads) {
    const index_t N = dy.size(0), W = dy.size(1), HW = dy.size(2) * dy.size(3), Q = w1.size(0);
    const T *px = c.x.data(), *pdy = dy.data();
    // dz2 = sum_{h,w}(dy * x) * Gate'(z2), per (n, channel).
    std::vector<double> dz2(static_cast<std::size_t>(N * W));
    parallel_for(N * W, plane_grain(HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        double sdy = 0, s = 0;  // sum(dy), sum(dy * x)
        detail::sum_grad(px + i * HW, pdy + i * HW, static_cast<const T*>(nullptr), HW, 0.0, sdy, s);
        dz2[static_cast<std::size_t>(i)] = s * static_cast<double>(Gate::derivative(c.z2.data()[i]));
      }
    });
    // Through conv 2 (z2 = W2 s + b2) and Inner, then conv 1 (z1 = W1 u + b1) to du; the
    // parameter gradients are summed over the batch in double and added once.
    const auto sz = [](index_t v) { return static_cast<std::size_t>(v); };
    std::vector<double> du(sz(N * W), 0.0), dz1(sz(Q)), gw1(sz(Q * W), 0.0), gw2(sz(W * Q), 0.0), gb1(sz(Q), 0.0),
        gb2(sz(W), 0.0);
    const T *pw1 = w1.data(), *pw2 = w2.data();
    for (index_t n = 0; n < N; ++n) {
      const double* g2 = dz2.data() + n * W;
      for (index_t q = 0; q < Q; ++q) {
        double ds = 0;
        for (index_t k = 0; k < W; ++k) {
          ds += g2[k] * static_cast<double>(pw2[k * Q + q]);
          gw2[sz(k * Q + q)] += g2[k] * static_cast<double>(c.s(n, q));
        }
        dz1[sz(q)] = ds * static_cast<double>(Inner::derivative(c.z1(n, q)));
        gb1[sz(q)] += dz1[sz(q)];
      }
      for (index_t k = 0; k < W; ++k) gb2[sz(k)] += g2[k];
      for (index_t q = 0; q < Q; ++q)
        for (index_t k = 0; k < W; ++k) {
          du[sz(n * W + k)] += dz1[sz(q)] * static_cast<double>(pw1[q * W + k]);
          gw1[sz(q * W + k)] += dz1[sz(q)] * static_cast<double>(c.u(n, k));
        }
    }
    const auto add_to = [](Tensor<T>& grad, const std::vector<double>& v) {
      for (std::size_t i = 0; i < v.size(); ++i) grad.data()[i] += static_cast<T>(v[i]);
    };
    add_to(grads.dw1, gw1);
    add_to(grads.db1, gb1);
    add_to(grads.dw2, gw2);
    add_to(grads.db2, gb2);
    Tensor<T> dx = Tensor<T>::uninitialized(dy.shape());
    const T* pg = c.g.data();
    T* pdx = dx.data();
    parallel_for(N * W, plane_grain(HW), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        const T g = pg[i], dm = static_cast<T>(du[static_cast<std::size_t>(i)] / static_cast<double>(HW));
        for (index_t k = i * HW; k < (i + 1) * HW; ++k) pdx[k] = pdy[k] * g + dm;
      }
    });
    return dx;
  }

 private:
  // (n, c) planes per task: about 32k values each.
  static index_t plane_grain(index_t hw) { return std::max<index_t>(1, (index_t{1} << 15) / std::max<index_t>(hw, 1)); }

  // out[r] = bias[r] + sum_k weight[r, k] in[k], rows r < R, columns k < K, in double.
  template <class T>
  static void affine(const T* weight, const T* bias, const T* in, T* out, index_t R, index_t K) {
    for (index_t r = 0; r < R; ++r) {
      double s = static_cast<double>(bias[r]);
      for (index_t k = 0; k < K; ++k) s += static_cast<double>(weight[r * K + k]) * static_cast<double>(in[k]);
      out[r] = static_cast<T>(s);
    }
  }
};

}  // namespace rev::ops::host
