// The CPU kernels of rev/ops/attention.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/eigen.hpp"
#include "rev/ops/attention.hpp"

namespace rev::ops::detail {

template <class T>
using attn_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A head's columns of a [N, D] token matrix: N rows of d elements, D apart.
template <class T>
using attn_cols = Eigen::Map<attn_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
using attn_const_cols = Eigen::Map<const attn_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// One task unit is one (sample, head): about Nq * Nk * (d + dv) multiply-adds.
inline index_t attention_grain(const attention_dims& a) {
  return std::max<index_t>(1, (index_t{1} << 16) / std::max<index_t>(1, a.Nq * a.Nk * (a.d + a.dv)));
}

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct attention_kernels {
  template <Scalar T>
  static Tensor<T> multi_head_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int heads,
                                        std::type_identity_t<attention_cache<T>>* cache, double scale) {
    return attention_forward(q, k, v, heads, static_cast<const Tensor<T>*>(nullptr), cache, scale,
                             "rev::ops::multi_head_attention");
  }

  template <Scalar T>
  static Tensor<T> attention_with_bias(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int heads,
                                       const Tensor<T>& bias, std::type_identity_t<attention_cache<T>>* cache,
                                       double scale) {
    return attention_forward(q, k, v, heads, &bias, cache, scale, "rev::ops::attention_with_bias");
  }

  template <Scalar T>
  static attention_grads<T> multi_head_attention_backward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                                          int heads, const attention_cache<T>& cache,
                                                          const Tensor<T>& dout, double scale) {
    return attention_backward(q, k, v, heads, cache, dout, scale, false, "rev::ops::multi_head_attention_backward");
  }

  template <Scalar T>
  static attention_grads<T> attention_with_bias_backward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                                         int heads, const attention_cache<T>& cache,
                                                         const Tensor<T>& dout, double scale) {
    return attention_backward(q, k, v, heads, cache, dout, scale, true, "rev::ops::attention_with_bias_backward");
  }

 private:
  template <Scalar T>
  static Tensor<T> attention_forward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int heads,
                                     const Tensor<T>* bias, attention_cache<T>* cache, double scale, const char* who) {
    const auto a = detail::attention_check(q, k, v, heads, scale, who);
    if (bias) expect_shape(*bias, {a.B, a.heads, a.Nq, a.Nk}, who, "bias");
    Tensor<T> out = Tensor<T>::uninitialized({a.B, a.Nq, a.Dv});
    Tensor<T> probs;
    if (cache) probs = Tensor<T>::uninitialized({a.B, a.heads, a.Nq, a.Nk});
    const T s = static_cast<T>(a.scale);
    parallel_for(a.B * a.heads, detail::attention_grain(a), [&](index_t begin, index_t end) {
      std::vector<T> local(cache ? 0 : static_cast<std::size_t>(a.Nq * a.Nk));
      for (index_t t = begin; t < end; ++t) {
        const index_t b = t / a.heads, h = t % a.heads;
        const detail::attn_const_cols<T> Q(q.data() + b * a.Nq * a.D + h * a.d, a.Nq, a.d, Eigen::OuterStride<>(a.D));
        const detail::attn_const_cols<T> K(k.data() + b * a.Nk * a.D + h * a.d, a.Nk, a.d, Eigen::OuterStride<>(a.D));
        const detail::attn_const_cols<T> V(v.data() + b * a.Nk * a.Dv + h * a.dv, a.Nk, a.dv,
                                           Eigen::OuterStride<>(a.Dv));
        detail::attn_cols<T> O(out.data() + b * a.Nq * a.Dv + h * a.dv, a.Nq, a.dv, Eigen::OuterStride<>(a.Dv));
        T* pp = cache ? probs.data() + t * a.Nq * a.Nk : local.data();
        detail::attn_cols<T> P(pp, a.Nq, a.Nk, Eigen::OuterStride<>(a.Nk));
        P.noalias() = (s * Q) * K.transpose();
        if (bias)
          P += detail::attn_const_cols<T>(bias->data() + t * a.Nq * a.Nk, a.Nq, a.Nk, Eigen::OuterStride<>(a.Nk));
        // Row softmax, shifted by the row maximum.
        for (index_t i = 0; i < a.Nq; ++i) {
          T* row = pp + i * a.Nk;
          const T m = *std::max_element(row, row + a.Nk);
          double sum = 0;
          for (index_t j = 0; j < a.Nk; ++j) {
            row[j] = std::exp(row[j] - m);
            sum += static_cast<double>(row[j]);
          }
          const T inv = static_cast<T>(1.0 / sum);
          for (index_t j = 0; j < a.Nk; ++j) row[j] *= inv;
        }
        O.noalias() = P * V;
      }
    });
    if (cache) cache->probs = std::move(probs);
    return out;
  }

  template <Scalar T>
  static attention_grads<T> attention_backward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int heads,
                                               const attention_cache<T>& cache, const Tensor<T>& dout, double scale,
                                               bool want_dbias, const char* who) {
    const auto a = detail::attention_check(q, k, v, heads, scale, who);
    expect_shape(cache.probs, {a.B, a.heads, a.Nq, a.Nk}, who, "cache.probs");
    expect_shape(dout, {a.B, a.Nq, a.Dv}, who, "dout");
    attention_grads<T> g{Tensor<T>::uninitialized(q.shape()), Tensor<T>::uninitialized(k.shape()),
                         Tensor<T>::uninitialized(v.shape()),
                         want_dbias ? Tensor<T>::uninitialized(cache.probs.shape()) : Tensor<T>()};
    const T s = static_cast<T>(a.scale);
    parallel_for(a.B * a.heads, detail::attention_grain(a), [&](index_t begin, index_t end) {
      detail::attn_matrix<T> dS(a.Nq, a.Nk);
      for (index_t t = begin; t < end; ++t) {
        const index_t b = t / a.heads, h = t % a.heads;
        const index_t qk = b * a.Nq * a.D + h * a.d, kk = b * a.Nk * a.D + h * a.d;
        const index_t vk = b * a.Nk * a.Dv + h * a.dv, ok = b * a.Nq * a.Dv + h * a.dv;
        const detail::attn_const_cols<T> Q(q.data() + qk, a.Nq, a.d, Eigen::OuterStride<>(a.D));
        const detail::attn_const_cols<T> K(k.data() + kk, a.Nk, a.d, Eigen::OuterStride<>(a.D));
        const detail::attn_const_cols<T> V(v.data() + vk, a.Nk, a.dv, Eigen::OuterStride<>(a.Dv));
        const detail::attn_const_cols<T> dO(dout.data() + ok, a.Nq, a.dv, Eigen::OuterStride<>(a.Dv));
        const detail::attn_const_cols<T> P(cache.probs.data() + t * a.Nq * a.Nk, a.Nq, a.Nk,
                                           Eigen::OuterStride<>(a.Nk));
        detail::attn_cols<T> dQ(g.dq.data() + qk, a.Nq, a.d, Eigen::OuterStride<>(a.D));
        detail::attn_cols<T> dK(g.dk.data() + kk, a.Nk, a.d, Eigen::OuterStride<>(a.D));
        detail::attn_cols<T> dV(g.dv.data() + vk, a.Nk, a.dv, Eigen::OuterStride<>(a.Dv));
        dV.noalias() = P.transpose() * dO;
        dS.noalias() = dO * V.transpose();  // dP
        // Softmax backward per row: dS = P ∘ (dP - <P, dP>_row), the bias's gradient; the
        // scores' scale goes to dQ and dK.
        for (index_t i = 0; i < a.Nq; ++i) {
          const T* p = P.data() + i * a.Nk;
          T* r = dS.data() + i * a.Nk;
          double dot = 0;
          for (index_t j = 0; j < a.Nk; ++j) dot += static_cast<double>(p[j]) * static_cast<double>(r[j]);
          const T c = static_cast<T>(dot);
          for (index_t j = 0; j < a.Nk; ++j) r[j] = p[j] * (r[j] - c);
        }
        if (want_dbias) std::copy(dS.data(), dS.data() + a.Nq * a.Nk, g.dbias.data() + t * a.Nq * a.Nk);
        dQ.noalias() = s * (dS * K);
        dK.noalias() = s * (dS.transpose() * Q);
      }
    });
    return g;
  }
};

}  // namespace rev::ops::host
