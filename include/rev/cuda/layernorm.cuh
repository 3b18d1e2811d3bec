// Layer normalisation on rev::cuda (CPU: rev/cpu/layernorm.hpp), with the CPU's biased variance
// and per-channel affine map:
//   y = (x - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var + eps),
// over the last extent of [..., D] (layer_norm: one warp per row) or over the channels of each
// pixel of NCHW (layer_norm_channels: one thread per pixel, reading the C channels HW apart, so
// neighbouring threads read neighbouring pixels). Statistics are summed in double, in two passes
// (mean, then the squared deviations); the backward recomputes them from x. The parameter
// gradients are summed per chunk of rows into double partials, then the partials in a fixed
// order: deterministic, like the CPU's blocked sums.
#pragma once

#include <algorithm>
#include <type_traits>

#include "rev/cuda/softmax.cuh"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/layernorm.hpp"

namespace rev::gpu {

namespace dense_detail {

// Mean and rstd of n values v[i * stride], i in [first, n) step `step`, of which this thread
// reads its share; reduce(a) sums a over the threads that share the values.
template <class T, class R>
__device__ void ln_stats(const T* v, index_t n, index_t stride, index_t first, index_t step, double eps, R reduce,
                         double& mean, double& rstd) {
  double s = 0;
  for (index_t i = first; i < n; i += step) s += static_cast<double>(v[i * stride]);
  mean = reduce(s) / static_cast<double>(n);
  double q = 0;
  for (index_t i = first; i < n; i += step) {
    const double d = static_cast<double>(v[i * stride]) - mean;
    q += d * d;
  }
  rstd = 1.0 / sqrt(reduce(q) / static_cast<double>(n) + eps);
}

struct ln_warp_reduce {
  __device__ double operator()(double v) const { return warp_sum(v); }
};
struct ln_no_reduce {
  __device__ double operator()(double v) const { return v; }
};

template <class T>
__global__ void ln_rows_kernel(const T* x, const T* w, const T* b, T* y, index_t rows, index_t D, double eps) {
  const int lane = threadIdx.x % warp_size;
  for (index_t r = first_row(); r < rows; r += row_stride()) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    double mean, rstd;
    ln_stats(xr, D, 1, lane, warp_size, eps, ln_warp_reduce{}, mean, rstd);
    const T tm = static_cast<T>(mean), tr = static_cast<T>(rstd);
    for (index_t i = lane; i < D; i += warp_size) yr[i] = (xr[i] - tm) * tr * w[i] + b[i];
  }
}

// dx = rstd * g - k1 * (x - mean) - k0, g = dy * w, k1 = rstd^3 mean(g (x - mean)), k0 = rstd mean(g).
// Keeps each row's mean and rstd (when stats is non-null: [rows, 2]) for the parameter gradients.
template <class T>
__global__ void ln_rows_backward_kernel(const T* x, const T* w, const T* dy, T* dx, double* stats, index_t rows,
                                        index_t D, double eps) {
  const int lane = threadIdx.x % warp_size;
  for (index_t r = first_row(); r < rows; r += row_stride()) {
    const T *xr = x + r * D, *gr = dy + r * D;
    T* dr = dx + r * D;
    double mean, rstd, sg = 0, sgx = 0;
    ln_stats(xr, D, 1, lane, warp_size, eps, ln_warp_reduce{}, mean, rstd);
    for (index_t i = lane; i < D; i += warp_size) {
      const double g = static_cast<double>(gr[i]) * static_cast<double>(w[i]);
      sg += g;
      sgx += g * (static_cast<double>(xr[i]) - mean);
    }
    sg = warp_sum(sg);
    sgx = warp_sum(sgx);
    const double n = static_cast<double>(D);
    const T tr = static_cast<T>(rstd), tm = static_cast<T>(mean), k1 = static_cast<T>(rstd * rstd * rstd * sgx / n),
            k0 = static_cast<T>(rstd * sg / n);
    for (index_t i = lane; i < D; i += warp_size) dr[i] = tr * gr[i] * w[i] - k1 * (xr[i] - tm) - k0;
    if (stats && lane == 0) {
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
  }
}

inline constexpr int ln_cols_per_block = 32, ln_row_lanes = threads_per_block / ln_cols_per_block;

// Partial sums of dy * xhat and dy over rows [c * chunk, (c + 1) * chunk) of [rows, D], chunk c =
// blockIdx.y, columns blockIdx.x * 32 + threadIdx.x: pw[c, i], pb[c, i] (either may be null).
template <class T>
__global__ void ln_rows_param_kernel(const T* x, const T* dy, const double* stats, double* pw, double* pb, index_t rows,
                                     index_t D, index_t chunk) {
  __shared__ double sw[ln_row_lanes][ln_cols_per_block], sb[ln_row_lanes][ln_cols_per_block];
  const index_t i = blockIdx.x * static_cast<index_t>(ln_cols_per_block) + threadIdx.x;
  const index_t begin = blockIdx.y * chunk, end = min(rows, begin + chunk);
  double aw = 0, ab = 0;
  if (i < D)
    for (index_t r = begin + threadIdx.y; r < end; r += ln_row_lanes) {
      const double g = static_cast<double>(dy[r * D + i]);
      aw += g * (static_cast<double>(x[r * D + i]) - stats[2 * r]) * stats[2 * r + 1];
      ab += g;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y != 0 || i >= D) return;
  for (int k = 1; k < ln_row_lanes; ++k) {
    aw += sw[k][threadIdx.x];
    ab += sb[k][threadIdx.x];
  }
  if (pw) pw[blockIdx.y * D + i] = aw;
  if (pb) pb[blockIdx.y * D + i] = ab;
}

// Per plane (n, c) of NCHW (a warp each): sums over its HW pixels of dy * xhat and dy, with the
// pixels' statistics stats[n, p, 0..1]; into pw[n, c], pb[n, c] (either may be null).
template <class T>
__global__ void ln_planes_param_kernel(const T* x, const T* dy, const double* stats, double* pw, double* pb,
                                       index_t planes, index_t C, index_t HW) {
  const int lane = threadIdx.x % warp_size;
  for (index_t pl = first_row(); pl < planes; pl += row_stride()) {
    const T *xs = x + pl * HW, *gs = dy + pl * HW;
    const double* st = stats + (pl / C) * HW * 2;
    double aw = 0, ab = 0;
    for (index_t p = lane; p < HW; p += warp_size) {
      const double g = static_cast<double>(gs[p]);
      aw += g * (static_cast<double>(xs[p]) - st[2 * p]) * st[2 * p + 1];
      ab += g;
    }
    aw = warp_sum(aw);
    ab = warp_sum(ab);
    if (lane != 0) continue;
    if (pw) pw[pl] = aw;
    if (pb) pb[pl] = ab;
  }
}

// dst[i] += sum_r partial[r, i] for partial [R, D], summed in r order.
template <Scalar T>
void ln_add_partials(const Tensor<double, cuda>& partial, Tensor<T, cuda>* dst) {
  if (!dst) return;
  const index_t R = partial.size(0), D = partial.size(1);
  const double* p = partial.data();
  T* d = dst->data();
  for_each(
      D,
      [=] __device__(index_t i) {
        double s = 0;
        for (index_t r = 0; r < R; ++r) s += p[r * D + i];
        d[i] += static_cast<T>(s);
      },
      "rev::gpu::dense_detail::ln_add_partials");
}

// Double partials [R, D] of the wanted parameter gradients (an empty tensor for one not wanted).
template <Scalar T>
Tensor<double, cuda> ln_partials(const Tensor<T, cuda>* grad, index_t R, index_t D) {
  return grad ? Tensor<double, cuda>::uninitialized({R, D}) : Tensor<double, cuda>();
}

}  // namespace dense_detail

struct layernorm_ops {
  /// LayerNorm over the last extent D of x [..., D]; weight, bias [D].
  template <Scalar T>
  static Tensor<T, cuda> layer_norm(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                    const Tensor<T, cuda>& bias, double eps) {
    constexpr const char* who = "rev::ops::layer_norm";
    check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected [..., D]");
    const index_t D = x.size(-1), rows = D > 0 ? x.numel() / D : 0;
    ops::detail::ln_check_params(who, D, weight, &bias);
    ops::detail::ln_check_eps(who, eps);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    if (rows == 0) return y;
    dense_detail::ln_rows_kernel<<<dense_detail::blocks_for_rows(rows), threads_per_block, 0, current_stream()>>>(
        x.data(), weight.data(), bias.data(), y.data(), rows, D, eps);
    check_launch("rev::gpu::dense_detail::ln_rows_kernel");
    return y;
  }

  /// Backward of layer_norm. With xhat = (x - mean) * rstd and g = dy * weight, per row
  ///   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
  ///   dweight += sum_rows(dy * xhat),  dbias += sum_rows(dy).
  template <Scalar T>
  static Tensor<T, cuda> layer_norm_backward(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight, double eps,
                                             const Tensor<T, cuda>& dy, std::type_identity_t<Tensor<T, cuda>*> dweight,
                                             std::type_identity_t<Tensor<T, cuda>*> dbias) {
    constexpr const char* who = "rev::ops::layer_norm_backward";
    check<shape_error>(x.rank() >= 1, who, ": input has rank 0, expected [..., D]");
    const index_t D = x.size(-1), rows = D > 0 ? x.numel() / D : 0;
    ops::detail::ln_check_params<T>(who, D, weight, nullptr);
    ops::detail::ln_check_eps(who, eps);
    expect_shape(dy, x.shape(), who, "dy");
    ops::detail::ln_check_grads(who, D, dweight, dbias);
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(x.shape());
    if (rows == 0) return dx;
    const bool wanted = dweight || dbias;
    Tensor<double, cuda> stats = wanted ? Tensor<double, cuda>::uninitialized({rows, 2}) : Tensor<double, cuda>();
    dense_detail::
        ln_rows_backward_kernel<<<dense_detail::blocks_for_rows(rows), threads_per_block, 0, current_stream()>>>(
            x.data(), weight.data(), dy.data(), dx.data(), wanted ? stats.data() : nullptr, rows, D, eps);
    check_launch("rev::gpu::dense_detail::ln_rows_backward_kernel");
    if (!wanted) return dx;
    // Chunks of at least 8 rows, at most 128 of them: enough blocks to fill the device.
    const index_t chunk = std::max<index_t>(dense_detail::ln_row_lanes, (rows + 127) / 128);
    const index_t chunks = (rows + chunk - 1) / chunk;
    Tensor<double, cuda> pw = dense_detail::ln_partials(dweight, chunks, D);
    Tensor<double, cuda> pb = dense_detail::ln_partials(dbias, chunks, D);
    const dim3 grid(static_cast<unsigned>((D + dense_detail::ln_cols_per_block - 1) / dense_detail::ln_cols_per_block),
                    static_cast<unsigned>(chunks));
    const dim3 block(dense_detail::ln_cols_per_block, dense_detail::ln_row_lanes);
    dense_detail::ln_rows_param_kernel<<<grid, block, 0, current_stream()>>>(
        x.data(), dy.data(), stats.data(), dweight ? pw.data() : nullptr, dbias ? pb.data() : nullptr, rows, D, chunk);
    check_launch("rev::gpu::dense_detail::ln_rows_param_kernel");
    dense_detail::ln_add_partials(pw, dweight);
    dense_detail::ln_add_partials(pb, dbias);
    return dx;
  }

  /// LayerNorm over the channels of x [N, C, H, W] at each pixel; weight, bias [C].
  template <Scalar T>
  static Tensor<T, cuda> layer_norm_channels(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                             const Tensor<T, cuda>& bias, double eps) {
    constexpr const char* who = "rev::ops::layer_norm_channels";
    expect_rank(x, 4, who);
    const index_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
    ops::detail::ln_check_params(who, C, weight, &bias);
    ops::detail::ln_check_eps(who, eps);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    if (C == 0) return y;
    const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
    T* py = y.data();
    for_each(
        N * HW,
        [=] __device__(index_t i) {
          const index_t off = (i / HW) * C * HW + i % HW;
          double mean, rstd;
          dense_detail::ln_stats(px + off, C, HW, 0, 1, eps, dense_detail::ln_no_reduce{}, mean, rstd);
          const T tm = static_cast<T>(mean), tr = static_cast<T>(rstd);
          for (index_t c = 0; c < C; ++c) py[off + c * HW] = (px[off + c * HW] - tm) * tr * pw[c] + pb[c];
        },
        "rev::ops::layer_norm_channels");
    return y;
  }

  /// Backward of layer_norm_channels. With xhat = (x - mean) * rstd and g = dy * weight, per pixel
  ///   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),
  ///   dweight += sum_{n,h,w}(dy * xhat),  dbias += sum_{n,h,w}(dy).
  template <Scalar T>
  static Tensor<T, cuda> layer_norm_channels_backward(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                                      double eps, const Tensor<T, cuda>& dy,
                                                      std::type_identity_t<Tensor<T, cuda>*> dweight,
                                                      std::type_identity_t<Tensor<T, cuda>*> dbias) {
    constexpr const char* who = "rev::ops::layer_norm_channels_backward";
    expect_rank(x, 4, who);
    const index_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
    ops::detail::ln_check_params<T>(who, C, weight, nullptr);
    ops::detail::ln_check_eps(who, eps);
    expect_shape(dy, x.shape(), who, "dy");
    ops::detail::ln_check_grads(who, C, dweight, dbias);
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(x.shape());
    if (N * C * HW == 0) return dx;
    const bool wanted = dweight || dbias;
    Tensor<double, cuda> stats = wanted ? Tensor<double, cuda>::uninitialized({N, HW, 2}) : Tensor<double, cuda>();
    const T *px = x.data(), *pw = weight.data(), *pg = dy.data();
    T* pdx = dx.data();
    double* ps = wanted ? stats.data() : nullptr;
    // Per pixel: dx = rstd * g - k1 * (x - mean) - k0, k1 = rstd^3 mean_c(g (x - mean)), k0 = rstd mean_c(g).
    for_each(
        N * HW,
        [=] __device__(index_t i) {
          const index_t off = (i / HW) * C * HW + i % HW;
          double mean, rstd, sg = 0, sgx = 0;
          dense_detail::ln_stats(px + off, C, HW, 0, 1, eps, dense_detail::ln_no_reduce{}, mean, rstd);
          for (index_t c = 0; c < C; ++c) {
            const double g = static_cast<double>(pg[off + c * HW]) * static_cast<double>(pw[c]);
            sg += g;
            sgx += g * (static_cast<double>(px[off + c * HW]) - mean);
          }
          const double n = static_cast<double>(C);
          const T tr = static_cast<T>(rstd), tm = static_cast<T>(mean),
                  k1 = static_cast<T>(rstd * rstd * rstd * sgx / n), k0 = static_cast<T>(rstd * sg / n);
          for (index_t c = 0; c < C; ++c)
            pdx[off + c * HW] = tr * pg[off + c * HW] * pw[c] - k1 * (px[off + c * HW] - tm) - k0;
          if (ps) {
            ps[2 * i] = mean;
            ps[2 * i + 1] = rstd;
          }
        },
        "rev::ops::layer_norm_channels_backward");
    if (!wanted) return dx;
    Tensor<double, cuda> partial_w = dense_detail::ln_partials(dweight, N, C);
    Tensor<double, cuda> partial_b = dense_detail::ln_partials(dbias, N, C);
    dense_detail::
        ln_planes_param_kernel<<<dense_detail::blocks_for_rows(N * C), threads_per_block, 0, current_stream()>>>(
            px, pg, stats.data(), dweight ? partial_w.data() : nullptr, dbias ? partial_b.data() : nullptr, N * C, C,
            HW);
    check_launch("rev::gpu::dense_detail::ln_planes_param_kernel");
    dense_detail::ln_add_partials(partial_w, dweight);
    dense_detail::ln_add_partials(partial_b, dbias);
    return dx;
  }
};

}  // namespace rev::gpu
