// Scaled dot-product multi-head attention on rev::cuda (CPU: rev/cpu/attention.hpp). Per sample
// b and head h (columns h*d .. (h+1)*d - 1 of q and k, likewise of v and out):
//   P_h = softmax_rows(scale * q_h k_h^T),  out_h = P_h v_h,
// and backward dV = P^T dO, dP = dO V^T, dS = scale * P ∘ (dP - rowsum(P ∘ dP)), dQ = dS K,
// dK = dS^T Q. The products are cuBLAS strided-batched GEMMs (linear.cuh), the row softmax and
// its backward the kernels of softmax.cuh, on the probabilities [B, heads, Nq, Nk].
#pragma once

#include <type_traits>
#include <utility>

#include "rev/cuda/linear.cuh"
#include "rev/cuda/softmax.cuh"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/attention.hpp"

namespace rev::gpu {

namespace dense_detail {

/// An operand of the per-(sample, head) GEMMs: the matrix of sample b and head h starts at
/// data + b * sample + h * head, with row stride ld.
template <class T>
struct attn_operand {
  T* data;
  index_t ld;
  bool trans;
  index_t sample, head;
};

/// C_bh = alpha op(A_bh) op(B_bh) for every sample b and head h. A strided batch has a single
/// stride, so the larger of B and heads is batched and the other looped over.
template <Scalar T>
void attn_gemm(const ops::detail::attention_dims& a, index_t m, index_t n, index_t k, T alpha, attn_operand<const T> x,
               attn_operand<const T> y, attn_operand<T> c, const char* who) {
  const bool batch_samples = a.B >= a.heads;
  const index_t outer = batch_samples ? a.heads : a.B, count = batch_samples ? a.B : a.heads;
  for (index_t o = 0; o < outer; ++o) {
    const auto at = [&]<class U>(const attn_operand<U>& p) {
      return gemm_operand<U>{p.data + o * (batch_samples ? p.head : p.sample), p.ld, p.trans,
                             batch_samples ? p.sample : p.head};
    };
    gemm<T>(m, n, k, alpha, at(x), at(y), T(0), at(c), count, who);
  }
}

}  // namespace dense_detail

struct attention_ops {
  /// out [B, Nq, Dv] = concat_h softmax(q_h k_h^T * scale) v_h. scale = 0 means 1/sqrt(D/heads).
  /// With a cache, keeps the probabilities [B, heads, Nq, Nk] there for the backward.
  template <Scalar T>
  static Tensor<T, cuda> multi_head_attention(const Tensor<T, cuda>& q, const Tensor<T, cuda>& k,
                                              const Tensor<T, cuda>& v, int heads,
                                              std::type_identity_t<ops::attention_cache<T, cuda>>* cache = nullptr,
                                              double scale = 0) {
    constexpr const char* who = "rev::ops::multi_head_attention";
    const auto a = ops::detail::attention_check(q, k, v, heads, scale, who);
    Tensor<T, cuda> out = Tensor<T, cuda>::uninitialized({a.B, a.Nq, a.Dv});
    Tensor<T, cuda> probs = Tensor<T, cuda>::uninitialized({a.B, a.heads, a.Nq, a.Nk});
    const index_t pq = a.Nq * a.Nk;
    const dense_detail::attn_operand<const T> P{probs.data(), a.Nk, false, a.heads * pq, pq};
    // S = scale * Q K^T into the probabilities, then their row softmax in place.
    dense_detail::attn_gemm<T>(a, a.Nq, a.Nk, a.d, static_cast<T>(a.scale), {q.data(), a.D, false, a.Nq * a.D, a.d},
                               {k.data(), a.D, true, a.Nk * a.D, a.d}, {probs.data(), a.Nk, false, a.heads * pq, pq},
                               who);
    dense_detail::softmax_rows(probs.data(), probs.data(), a.B * a.heads * a.Nq, a.Nk);
    // O = P V.
    dense_detail::attn_gemm<T>(a, a.Nq, a.dv, a.Nk, T(1), P, {v.data(), a.Dv, false, a.Nk * a.Dv, a.dv},
                               {out.data(), a.Dv, false, a.Nq * a.Dv, a.dv}, who);
    if (cache) cache->probs = std::move(probs);
    return out;
  }

  /// The gradients of multi_head_attention's inputs given dout [B, Nq, Dv] and the forward's
  /// cache (the same q, k, v, heads and scale).
  template <Scalar T>
  static ops::attention_grads<T, cuda> multi_head_attention_backward(const Tensor<T, cuda>& q, const Tensor<T, cuda>& k,
                                                                     const Tensor<T, cuda>& v, int heads,
                                                                     const ops::attention_cache<T, cuda>& cache,
                                                                     const Tensor<T, cuda>& dout, double scale = 0) {
    constexpr const char* who = "rev::ops::multi_head_attention_backward";
    const auto a = ops::detail::attention_check(q, k, v, heads, scale, who);
    expect_shape(cache.probs, {a.B, a.heads, a.Nq, a.Nk}, who, "cache.probs");
    expect_shape(dout, {a.B, a.Nq, a.Dv}, who, "dout");
    ops::attention_grads<T, cuda> g{Tensor<T, cuda>::uninitialized(q.shape()),
                                    Tensor<T, cuda>::uninitialized(k.shape()),
                                    Tensor<T, cuda>::uninitialized(v.shape()), Tensor<T, cuda>()};
    Tensor<T, cuda> dS = Tensor<T, cuda>::uninitialized(cache.probs.shape());
    const index_t pq = a.Nq * a.Nk;
    const dense_detail::attn_operand<const T> P{cache.probs.data(), a.Nk, false, a.heads * pq, pq},
        Pt{cache.probs.data(), a.Nk, true, a.heads * pq, pq}, dO{dout.data(), a.Dv, false, a.Nq * a.Dv, a.dv},
        S{dS.data(), a.Nk, false, a.heads * pq, pq}, St{dS.data(), a.Nk, true, a.heads * pq, pq},
        Q{q.data(), a.D, false, a.Nq * a.D, a.d}, K{k.data(), a.D, false, a.Nk * a.D, a.d};
    // dV = P^T dO, dP = dO V^T (into dS).
    dense_detail::attn_gemm<T>(a, a.Nk, a.dv, a.Nq, T(1), Pt, dO, {g.dv.data(), a.Dv, false, a.Nk * a.Dv, a.dv}, who);
    dense_detail::attn_gemm<T>(a, a.Nq, a.Nk, a.dv, T(1), dO, {v.data(), a.Dv, true, a.Nk * a.Dv, a.dv},
                               {dS.data(), a.Nk, false, a.heads * pq, pq}, who);
    // dS = scale * P ∘ (dP - rowsum(P ∘ dP)), in place.
    dense_detail::softmax_rows_backward(cache.probs.data(), dS.data(), dS.data(), a.B * a.heads * a.Nq, a.Nk,
                                        static_cast<T>(a.scale));
    // dQ = dS K, dK = dS^T Q.
    dense_detail::attn_gemm<T>(a, a.Nq, a.d, a.Nk, T(1), S, K, {g.dq.data(), a.D, false, a.Nq * a.D, a.d}, who);
    dense_detail::attn_gemm<T>(a, a.Nk, a.d, a.Nq, T(1), St, Q, {g.dk.data(), a.D, false, a.Nk * a.D, a.d}, who);
    return g;
  }
};

}  // namespace rev::gpu
