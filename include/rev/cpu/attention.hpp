// Scaled dot-product multi-head attention on token tensors (../shared/specs/revvit.md §1.4):
// for q [B, Nq, D], k [B, Nk, D], v [B, Nk, Dv] and head h (columns h*d .. (h+1)*d - 1 of D,
// d = D / heads, and likewise of Dv),
//   P_h = softmax_rows(scale * q_h k_h^T)      [Nq, Nk]
//   out_h = P_h v_h                            [Nq, Dv / heads]
// with the heads concatenated back in order, scale = 1/sqrt(d) unless given. The backward
// (dS = P ∘ (dP - rowsum(P ∘ dP)), dP = dout_h v_h^T) reads P from the forward's cache.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "rev/cpu/eigen.hpp"

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

/// What the backward of multi_head_attention needs besides its inputs.
template <Scalar T, class B = cpu>
struct attention_cache {
  Tensor<T, B> probs;  // [B, heads, Nq, Nk]
};

template <Scalar T, class B = cpu>
struct attention_grads {
  Tensor<T, B> dq, dk, dv;
};

namespace detail {

template <class T>
using attn_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A head's columns of a [N, D] token matrix: N rows of d elements, D apart.
template <class T>
using attn_cols = Eigen::Map<attn_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using attn_const_cols = Eigen::Map<const attn_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// The checked extents of one attention call.
struct attention_dims {
  index_t B, Nq, Nk, D, Dv, heads, d, dv;
  double scale;
};

template <class T, class Backend>
attention_dims attention_check(const Tensor<T, Backend>& q, const Tensor<T, Backend>& k, const Tensor<T, Backend>& v,
                               int heads, double scale, const char* who) {
  check<value_error>(heads >= 1, who, ": heads must be >= 1, got ", heads);
  check<value_error>(std::isfinite(scale), who, ": scale must be finite, got ", scale);
  expect_rank(q, 3, who, "q");
  expect_rank(k, 3, who, "k");
  expect_rank(v, 3, who, "v");
  const index_t B = q.size(0), Nq = q.size(1), D = q.size(2), Nk = k.size(1), Dv = v.size(2);
  check<shape_error>(k.size(0) == B && k.size(2) == D, who, ": k has extents ", k.shape(), ", expected [", B, ", Nk, ",
                     D, "] to match q ", q.shape());
  check<shape_error>(Nk >= 1, who, ": k has extents ", k.shape(), ", expected at least one token");
  check<shape_error>(v.size(0) == B && v.size(1) == Nk, who, ": v has extents ", v.shape(), ", expected [", B, ", ", Nk,
                     ", Dv] to match k ", k.shape());
  check<shape_error>(D % heads == 0 && Dv % heads == 0, who, ": widths ", D, " (q, k) and ", Dv,
                     " (v) must be divisible by heads = ", heads);
  const index_t d = D / heads;
  return {B, Nq, Nk, D, Dv, heads, d, Dv / heads, scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(d))};
}

// One task unit is one (sample, head): about Nq * Nk * (d + dv) multiply-adds.
inline index_t attention_grain(const attention_dims& a) {
  return std::max<index_t>(1, (index_t{1} << 16) / std::max<index_t>(1, a.Nq * a.Nk * (a.d + a.dv)));
}

}  // namespace detail

/// out [B, Nq, Dv] = concat_h softmax(q_h k_h^T * scale) v_h. scale = 0 means 1/sqrt(D/heads).
/// With a cache, keeps the probabilities [B, heads, Nq, Nk] there for the backward (the cache's
/// type is not deduced, so that nullptr can be passed).
template <Scalar T>
Tensor<T> multi_head_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int heads,
                               std::type_identity_t<attention_cache<T>>* cache = nullptr, double scale = 0) {
  const auto a = detail::attention_check(q, k, v, heads, scale, "rev::ops::multi_head_attention");
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
      const detail::attn_const_cols<T> V(v.data() + b * a.Nk * a.Dv + h * a.dv, a.Nk, a.dv, Eigen::OuterStride<>(a.Dv));
      detail::attn_cols<T> O(out.data() + b * a.Nq * a.Dv + h * a.dv, a.Nq, a.dv, Eigen::OuterStride<>(a.Dv));
      T* pp = cache ? probs.data() + t * a.Nq * a.Nk : local.data();
      detail::attn_cols<T> P(pp, a.Nq, a.Nk, Eigen::OuterStride<>(a.Nk));
      P.noalias() = (s * Q) * K.transpose();
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

/// The gradients of multi_head_attention's inputs given dout [B, Nq, Dv] and the forward's cache
/// (the same q, k, v, heads and scale).
template <Scalar T>
attention_grads<T> multi_head_attention_backward(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, int heads,
                                                 const attention_cache<T>& cache, const Tensor<T>& dout,
                                                 double scale = 0) {
  constexpr const char* who = "rev::ops::multi_head_attention_backward";
  const auto a = detail::attention_check(q, k, v, heads, scale, who);
  expect_shape(cache.probs, {a.B, a.heads, a.Nq, a.Nk}, who, "cache.probs");
  expect_shape(dout, {a.B, a.Nq, a.Dv}, who, "dout");
  attention_grads<T> g{Tensor<T>::uninitialized(q.shape()), Tensor<T>::uninitialized(k.shape()),
                       Tensor<T>::uninitialized(v.shape())};
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
      const detail::attn_const_cols<T> P(cache.probs.data() + t * a.Nq * a.Nk, a.Nq, a.Nk, Eigen::OuterStride<>(a.Nk));
      detail::attn_cols<T> dQ(g.dq.data() + qk, a.Nq, a.d, Eigen::OuterStride<>(a.D));
      detail::attn_cols<T> dK(g.dk.data() + kk, a.Nk, a.d, Eigen::OuterStride<>(a.D));
      detail::attn_cols<T> dV(g.dv.data() + vk, a.Nk, a.dv, Eigen::OuterStride<>(a.Dv));
      dV.noalias() = P.transpose() * dO;
      dS.noalias() = dO * V.transpose();  // dP
      // Softmax backward per row: dS = P ∘ (dP - <P, dP>_row), then the scale of the scores.
      for (index_t i = 0; i < a.Nq; ++i) {
        const T* p = P.data() + i * a.Nk;
        T* r = dS.data() + i * a.Nk;
        double dot = 0;
        for (index_t j = 0; j < a.Nk; ++j) dot += static_cast<double>(p[j]) * static_cast<double>(r[j]);
        const T c = static_cast<T>(dot);
        for (index_t j = 0; j < a.Nk; ++j) r[j] = s * p[j] * (r[j] - c);
      }
      dQ.noalias() = dS * K;
      dK.noalias() = dS.transpose() * Q;
    }
  });
  return g;
}

}  // namespace rev::ops
