// Fully connected layer on rev::cuda (CPU: rev/cpu/linear.hpp), y = x W^T + b, through cuBLAS.
// Also the row-major GEMM wrappers that attention.cuh uses.
//
// cuBLAS is column-major: a row-major [m, n] matrix with row stride ld is, to cuBLAS, its
// transpose [n, m] with leading dimension ld. So C = op(A) op(B) (row-major) is computed as
// C^T = op(B)^T op(A)^T (column-major): the same op flags, operands and m, n swapped.
//
// The handle runs in CUBLAS_DEFAULT_MATH: no TF32 tensor-core rounding of float32 inputs, so
// float GEMMs keep float32's 24-bit significand and match the CPU within float32 tolerance.
#pragma once

#include <climits>
#include <type_traits>

#include "rev/core/op_count.hpp"
#include "rev/cuda/handles.hpp"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/linear.hpp"

namespace rev::gpu {

namespace dense_detail {

/// One operand of a row-major GEMM: its pointer, row stride, whether it is used transposed, and
/// the element stride between consecutive matrices of a strided batch.
template <class T>
struct gemm_operand {
  T* data;
  index_t ld;
  bool trans = false;
  index_t batch_stride = 0;
};

inline int blas_int(index_t v, const char* who) {
  check<shape_error>(v >= 0 && v <= INT_MAX, who, ": GEMM extent ", v, " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}

/// cuBLAS's entry points for T.
template <Scalar T>
struct blas_of {
  static constexpr auto gemm = cublasSgemm;
  static constexpr auto gemm_strided_batched = cublasSgemmStridedBatched;
  static constexpr auto gemv = cublasSgemv;
};
template <>
struct blas_of<double> {
  static constexpr auto gemm = cublasDgemm;
  static constexpr auto gemm_strided_batched = cublasDgemmStridedBatched;
  static constexpr auto gemv = cublasDgemv;
};

/// This thread's cuBLAS handle on the current stream, in CUBLAS_DEFAULT_MATH (see above).
inline cublasHandle_t blas_handle() {
  cublasHandle_t h = cublas();
  REV_CUDA_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  return h;
}

/// C = beta * C for `count` matrices [m, n] when the inner extent is 0 (op(A) op(B) is 0).
template <Scalar T>
void scale_matrices(gemm_operand<T> c, index_t m, index_t n, index_t count, T beta) {
  T* p = c.data;
  const index_t ld = c.ld, stride = c.batch_stride;
  for_each(
      count * m * n,
      [=] __device__(index_t i) {
        const index_t b = i / (m * n), r = i / n % m, col = i % n;
        T& v = p[b * stride + r * ld + col];
        v = beta == T(0) ? T(0) : beta * v;
      },
      "rev::gpu::dense_detail::scale_matrices");
}

/// C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, all row-major, for `count` matrices of a
/// strided batch (count 1: a plain GEMM). beta = 0 overwrites C.
template <Scalar T>
void gemm(index_t m, index_t n, index_t k, T alpha, gemm_operand<const T> a, gemm_operand<const T> b, T beta,
          gemm_operand<T> c, index_t count = 1, const char* who = "rev::gpu::gemm") {
  if (m == 0 || n == 0 || count == 0) return;
  if (k == 0) return scale_matrices(c, m, n, count, beta);
  const int im = blas_int(m, who), in = blas_int(n, who), ik = blas_int(k, who), batch = blas_int(count, who);
  const int lda = blas_int(a.ld, who), ldb = blas_int(b.ld, who), ldc = blas_int(c.ld, who);
  const cublasOperation_t ta = a.trans ? CUBLAS_OP_T : CUBLAS_OP_N, tb = b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasHandle_t h = blas_handle();
  if (count == 1)
    REV_CUDA_CHECK(blas_of<T>::gemm(h, tb, ta, in, im, ik, &alpha, b.data, ldb, a.data, lda, &beta, c.data, ldc));
  else
    REV_CUDA_CHECK(blas_of<T>::gemm_strided_batched(h, tb, ta, in, im, ik, &alpha, b.data, ldb, b.batch_stride, a.data,
                                                    lda, a.batch_stride, &beta, c.data, ldc, c.batch_stride, batch));
}

// y[r, o] += bias[o] for rows x out values.
template <Scalar T>
void add_bias(T* y, const T* bias, index_t rows, index_t out) {
  for_each(
      rows * out, [=] __device__(index_t i) { y[i] += bias[i % out]; }, "rev::ops::linear (bias)");
}

}  // namespace dense_detail

struct linear_ops {
  /// y = x W^T + bias. x [..., in] (rank >= 1), w [out, in], bias [out] or nullptr -> [..., out].
  template <Scalar T>
  static Tensor<T, cuda> linear(const Tensor<T, cuda>& x, const Tensor<T, cuda>& w,
                                std::type_identity_t<const Tensor<T, cuda>*> bias) {
    constexpr const char* who = "rev::ops::linear";
    const index_t rows = ops::detail::linear_check(who, x, w);
    const index_t in = w.size(1), out = w.size(0);
    if (bias) expect_shape(*bias, Shape{out}, who, "bias");
    Shape ys = x.shape();
    ys[-1] = out;
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(ys);
    if (op_counts* c = rev::detail::active_op_counts()) c->linear_macs += rows * in * out;
    // Y [rows, out] = X [rows, in] W^T, W stored [out, in].
    dense_detail::gemm<T>(rows, out, in, T(1), {x.data(), in}, {w.data(), in, true}, T(0), {y.data(), out}, 1, who);
    if (bias) dense_detail::add_bias(y.data(), bias->data(), rows, out);
    return y;
  }

  /// The backward of linear given dy [..., out]. Returns dL/dx (an empty tensor when need_dx is
  /// false); ADDS dL/dw = dy^T x into *dw and dL/db = sum of dy's rows into *db when non-null.
  template <Scalar T>
  static Tensor<T, cuda> linear_backward(const Tensor<T, cuda>& x, const Tensor<T, cuda>& w, const Tensor<T, cuda>& dy,
                                         std::type_identity_t<Tensor<T, cuda>*> dw,
                                         std::type_identity_t<Tensor<T, cuda>*> db, bool need_dx = true) {
    constexpr const char* who = "rev::ops::linear_backward";
    const index_t rows = ops::detail::linear_check(who, x, w);
    const index_t in = w.size(1), out = w.size(0);
    Shape ys = x.shape();
    ys[-1] = out;
    expect_shape(dy, ys, who, "output gradient");
    if (dw) expect_shape(*dw, w.shape(), who, "weight gradient");
    if (db) expect_shape(*db, Shape{out}, who, "bias gradient");
    // dW [out, in] += dY^T X, dY stored [rows, out].
    if (dw && rows > 0)
      dense_detail::gemm<T>(out, in, rows, T(1), {dy.data(), out, true}, {x.data(), in}, T(1), {dw->data(), in}, 1,
                            who);
    // db [out] += dY^T 1: a GEMV of the column-major view [out, rows] of dY with a vector of ones.
    if (db && rows > 0 && out > 0) {
      const Tensor<T, cuda> ones = Tensor<T, cuda>::full({rows}, T(1));
      const int m = dense_detail::blas_int(out, who), n = dense_detail::blas_int(rows, who);
      const T one = 1;
      REV_CUDA_CHECK(dense_detail::blas_of<T>::gemv(dense_detail::blas_handle(), CUBLAS_OP_N, m, n, &one, dy.data(), m,
                                                    ones.data(), 1, &one, db->data(), 1));
    }
    if (!need_dx) return Tensor<T, cuda>();
    // dX [rows, in] = dY [rows, out] W [out, in].
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(x.shape());
    dense_detail::gemm<T>(rows, in, out, T(1), {dy.data(), out}, {w.data(), in}, T(0), {dx.data(), in}, 1, who);
    return dx;
  }
};

}  // namespace rev::gpu
