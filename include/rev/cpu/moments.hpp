// Row reductions accumulated in double, shared by the normalisation and pooling kernels:
// sums of shifted values and their squares (for means and variances without the cancellation
// of the textbook sum-of-squares formula, Chan et al. 1983), and the two sums of a
// normalisation's backward.
#pragma once

#include "rev/core/shape.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops::detail {

#if defined(__GNUC__)
// Two doubles per SSE register: g++ and clang do not vectorise a double reduction by themselves
// (it reorders the sum), so the lanes are spelled out with vector extensions.
typedef double moments_double2 __attribute__((vector_size(16)));
#endif

/// s1 += sum(p[i] - k), s2 += sum((p[i] - k)^2), i < n.
template <Scalar T>
void sum_shifted(const T* p, index_t n, double k, double& s1, double& s2) {
  double r1 = 0, r2 = 0;
  index_t i = 0;
#if defined(__GNUC__)
  const moments_double2 kk = {k, k};
  moments_double2 a0 = {0, 0}, a1 = {0, 0}, b0 = {0, 0}, b1 = {0, 0};
  for (; i + 4 <= n; i += 4) {
    moments_double2 d0 = {static_cast<double>(p[i]), static_cast<double>(p[i + 1])};
    moments_double2 d1 = {static_cast<double>(p[i + 2]), static_cast<double>(p[i + 3])};
    d0 -= kk;
    d1 -= kk;
    a0 += d0;
    a1 += d1;
    b0 += d0 * d0;
    b1 += d1 * d1;
  }
  a0 += a1;
  b0 += b1;
  r1 = a0[0] + a0[1];
  r2 = b0[0] + b0[1];
#endif
  for (; i < n; ++i) {
    const double d = static_cast<double>(p[i]) - k;
    r1 += d;
    r2 += d * d;
  }
  s1 += r1;
  s2 += r2;
}

/// sum(p[i]), i < n.
template <Scalar T>
double sum_values(const T* p, index_t n) {
  double r = 0;
  index_t i = 0;
#if defined(__GNUC__)
  moments_double2 a0 = {0, 0}, a1 = {0, 0};
  for (; i + 4 <= n; i += 4) {
    const moments_double2 d0 = {static_cast<double>(p[i]), static_cast<double>(p[i + 1])};
    const moments_double2 d1 = {static_cast<double>(p[i + 2]), static_cast<double>(p[i + 3])};
    a0 += d0;
    a1 += d1;
  }
  a0 += a1;
  r = a0[0] + a0[1];
#endif
  for (; i < n; ++i) r += static_cast<double>(p[i]);
  return r;
}

/// s1 += sum(g[i] w[i]), s2 += sum(g[i] w[i] (x[i] - m)), i < n; w == nullptr means w = 1.
template <Scalar T>
void sum_grad(const T* x, const T* g, const T* w, index_t n, double m, double& s1, double& s2) {
  double r1 = 0, r2 = 0;
  index_t i = 0;
#if defined(__GNUC__)
  const moments_double2 mm = {m, m};
  moments_double2 a0 = {0, 0}, a1 = {0, 0}, b0 = {0, 0}, b1 = {0, 0};
  for (; i + 4 <= n; i += 4) {
    moments_double2 g0 = {static_cast<double>(g[i]), static_cast<double>(g[i + 1])};
    moments_double2 g1 = {static_cast<double>(g[i + 2]), static_cast<double>(g[i + 3])};
    if (w) {
      const moments_double2 w0 = {static_cast<double>(w[i]), static_cast<double>(w[i + 1])};
      const moments_double2 w1 = {static_cast<double>(w[i + 2]), static_cast<double>(w[i + 3])};
      g0 *= w0;
      g1 *= w1;
    }
    const moments_double2 x0 = {static_cast<double>(x[i]), static_cast<double>(x[i + 1])};
    const moments_double2 x1 = {static_cast<double>(x[i + 2]), static_cast<double>(x[i + 3])};
    a0 += g0;
    a1 += g1;
    b0 += g0 * (x0 - mm);
    b1 += g1 * (x1 - mm);
  }
  a0 += a1;
  b0 += b1;
  r1 = a0[0] + a0[1];
  r2 = b0[0] + b0[1];
#endif
  for (; i < n; ++i) {
    const double gi = static_cast<double>(g[i]) * (w ? static_cast<double>(w[i]) : 1.0);
    r1 += gi;
    r2 += gi * (static_cast<double>(x[i]) - m);
  }
  s1 += r1;
  s2 += r2;
}

}  // namespace rev::ops::detail
