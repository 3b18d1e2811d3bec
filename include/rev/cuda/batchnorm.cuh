// Batch normalisation on the GPU with rev's own kernels, with the semantics, checks, messages and
// arithmetic of the CPU op (rev/ops/batchnorm.hpp):
//
//   y = (x - mean_c) * invstd_c * weight_c + bias_c,   invstd_c = 1 / sqrt(biased var_c + eps)
//
// Each per-channel reduction over (N, H, W) is accumulated in double, the statistics over values
// shifted by the channel's first value (as on the CPU, against cancellation). A channel is split
// into `parts` contiguous ranges, one block each, whose partial sums one thread per channel then
// adds in a fixed order: no atomics, so every result repeats bit for bit from run to run. The
// element-wise passes (normalise + affine, the input gradient) are one fused kernel each, and
// train and apply share the normalising one, so a recomputation reproduces the train output.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "rev/core/op_count.hpp"
#include "rev/cuda/launch.cuh"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/batchnorm.hpp"

namespace rev::gpu {

namespace bn_detail {

// Sums a and b over the block (blockDim.x == threads_per_block); thread 0 holds the totals.
__device__ inline void block_sum(double& a, double& b) {
  constexpr int warps = threads_per_block / 32;
  __shared__ double sa[warps], sb[warps];
  for (int o = 16; o > 0; o /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < warps ? sa[lane] : 0.0;
    b = lane < warps ? sb[lane] : 0.0;
    for (int o = 16; o > 0; o /= 2) {
      a += __shfl_down_sync(0xffffffffu, a, o);
      b += __shfl_down_sync(0xffffffffu, b, o);
    }
  }
}

// Block k sums f(c, j) over the values j in [b, e) of channel c = k / parts, where [b, e) is part
// k % parts of [0, count): out[k] = (sum of .x, sum of .y).
template <class F>
__global__ void channel_sums_kernel(index_t count, index_t parts, F f, double2* out) {
  const index_t k = blockIdx.x, c = k / parts, per = (count + parts - 1) / parts;
  const index_t b = k % parts * per, e = b + per < count ? b + per : count;
  double s1 = 0, s2 = 0;
  for (index_t j = b + threadIdx.x; j < e; j += blockDim.x) {
    const double2 v = f(c, j);
    s1 += v.x;
    s2 += v.y;
  }
  block_sum(s1, s2);
  if (threadIdx.x == 0) out[k] = make_double2(s1, s2);
}

// Per-channel partial sums: channel c's are sums[c * parts, (c + 1) * parts).
struct partial_sums {
  Tensor<double, cuda> buffer;  // [C * parts] double2
  index_t parts;
  const double2* data() const { return reinterpret_cast<const double2*>(buffer.data()); }
};

// The two sums of f(c, j) (a double2) over the `count` values j of each channel c < C. Parts per
// channel: enough blocks in all to fill the device (about 1024), and at least 4096 values each.
template <class F>
partial_sums channel_sums(index_t C, index_t count, F f, const char* who) {
  const index_t parts = std::max<index_t>(1, std::min((1024 + C - 1) / std::max<index_t>(C, 1), (count + 4095) / 4096));
  partial_sums s{Tensor<double, cuda>::uninitialized({2 * C * parts}), parts};
  if (C * parts > 0) {
    channel_sums_kernel<<<static_cast<unsigned>(C * parts), threads_per_block, 0, current_stream()>>>(
        count, parts, f, reinterpret_cast<double2*>(s.buffer.data()));
    check_launch(who);
  }
  return s;
}

// The total of channel c's partial sums, added in order.
__device__ inline double2 channel_total(const double2* sums, index_t parts, index_t c) {
  double2 t = make_double2(0.0, 0.0);
  for (index_t k = c * parts; k < (c + 1) * parts; ++k) {
    t.x += sums[k].x;
    t.y += sums[k].y;
  }
  return t;
}

// y = (x - mean) * scale + bias with scale = weight * invstd rounded to T, as bn_normalise_channel.
template <Scalar T>
void normalise(const ops::detail::bn_layout& l, const T* x, T* y, const T* mean, const T* invstd, const T* weight,
               const T* bias, const char* who) {
  const index_t C = l.C, HW = l.HW;
  for_each(
      l.N * C * HW,
      [=] __device__(index_t i) {
        const index_t c = i / HW % C;
        const T scale = static_cast<T>(static_cast<double>(weight[c]) * static_cast<double>(invstd[c]));
        y[i] = (x[i] - mean[c]) * scale + bias[c];
      },
      who);
}

// The sums of both backward ops over each channel's values: (sum(dy), sum(dy * (x - mean))), with
// the kept mean (sum_grad on the CPU).
template <Scalar T>
partial_sums grad_sums(const ops::detail::bn_layout& l, const T* x, const T* dy, const T* mean, const char* who) {
  const index_t C = l.C, HW = l.HW;
  return channel_sums(
      C, l.count(),
      [=] __device__(index_t c, index_t j) -> double2 {
        const index_t i = (j / HW * C + c) * HW + j % HW;
        const double g = static_cast<double>(dy[i]);
        return make_double2(g, g * (static_cast<double>(x[i]) - static_cast<double>(mean[c])));
      },
      who);
}

}  // namespace bn_detail

/// rev::ops::batch_norm_* on rev::cuda; see rev/ops/batchnorm.hpp for the formulas.
struct batchnorm_ops {
  /// Train mode: the batch statistics of x (biased variance) into `stats`, and x normalised with them.
  template <Scalar T>
  static Tensor<T, cuda> batch_norm_train(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                          const Tensor<T, cuda>& bias, double eps, ops::batch_stats<T, cuda>& stats) {
    constexpr const char* who = "rev::ops::batch_norm_train";
    const ops::detail::bn_layout l = ops::detail::bn_check_inputs(who, x, weight, &bias);
    check<value_error>(l.count() > 1, who, ": expected more than 1 value per channel when training, got input extents ",
                       x.shape());
    check<value_error>(eps >= 0 && std::isfinite(eps), who, ": eps must be finite and >= 0, got ", eps);
    Tensor<T, cuda> mean = Tensor<T, cuda>::uninitialized({l.C}), invstd = Tensor<T, cuda>::uninitialized({l.C}),
                    var = Tensor<T, cuda>::uninitialized({l.C});
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    if (op_counts* c = rev::detail::active_op_counts()) c->bn_elements += y.numel();
    const index_t C = l.C, HW = l.HW, count = l.count();
    const T* px = x.data();
    // Sums of x - k and (x - k)^2 with k = the channel's first value (sum_shifted on the CPU).
    const bn_detail::partial_sums s = bn_detail::channel_sums(
        C, count,
        [=] __device__(index_t c, index_t j) -> double2 {
          const double d = static_cast<double>(px[(j / HW * C + c) * HW + j % HW]) - static_cast<double>(px[c * HW]);
          return make_double2(d, d * d);
        },
        who);
    const double2* ps = s.data();
    const index_t parts = s.parts;
    T *pm = mean.data(), *pi = invstd.data(), *pv = var.data();
    for_each(
        C,
        [=] __device__(index_t c) {
          const double2 t = bn_detail::channel_total(ps, parts, c);
          const double cnt = static_cast<double>(count), d = t.x / cnt;
          const double v = fmax(0.0, t.y / cnt - d * d);  // biased: E[(x-k)^2] - (E[x-k])^2
          pm[c] = static_cast<T>(static_cast<double>(px[c * HW]) + d);
          pi[c] = static_cast<T>(1.0 / ::sqrt(v + eps));
          pv[c] = static_cast<T>(v);
        },
        who);
    bn_detail::normalise(l, px, y.data(), pm, pi, weight.data(), bias.data(), who);
    stats.mean = mean;
    stats.invstd = invstd;
    stats.var = var;
    return y;
  }

  /// x normalised with the given statistics (eval: the running ones; recompute: the kept batch ones).
  template <Scalar T>
  static Tensor<T, cuda> batch_norm_apply(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                          const Tensor<T, cuda>& bias, const ops::batch_stats<T, cuda>& stats) {
    constexpr const char* who = "rev::ops::batch_norm_apply";
    const ops::detail::bn_layout l = ops::detail::bn_check_inputs(who, x, weight, &bias);
    ops::detail::bn_check_stats(who, l, stats);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    if (op_counts* c = rev::detail::active_op_counts()) c->bn_elements += y.numel();
    bn_detail::normalise(l, x.data(), y.data(), stats.mean.data(), stats.invstd.data(), weight.data(), bias.data(),
                         who);
    return y;
  }

  /// Backward of batch_norm_train (the statistics are functions of x), xhat = (x - mean) * invstd:
  ///   dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
  ///   dweight += sum(dy * xhat),  dbias += sum(dy).
  template <Scalar T>
  static Tensor<T, cuda> batch_norm_backward_train(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                                   const ops::batch_stats<T, cuda>& stats, const Tensor<T, cuda>& dy,
                                                   std::type_identity_t<Tensor<T, cuda>*> dweight,
                                                   std::type_identity_t<Tensor<T, cuda>*> dbias) {
    constexpr const char* who = "rev::ops::batch_norm_backward_train";
    const ops::detail::bn_layout l = ops::detail::bn_check_inputs<T>(who, x, weight, nullptr);
    ops::detail::bn_check_stats(who, l, stats);
    expect_shape(dy, x.shape(), who, "dy");
    ops::detail::bn_check_grads(who, l, dweight, dbias);
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(x.shape());
    const index_t C = l.C, HW = l.HW, count = l.count();
    const T *px = x.data(), *pg = dy.data(), *pw = weight.data(), *pm = stats.mean.data(), *pi = stats.invstd.data();
    const bn_detail::partial_sums s = bn_detail::grad_sums(l, px, pg, pm, who);
    const double2* ps = s.data();
    const index_t parts = s.parts;
    // dx = a * dy - k1 * (x - mean) - k0 with a = weight * invstd, k1 = a * invstd^2 * sum(dy * (x - mean)) / n,
    // k0 = a * sum(dy) / n, each rounded to T as on the CPU.
    Tensor<T, cuda> coef = Tensor<T, cuda>::uninitialized({3 * C});
    T* pc = coef.data();
    T* pdw = dweight ? dweight->data() : nullptr;
    T* pdb = dbias ? dbias->data() : nullptr;
    for_each(
        C,
        [=] __device__(index_t c) {
          const double2 t = bn_detail::channel_total(ps, parts, c);
          const double is = static_cast<double>(pi[c]), sdy = t.x, sdyx = t.y;
          if (pdb) pdb[c] += static_cast<T>(sdy);
          if (pdw) pdw[c] += static_cast<T>(sdyx * is);
          const double cnt = static_cast<double>(count), a = static_cast<double>(pw[c]) * is;
          pc[c] = static_cast<T>(a);
          pc[C + c] = static_cast<T>(a * is * is * sdyx / cnt);
          pc[2 * C + c] = static_cast<T>(a * sdy / cnt);
        },
        who);
    T* pdx = dx.data();
    for_each(
        dx.numel(),
        [=] __device__(index_t i) {
          const index_t c = i / HW % C;
          pdx[i] = pc[c] * pg[i] - pc[C + c] * (px[i] - pm[c]) - pc[2 * C + c];
        },
        who);
    return dx;
  }

  /// Backward with constant statistics (eval mode):
  ///   dx = dy * weight * invstd,  dweight += sum(dy * xhat),  dbias += sum(dy).
  template <Scalar T>
  static Tensor<T, cuda> batch_norm_backward_eval(const Tensor<T, cuda>& x, const Tensor<T, cuda>& weight,
                                                  const ops::batch_stats<T, cuda>& stats, const Tensor<T, cuda>& dy,
                                                  std::type_identity_t<Tensor<T, cuda>*> dweight,
                                                  std::type_identity_t<Tensor<T, cuda>*> dbias) {
    constexpr const char* who = "rev::ops::batch_norm_backward_eval";
    const ops::detail::bn_layout l = ops::detail::bn_check_inputs<T>(who, x, weight, nullptr);
    ops::detail::bn_check_stats(who, l, stats);
    expect_shape(dy, x.shape(), who, "dy");
    ops::detail::bn_check_grads(who, l, dweight, dbias);
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(x.shape());
    const index_t C = l.C, HW = l.HW;
    const T *px = x.data(), *pg = dy.data(), *pw = weight.data(), *pm = stats.mean.data(), *pi = stats.invstd.data();
    if (dweight || dbias) {
      const bn_detail::partial_sums s = bn_detail::grad_sums(l, px, pg, pm, who);
      const double2* ps = s.data();
      const index_t parts = s.parts;
      T* pdw = dweight ? dweight->data() : nullptr;
      T* pdb = dbias ? dbias->data() : nullptr;
      for_each(
          C,
          [=] __device__(index_t c) {
            const double2 t = bn_detail::channel_total(ps, parts, c);
            if (pdb) pdb[c] += static_cast<T>(t.x);
            if (pdw) pdw[c] += static_cast<T>(t.y * static_cast<double>(pi[c]));
          },
          who);
    }
    T* pdx = dx.data();
    for_each(
        dx.numel(),
        [=] __device__(index_t i) {
          const index_t c = i / HW % C;
          pdx[i] = static_cast<T>(static_cast<double>(pw[c]) * static_cast<double>(pi[c])) * pg[i];
        },
        who);
    return dx;
  }

  /// running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance
  /// stats.var * n / (n - 1) (PyTorch's BatchNorm2d); n = N * H * W.
  template <Scalar T>
  static void batch_norm_update_running(Tensor<T, cuda>& running_mean, Tensor<T, cuda>& running_var,
                                        const ops::batch_stats<T, cuda>& stats, index_t n, double momentum) {
    constexpr const char* who = "rev::ops::batch_norm_update_running";
    const index_t C = ops::detail::bn_check_running(who, running_mean, running_var, stats, n);
    const double bessel = static_cast<double>(n) / static_cast<double>(n - 1);
    const T *pm = stats.mean.data(), *pv = stats.var.data();
    T *rm = running_mean.data(), *rv = running_var.data();
    for_each(
        C,
        [=] __device__(index_t c) {
          const double var = static_cast<double>(pv[c]) * bessel;
          rm[c] = static_cast<T>((1 - momentum) * static_cast<double>(rm[c]) + momentum * static_cast<double>(pm[c]));
          rv[c] = static_cast<T>((1 - momentum) * static_cast<double>(rv[c]) + momentum * var);
        },
        who);
  }
};

}  // namespace rev::gpu
