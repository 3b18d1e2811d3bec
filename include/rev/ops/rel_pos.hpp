// Decomposed relative positions (MViTv2: Li et al., "MViTv2: Improved Multiscale Vision
// Transformers", CVPR 2022, Sec. 4.1; spec revvit.md §4.2). For queries on a qh x qw grid and
// keys on a kh x kw grid, the score of query (i, j) and key (m, n) gains
//
//   bias[(i, j), (m, n)] = q_(i,j) · R_h[i, m] + q_(i,j) · R_w[j, n]
//
// with R[i, m] = table[offset(i, m)], offset(i, m) = i·max(k/q, 1) − m·max(q/k, 1) + (k − 1)·max(q/k, 1)
// (grids of different sides compared at the finer one's scale, truncated to an integer) from a
// learned table of 2·max(q, k) − 1 rows of d; a table of another length is first resampled
// linearly to that length (align_corners = False, as F.interpolate). rel_pos_lookup builds R,
// rel_pos_bias the scores' bias; both are linear, their backwards are the transposed maps.
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/op_count.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

template <Scalar T, class B = cpu>
struct rel_pos_bias_grads {
  Tensor<T, B> dq, drh, drw;
};

namespace detail {

struct rel_pos_bias_dims {
  index_t B, qh, qw, kh, kw, d;
};

template <class X>
rel_pos_bias_dims rel_pos_bias_check(const X& q, const X& rh, const X& rw, const char* who) {
  expect_rank(q, 3, who, "q");
  expect_rank(rh, 3, who, "rh");
  expect_rank(rw, 3, who, "rw");
  const index_t qh = rh.size(0), kh = rh.size(1), qw = rw.size(0), kw = rw.size(1), d = q.size(2);
  check<shape_error>(rh.size(2) == d && rw.size(2) == d, who, ": rh ", rh.shape(), " and rw ", rw.shape(),
                     " must have q's width ", d);
  check<shape_error>(q.size(1) == qh * qw, who, ": q has extents ", q.shape(), ", expected [B, ", qh, " * ", qw, ", ",
                     d, "] for rh ", rh.shape(), " and rw ", rw.shape());
  return {q.size(0), qh, qw, kh, kw, d};
}

}  // namespace detail

/// table [L, d] -> R [q, k, d] (see the header comment).
template <Scalar T, class B>
Tensor<T, B> rel_pos_lookup(const Tensor<T, B>& table, index_t q, index_t k) {
  return kernels<B>::rel_pos_lookup(table, q, k);
}

/// dR [q, k, d] -> dtable [L, d].
template <Scalar T, class B>
Tensor<T, B> rel_pos_lookup_backward(const Tensor<T, B>& dr, index_t table_length) {
  return kernels<B>::rel_pos_lookup_backward(dr, table_length);
}

/// q [B, qh*qw, d], rh [qh, kh, d], rw [qw, kw, d] -> bias [B, qh*qw, kh*kw].
template <Scalar T, class B>
Tensor<T, B> rel_pos_bias(const Tensor<T, B>& q, const Tensor<T, B>& rh, const Tensor<T, B>& rw) {
  Tensor<T, B> bias = kernels<B>::rel_pos_bias(q, rh, rw);
  if (op_counts* c = rev::detail::active_op_counts())  // q . R_h and q . R_w per query
    c->rel_pos_macs += q.size(0) * q.size(1) * (rh.size(1) + rw.size(1)) * q.size(2);
  return bias;
}

/// The gradients of q, rh and rw given dbias [B, qh*qw, kh*kw].
template <Scalar T, class B>
rel_pos_bias_grads<T, B> rel_pos_bias_backward(const Tensor<T, B>& q, const Tensor<T, B>& rh, const Tensor<T, B>& rw,
                                               const Tensor<T, B>& dbias) {
  return kernels<B>::rel_pos_bias_backward(q, rh, rw, dbias);
}

}  // namespace rev::ops
