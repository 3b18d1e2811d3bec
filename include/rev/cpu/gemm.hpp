// Dense matrix products on raw row-major buffers, through Eigen::Map (no copies). The GEMM of
// one call runs on the calling thread; ops parallelise around it with rev::parallel_for.
#pragma once

#include <algorithm>
#include <concepts>
#include <type_traits>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/eigen.hpp"

namespace rev::ops {

/// A row-major matrix of `rows` x `cols` elements whose rows start `ld` elements apart, used
/// as is or transposed.
template <class T>
struct matrix_ref {
  T* data;
  index_t rows, cols, ld;
  bool transposed = false;

  index_t op_rows() const { return transposed ? cols : rows; }
  index_t op_cols() const { return transposed ? rows : cols; }
};

/// A row-major matrix of rows x cols; ld defaults to cols (contiguous).
template <class T>
matrix_ref<T> mat(T* data, index_t rows, index_t cols, index_t ld = -1) {
  return {data, rows, cols, ld < 0 ? cols : ld};
}
/// The transpose of a row-major matrix of rows x cols (an operand of cols x rows).
template <class T>
matrix_ref<T> mat_t(T* data, index_t rows, index_t cols, index_t ld = -1) {
  return {data, rows, cols, ld < 0 ? cols : ld, true};
}

namespace detail {

template <class T>
using row_major = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using row_major_map = Eigen::Map<std::conditional_t<std::is_const_v<T>, const row_major<T>, row_major<T>>,
                                 Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
row_major_map<T> eigen_map(const matrix_ref<T>& m) {
  return row_major_map<T>(m.data, m.rows, m.cols, Eigen::OuterStride<>(m.ld));
}

}  // namespace detail

/// C = alpha * op(A) op(B) + beta * C, where op() transposes the operands marked transposed.
/// beta = 0 ignores C's previous contents (they may be uninitialised). Runs on the calling
/// thread (Eigen's GEMM, which rev never lets parallelise itself).
template <Scalar T, class TA, class TB>
requires std::same_as<std::remove_const_t<TA>, T> && std::same_as<std::remove_const_t<TB>, T>
void gemm(matrix_ref<TA> a, matrix_ref<TB> b, matrix_ref<T> c, T alpha = T(1), T beta = T(0)) {
  if (c.rows == 0 || c.cols == 0) return;
  auto C = detail::eigen_map(c);
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  if (a.op_cols() == 0) return;
  const auto A = detail::eigen_map(a);
  const auto B = detail::eigen_map(b);
  if (!a.transposed && !b.transposed) C.noalias() += alpha * A * B;
  else if (a.transposed && !b.transposed) C.noalias() += alpha * A.transpose() * B;
  else if (!a.transposed && b.transposed) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

namespace detail {

/// acc[0, size) += the contributions of items [0, n), computed by f(begin, end, partial), which
/// ADDS the contributions of items [begin, end) into `partial`. The items are split into one
/// chunk per thread, each with its own zeroed partial, summed into acc at the end.
template <Scalar T, class F>
void parallel_accumulate(index_t n, index_t size, T* acc, F&& f) {
  const index_t chunks = std::min<index_t>(n, num_threads());
  if (chunks <= 1 || rev::detail::thread_pool::in_parallel()) {
    if (n > 0) f(index_t{0}, n, acc);
    return;
  }
  Tensor<T> partial({chunks, size});
  parallel_for(chunks, 1, [&](index_t b, index_t e) {
    for (index_t t = b; t < e; ++t) f(t * n / chunks, (t + 1) * n / chunks, partial.data() + t * size);
  });
  for (index_t t = 0; t < chunks; ++t) {
    const T* p = partial.data() + t * size;
    for (index_t i = 0; i < size; ++i) acc[i] += p[i];
  }
}

/// How many of `cols` columns one task of a GEMM-based op takes, when `batch` independent
/// products of that width are to be spread over the pool: whole rows unless the batch alone
/// gives too few tasks, and never fewer than `min_block` columns.
inline index_t column_block(index_t batch, index_t cols, index_t min_block = 256) {
  const index_t wanted = 4 * index_t{num_threads()};
  if (batch >= wanted || cols <= min_block) return std::max<index_t>(cols, 1);
  const index_t blocks = (wanted + batch - 1) / batch;
  const index_t block = std::max(min_block, (cols + blocks - 1) / blocks);
  return std::min(cols, (block + 15) / 16 * 16);
}

// Rows [r0, r1) of op(m), and columns [c0, c1) of op(m).
template <class T>
matrix_ref<T> op_rows(matrix_ref<T> m, index_t r0, index_t r1) {
  if (m.transposed) return {m.data + r0, m.rows, r1 - r0, m.ld, true};
  return {m.data + r0 * m.ld, r1 - r0, m.cols, m.ld, false};
}
template <class T>
matrix_ref<T> op_cols(matrix_ref<T> m, index_t c0, index_t c1) {
  if (m.transposed) return {m.data + c0 * m.ld, c1 - c0, m.cols, m.ld, true};
  return {m.data + c0, m.rows, c1 - c0, m.ld, false};
}

}  // namespace detail

/// gemm(a, b, c, 1, beta) spread over the thread pool: C is cut into blocks of rows and
/// columns, one GEMM each; when C is too small to give every thread a block but the inner
/// dimension is long, the inner dimension is cut instead and the partial products summed.
template <Scalar T, class TA, class TB>
requires std::same_as<std::remove_const_t<TA>, T> && std::same_as<std::remove_const_t<TB>, T>
void parallel_gemm(matrix_ref<TA> a, matrix_ref<TB> b, matrix_ref<T> c, T beta = T(0)) {
  const index_t m = c.rows, n = c.cols, k = a.op_cols();
  const index_t threads = num_threads();
  // About 2^17 multiply-adds per task at least, at most 4 tasks per thread.
  const index_t wanted = std::clamp<index_t>(m * n * k >> 17, 1, 4 * threads);
  if (wanted == 1 || threads == 1 || rev::detail::thread_pool::in_parallel()) return gemm(a, b, c, T(1), beta);
  index_t row_blocks = 1, col_blocks = 1;
  while (row_blocks * col_blocks < wanted) {
    const index_t rows = m / row_blocks, cols = n / col_blocks;
    if (rows >= 2 * 32 && rows >= cols / 4) row_blocks *= 2;
    else if (cols >= 2 * 64) col_blocks *= 2;
    else break;
  }
  if (row_blocks * col_blocks < threads && k >= 4 * 256) {  // cut the inner dimension
    Tensor<T> acc({m, n});
    const index_t chunks = std::min(threads, k / 256);
    detail::parallel_accumulate(chunks, m * n, acc.data(), [&](index_t b0, index_t b1, T* part) {
      const index_t k0 = b0 * k / chunks, k1 = b1 * k / chunks;
      gemm(detail::op_cols(a, k0, k1), detail::op_rows(b, k0, k1), mat(part, m, n), T(1), T(1));
    });
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        T& v = c.data[i * c.ld + j];
        v = (beta == T(0) ? T(0) : beta * v) + acc.data()[i * n + j];
      }
    return;
  }
  const index_t rb = (m + row_blocks - 1) / row_blocks, cb = ((n + col_blocks - 1) / col_blocks + 15) / 16 * 16;
  const index_t cbs = (n + cb - 1) / cb;
  parallel_for(row_blocks * cbs, 1, [&](index_t t0, index_t t1) {
    for (index_t t = t0; t < t1; ++t) {
      const index_t r0 = t / cbs * rb, r1 = std::min(m, r0 + rb), c0 = t % cbs * cb, c1 = std::min(n, c0 + cb);
      if (r0 >= r1 || c0 >= c1) continue;
      gemm(detail::op_rows(a, r0, r1), detail::op_cols(b, c0, c1),
           matrix_ref<T>{c.data + r0 * c.ld + c0, r1 - r0, c1 - c0, c.ld}, T(1), beta);
    }
  });
}

}  // namespace rev::ops
