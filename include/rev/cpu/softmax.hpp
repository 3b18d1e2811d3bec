// The CPU kernels of rev/ops/softmax.hpp: a row per task, float rows with explicit SSE vectors.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include "rev/cpu/eigen.hpp"

#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/ops/softmax.hpp"

namespace rev::ops::detail {

// One row of a softmax in T with Eigen (vectorised exp; the sum of the K positive terms in T).
template <Scalar T>
void softmax_row(const T* x, T* y, index_t K) {
  Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> xr(x, K);
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> yr(y, K);
  yr = (xr - xr.maxCoeff()).exp();
  yr *= T(1) / yr.sum();
}

#if defined(__GNUC__)
// float rows with explicit SSE vectors: Eigen's exp needs SSE4.1's round for speed, which a
// portable x86-64 build lacks.
typedef float softmax_float4 __attribute__((vector_size(16)));
typedef std::int32_t softmax_int4 __attribute__((vector_size(16)));

inline softmax_float4 softmax_splat(float v) { return softmax_float4{v, v, v, v}; }
inline softmax_float4 softmax_load(const float* p) {
  softmax_float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void softmax_store(float* p, softmax_float4 v) { std::memcpy(p, &v, sizeof v); }

// e^x = 2^n e^r with n = round(x / ln 2) and r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 in two
// parts, Cody & Waite 1980); e^r by its Taylor polynomial of degree 7 (remainder < 6e-9
// relative). 0 below -87.33 where float's exp leaves the normal range; NaN stays NaN.
inline softmax_float4 softmax_exp(softmax_float4 x) {
  const softmax_float4 lo = softmax_splat(-87.33654f), hi = softmax_splat(88.72283f);
  const softmax_float4 xc = x < lo ? lo : (x > hi ? hi : x);
  const softmax_float4 magic = softmax_splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const softmax_float4 n = (xc * softmax_splat(1.44269504088896341f) + magic) - magic;
  const softmax_float4 r = (xc - n * softmax_splat(0.693359375f)) - n * softmax_splat(-2.12194440e-4f);
  softmax_float4 p = softmax_splat(1.0f / 5040);
  for (float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = p * r + softmax_splat(c);
  const softmax_int4 bits = (__builtin_convertvector(n, softmax_int4) + 127) << 23;
  const softmax_float4 e = p * std::bit_cast<softmax_float4>(bits);
  return x < lo ? softmax_splat(0.0f) : e;
}

template <>
inline void softmax_row<float>(const float* x, float* y, index_t K) {
  index_t i = 0;
  softmax_float4 m4 = softmax_splat(-INFINITY);
  for (; i + 4 <= K; i += 4) {
    const softmax_float4 v = softmax_load(x + i);
    m4 = v > m4 ? v : m4;
  }
  float m = std::max(std::max(m4[0], m4[1]), std::max(m4[2], m4[3]));
  for (; i < K; ++i) m = std::max(m, x[i]);
  softmax_float4 s4 = softmax_splat(0.0f);
  for (i = 0; i + 4 <= K; i += 4) {
    const softmax_float4 e = softmax_exp(softmax_load(x + i) - softmax_splat(m));
    softmax_store(y + i, e);
    s4 += e;
  }
  float s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
  for (; i < K; ++i) s += (y[i] = std::exp(x[i] - m));
  const softmax_float4 inv = softmax_splat(1.0f / s);
  for (i = 0; i + 4 <= K; i += 4) softmax_store(y + i, softmax_load(y + i) * inv);
  for (; i < K; ++i) y[i] *= inv[0];
}
#endif

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct softmax_kernels {
  template <Scalar T>
  static Tensor<T> softmax(const Tensor<T>& x) {
    const index_t K = x.size(-1), rows = K > 0 ? x.numel() / K : 0;
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    const T* px = x.data();
    T* py = y.data();
    parallel_for(rows, std::max<index_t>(1, (index_t{1} << 13) / std::max<index_t>(K, 1)), [&](index_t b, index_t e) {
      for (index_t r = b; r < e; ++r) detail::softmax_row(px + r * K, py + r * K, K);
    });
    return y;
  }

  template <Scalar T>
  static Tensor<T> softmax_backward(const Tensor<T>& y, const Tensor<T>& dy) {
    const index_t K = y.size(-1), rows = K > 0 ? y.numel() / K : 0;
    Tensor<T> dx = Tensor<T>::uninitialized(y.shape());
    const T *py = y.data(), *pg = dy.data();
    T* pd = dx.data();
    parallel_for(rows, std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(K, 1)), [&](index_t b, index_t e) {
      for (index_t r = b; r < e; ++r) {
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> yr(py + r * K, K), gr(pg + r * K, K);
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> dr(pd + r * K, K);
        dr = yr * (gr - (yr * gr).sum());
      }
    });
    return dx;
  }
};

}  // namespace rev::ops::host
