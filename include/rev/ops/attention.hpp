// Scaled dot-product multi-head attention on token tensors (Vaswani et al. 2017, eq. (1)):
// for q [B, Nq, D], k [B, Nk, D], v [B, Nk, Dv] and head h (columns h*d .. (h+1)*d - 1 of D,
// d = D / heads, and likewise of Dv),
//   P_h = softmax_rows(scale * q_h k_h^T)      [Nq, Nk]
//   out_h = P_h v_h                            [Nq, Dv / heads]
// with the heads concatenated back in order, scale = 1/sqrt(d) unless given. The backward
// (dS = P ∘ (dP - rowsum(P ∘ dP)), dP = dout_h v_h^T) reads P from the forward's cache.
// attention_with_bias adds a bias to the scores before the softmax, P_h = softmax_rows(scale *
// q_h k_h^T + bias_h) (MViTv2's relative positions, masks); the bias's gradient is dS.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "rev/core/device.hpp"
#include "rev/core/op_count.hpp"
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
  Tensor<T, B> dbias;  // attention_with_bias_backward's; empty otherwise
};

namespace detail {

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

}  // namespace detail

/// out [B, Nq, Dv] = concat_h softmax(q_h k_h^T * scale) v_h. scale = 0 means 1/sqrt(D/heads).
/// With a cache, keeps the probabilities [B, heads, Nq, Nk] there for the backward (the cache's
/// type is not deduced, so that nullptr can be passed).
template <Scalar T, class B>
Tensor<T, B> multi_head_attention(const Tensor<T, B>& q, const Tensor<T, B>& k, const Tensor<T, B>& v, int heads,
                                  std::type_identity_t<attention_cache<T, B>>* cache = nullptr, double scale = 0) {
  Tensor<T, B> out = kernels<B>::multi_head_attention(q, k, v, heads, cache, scale);
  if (op_counts* c = rev::detail::active_op_counts())  // q k^T and probabilities x v, per head
    c->attention_macs += q.size(0) * q.size(1) * k.size(1) * (q.size(2) + v.size(2));
  return out;
}

/// The gradients of multi_head_attention's inputs given dout [B, Nq, Dv] and the forward's cache
/// (the same q, k, v, heads and scale).
template <Scalar T, class B>
attention_grads<T, B> multi_head_attention_backward(const Tensor<T, B>& q, const Tensor<T, B>& k, const Tensor<T, B>& v,
                                                    int heads, const attention_cache<T, B>& cache,
                                                    const Tensor<T, B>& dout, double scale = 0) {
  return kernels<B>::multi_head_attention_backward(q, k, v, heads, cache, dout, scale);
}

/// out [B, Nq, Dv] = concat_h softmax(q_h k_h^T * scale + bias_h) v_h for bias [B, heads, Nq, Nk].
template <Scalar T, class B>
Tensor<T, B> attention_with_bias(const Tensor<T, B>& q, const Tensor<T, B>& k, const Tensor<T, B>& v, int heads,
                                 const Tensor<T, B>& bias, std::type_identity_t<attention_cache<T, B>>* cache = nullptr,
                                 double scale = 0) {
  Tensor<T, B> out = kernels<B>::attention_with_bias(q, k, v, heads, bias, cache, scale);
  if (op_counts* c = rev::detail::active_op_counts())
    c->attention_macs += q.size(0) * q.size(1) * k.size(1) * (q.size(2) + v.size(2));
  return out;
}

/// The gradients of attention_with_bias's inputs, dbias [B, heads, Nq, Nk] included.
template <Scalar T, class B>
attention_grads<T, B> attention_with_bias_backward(const Tensor<T, B>& q, const Tensor<T, B>& k, const Tensor<T, B>& v,
                                                   int heads, const attention_cache<T, B>& cache,
                                                   const Tensor<T, B>& dout, double scale = 0) {
  return kernels<B>::attention_with_bias_backward(q, k, v, heads, cache, dout, scale);
}

}  // namespace rev::ops
