// Element-wise ops on rev::cuda: arithmetic, activations and their backwards, and the double
// reductions sum and dot. rev/ops/elementwise.hpp and rev/ops/activation.hpp check the shapes;
// the kernels evaluate the activations' formulas (A::value, A::derivative) on the device.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "rev/cuda/tensor.cuh"
#include "rev/ops/activation.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev::gpu {

namespace detail {

// Threads of the blocks that reduce in double (a multiple of the warp size).
inline constexpr int reduce_threads = 256;

// The sum of v over the threads of a block, valid in thread 0. Every thread of the block must
// call it; it may be called again in a loop (the shared slots are released before returning).
__device__ inline double block_sum_double(double v) {
  __shared__ double warp_sums[reduce_threads / 32];
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0;
  __syncthreads();
  if (warp == 0)
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// For each segment s in [0, segments): store(s, sum of term(s * length + k) over k in [0, length)),
// summed in double by one block per segment (grid-stride over segments). Launch with
// reduce_threads threads per block.
template <class Term, class Store>
__global__ void segment_sums_kernel(index_t segments, index_t length, Term term, Store store) {
  for (index_t s = blockIdx.x; s < segments; s += gridDim.x) {
    double v = 0;
    for (index_t k = threadIdx.x; k < length; k += blockDim.x) v += term(s * length + k);
    v = block_sum_double(v);
    if (threadIdx.x == 0) store(s, v);
  }
}

template <class Term, class Store>
void segment_sums(index_t segments, index_t length, Term term, Store store, const char* who) {
  if (segments <= 0) return;
  const auto blocks = static_cast<unsigned>(std::min<index_t>(segments, 65535 * 8));
  segment_sums_kernel<<<blocks, reduce_threads, 0, current_stream()>>>(segments, length, term, store);
  check_launch(who);
}

// The sum of term(i) over i in [0, n), in double: per-block partial sums, then one block adds
// them up; the result is copied to the host (waits for the current stream).
template <class Term>
double sum_to_host(index_t n, Term term, const char* who) {
  if (n <= 0) return 0.0;
  const index_t parts = std::min<index_t>((n + reduce_threads - 1) / reduce_threads, 1024);
  const index_t chunk = (n + parts - 1) / parts;
  Tensor<double, cuda> partial = Tensor<double, cuda>::uninitialized({parts + 1});
  double* pp = partial.data();
  segment_sums(
      parts, chunk, [=] __device__(index_t i) { return i < n ? term(i) : 0.0; },
      [=] __device__(index_t s, double v) { pp[s] = v; }, who);
  segment_sums(
      1, parts, [=] __device__(index_t i) { return pp[i]; }, [=] __device__(index_t, double v) { pp[parts] = v; }, who);
  double result = 0;
  REV_CUDA_CHECK(cudaMemcpyAsync(&result, pp + parts, sizeof(double), cudaMemcpyDeviceToHost, current_stream()));
  synchronize();
  return result;
}

}  // namespace detail

struct elementwise_ops {
  template <Scalar T>
  static Tensor<T, cuda> add(const Tensor<T, cuda>& a, const Tensor<T, cuda>& b) {
    Tensor<T, cuda> out = Tensor<T, cuda>::uninitialized(a.shape());
    const T *pa = a.data(), *pb = b.data();
    T* po = out.data();
    for_each(
        a.numel(), [=] __device__(index_t i) { po[i] = pa[i] + pb[i]; }, "rev::ops::add");
    return out;
  }

  template <Scalar T>
  static Tensor<T, cuda> sub(const Tensor<T, cuda>& a, const Tensor<T, cuda>& b) {
    Tensor<T, cuda> out = Tensor<T, cuda>::uninitialized(a.shape());
    const T *pa = a.data(), *pb = b.data();
    T* po = out.data();
    for_each(
        a.numel(), [=] __device__(index_t i) { po[i] = pa[i] - pb[i]; }, "rev::ops::sub");
    return out;
  }

  template <Scalar T>
  static Tensor<T, cuda> mul(const Tensor<T, cuda>& a, const Tensor<T, cuda>& b) {
    Tensor<T, cuda> out = Tensor<T, cuda>::uninitialized(a.shape());
    const T *pa = a.data(), *pb = b.data();
    T* po = out.data();
    for_each(
        a.numel(), [=] __device__(index_t i) { po[i] = pa[i] * pb[i]; }, "rev::ops::mul");
    return out;
  }

  /// a += b
  template <Scalar T>
  static void add_(Tensor<T, cuda>& a, const Tensor<T, cuda>& b) {
    T* pa = a.data();
    const T* pb = b.data();
    for_each(
        a.numel(), [=] __device__(index_t i) { pa[i] += pb[i]; }, "rev::ops::add_");
  }

  /// a *= s
  template <Scalar T>
  static void scale_(Tensor<T, cuda>& a, T s) {
    T* p = a.data();
    for_each(
        a.numel(), [=] __device__(index_t i) { p[i] *= s; }, "rev::ops::scale_");
  }

  /// Sum of all elements, accumulated in double on the device.
  template <Scalar T>
  static double sum(const Tensor<T, cuda>& a) {
    const T* p = a.data();
    return detail::sum_to_host(
        a.numel(), [=] __device__(index_t i) { return static_cast<double>(p[i]); }, "rev::ops::sum");
  }

  /// Sum of a[i] * b[i], accumulated in double on the device.
  template <Scalar T>
  static double dot(const Tensor<T, cuda>& a, const Tensor<T, cuda>& b) {
    const T *pa = a.data(), *pb = b.data();
    return detail::sum_to_host(
        a.numel(), [=] __device__(index_t i) { return static_cast<double>(pa[i]) * pb[i]; }, "rev::ops::dot");
  }

  /// y = A(x), A one of rev::ops::act.
  template <class A, Scalar T>
  static Tensor<T, cuda> activation(const Tensor<T, cuda>& x) {
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(x.shape());
    const T* px = x.data();
    T* py = y.data();
    for_each(
        x.numel(), [=] __device__(index_t i) { py[i] = A::value(px[i]); }, "rev::ops::activation");
    return y;
  }

  /// dx = A'(x) * dy
  template <class A, Scalar T>
  static Tensor<T, cuda> activation_backward(const Tensor<T, cuda>& x, const Tensor<T, cuda>& dy) {
    Tensor<T, cuda> dx = Tensor<T, cuda>::uninitialized(x.shape());
    const T *px = x.data(), *pg = dy.data();
    T* pd = dx.data();
    for_each(
        x.numel(), [=] __device__(index_t i) { pd[i] = A::derivative(px[i]) * pg[i]; },
        "rev::ops::activation_backward");
    return dx;
  }
};

}  // namespace rev::gpu
