// Cross-entropy with label smoothing on rev::cuda (CPU: rev/cpu/loss.hpp). With q_k = (1 - s)[k = t]
// + s / K the smoothed target of a sample of class t over K classes,
//   loss = mean_n (lse(z_n) - (1 - s) z_{n,t} - s/K sum_k z_{n,k}),
//   dz_{n,k} = dloss / N * (softmax(z_n)_k - q_{n,k}).
// One warp per sample, in double like the CPU. The targets are validated on the host (the CPU's
// checks and messages), then copied to the device; the per-sample losses come back to the host,
// where they are checked for finiteness and summed in sample order as on the CPU.
#pragma once

#include <cmath>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "rev/cuda/softmax.cuh"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/loss.hpp"

namespace rev::gpu {

namespace dense_detail {

// Frees a block of the caching allocator.
struct device_block_free {
  std::size_t bytes;
  void operator()(int* p) const noexcept { allocator<cuda>::deallocate(p, bytes); }
};
using device_ints = std::unique_ptr<int, device_block_free>;

/// A device copy of the class indices (ordered on the current stream; t may be freed on return).
inline device_ints device_targets(std::span<const int> t) {
  device_ints p(static_cast<int*>(allocator<cuda>::allocate(t.size_bytes())), device_block_free{t.size_bytes()});
  if (!t.empty())
    REV_CUDA_CHECK(cudaMemcpyAsync(p.get(), t.data(), t.size_bytes(), cudaMemcpyHostToDevice, current_stream()));
  return p;
}

// log sum_k exp(z_k) of a row, over the warp, in double (the maximum itself when not finite).
template <class T>
__device__ double ce_row_logsumexp(const T* z, index_t K, int lane) {
  double m = -INFINITY;
  for (index_t k = lane; k < K; k += warp_size) m = max(m, static_cast<double>(z[k]));
  m = warp_max(m);
  if (!isfinite(m)) return m;
  double s = 0;
  for (index_t k = lane; k < K; k += warp_size) s += exp(static_cast<double>(z[k]) - m);
  return m + log(warp_sum(s));
}

template <class T>
__global__ void ce_forward_kernel(const T* logits, const int* targets, double* per_sample, index_t N, index_t K,
                                  double smoothing) {
  const int lane = threadIdx.x % warp_size;
  for (index_t n = first_row(); n < N; n += row_stride()) {
    const T* z = logits + n * K;
    const double lse = ce_row_logsumexp(z, K, lane);
    double sum = 0;
    for (index_t k = lane; k < K; k += warp_size) sum += static_cast<double>(z[k]);
    sum = warp_sum(sum);
    if (lane == 0)
      per_sample[n] =
          lse - (1 - smoothing) * static_cast<double>(z[targets[n]]) - smoothing / static_cast<double>(K) * sum;
  }
}

template <class T>
__global__ void ce_backward_kernel(const T* logits, const int* targets, T* dz, index_t N, index_t K, double smoothing,
                                   double scale) {
  const int lane = threadIdx.x % warp_size;
  const double uniform = smoothing / static_cast<double>(K);
  for (index_t n = first_row(); n < N; n += row_stride()) {
    const T* z = logits + n * K;
    T* d = dz + n * K;
    const double lse = ce_row_logsumexp(z, K, lane);
    const index_t t = targets[n];
    for (index_t k = lane; k < K; k += warp_size) {
      const double q = uniform + (k == t ? 1 - smoothing : 0.0);
      d[k] = static_cast<T>(scale * (exp(static_cast<double>(z[k]) - lse) - q));
    }
  }
}

}  // namespace dense_detail

struct loss_ops {
  /// Mean cross-entropy of logits [N, K] against class indices targets[n] in [0, K), with label
  /// smoothing s in [0, 1]. Throws rev::value_error if the loss is not finite. Waits for the stream.
  template <Scalar T>
  static double cross_entropy(const Tensor<T, cuda>& logits, std::span<const int> targets, double label_smoothing = 0) {
    constexpr const char* who = "rev::ops::cross_entropy";
    ops::detail::ce_check(who, logits, targets, label_smoothing);
    const index_t N = logits.size(0), K = logits.size(1);
    const dense_detail::device_ints t = dense_detail::device_targets(targets);
    Tensor<double, cuda> per_sample = Tensor<double, cuda>::uninitialized({N});
    dense_detail::ce_forward_kernel<<<dense_detail::blocks_for_rows(N), threads_per_block, 0, current_stream()>>>(
        logits.data(), t.get(), per_sample.data(), N, K, label_smoothing);
    check_launch("rev::gpu::dense_detail::ce_forward_kernel");
    std::vector<double> host(static_cast<std::size_t>(N));
    REV_CUDA_CHECK(
        cudaMemcpyAsync(host.data(), per_sample.data(), per_sample.bytes(), cudaMemcpyDeviceToHost, current_stream()));
    synchronize();
    return ops::detail::ce_mean(host, who);
  }

  /// Gradient of dloss * cross_entropy(logits, targets, s) with respect to the logits:
  ///   dz_{n,k} = dloss / N * (softmax(z_n)_k - q_{n,k}).
  template <Scalar T>
  static Tensor<T, cuda> cross_entropy_backward(const Tensor<T, cuda>& logits, std::span<const int> targets,
                                                double label_smoothing = 0, double dloss = 1) {
    ops::detail::ce_check("rev::ops::cross_entropy_backward", logits, targets, label_smoothing);
    const index_t N = logits.size(0), K = logits.size(1);
    const dense_detail::device_ints t = dense_detail::device_targets(targets);
    Tensor<T, cuda> dz = Tensor<T, cuda>::uninitialized(logits.shape());
    dense_detail::ce_backward_kernel<<<dense_detail::blocks_for_rows(N), threads_per_block, 0, current_stream()>>>(
        logits.data(), t.get(), dz.data(), N, K, label_smoothing, dloss / static_cast<double>(N));
    check_launch("rev::gpu::dense_detail::ce_backward_kernel");
    return dz;
  }
};

}  // namespace rev::gpu
