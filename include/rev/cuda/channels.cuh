// Splitting and concatenating tensors along dim 1 on rev::cuda, with the semantics and
// validation of rev/ops/channels.hpp. Part k of a tensor [N, C, ...] is N runs of rows_k * inner
// elements, one per sample, spaced C * inner apart: one strided 2D copy per part.
#pragma once

#include <cuda_runtime.h>

#include <initializer_list>
#include <span>
#include <vector>

#include "rev/cuda/tensor.cuh"
#include "rev/ops/channels.hpp"

namespace rev::gpu {

namespace detail {

// Copies the N runs of `run` elements spaced by src_stride (source) and dst_stride (destination).
template <Scalar T>
void copy_strided_runs(T* dst, index_t dst_stride, const T* src, index_t src_stride, index_t run, index_t N) {
  if (run == 0 || N == 0) return;
  const auto bytes = [](index_t n) { return static_cast<std::size_t>(n) * sizeof(T); };
  if (N == 1) REV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes(run), cudaMemcpyDeviceToDevice, current_stream()));
  else
    REV_CUDA_CHECK(cudaMemcpy2DAsync(dst, bytes(dst_stride), src, bytes(src_stride), bytes(run),
                                     static_cast<std::size_t>(N), cudaMemcpyDeviceToDevice, current_stream()));
}

}  // namespace detail

struct channel_ops {
  /// Splits x [N, C, ...] into parts [N, sizes[k], ...] along dim 1; the sizes must sum to C.
  template <Scalar T>
  static std::vector<Tensor<T, cuda>> split_channels(const Tensor<T, cuda>& x, std::span<const index_t> sizes) {
    rev::ops::detail::split_check(x.shape(), sizes);
    const index_t N = x.size(0), C = x.size(1), inner = rev::ops::detail::channel_inner(x.shape());
    std::vector<Tensor<T, cuda>> parts;
    index_t c0 = 0;
    for (index_t s : sizes) {
      Shape ps = x.shape();
      ps[1] = s;
      parts.push_back(Tensor<T, cuda>::uninitialized(ps));
      detail::copy_strided_runs(parts.back().data(), s * inner, x.data() + c0 * inner, C * inner, s * inner, N);
      c0 += s;
    }
    return parts;
  }

  template <Scalar T>
  static std::vector<Tensor<T, cuda>> split_channels(const Tensor<T, cuda>& x, std::initializer_list<index_t> sizes) {
    return split_channels(x, std::span<const index_t>(sizes.begin(), sizes.size()));
  }

  /// Concatenates parts [N, C_k, ...] along dim 1 into [N, sum C_k, ...]; all other extents must agree.
  template <Scalar T>
  static Tensor<T, cuda> concat_channels(std::span<const Tensor<T, cuda>> parts) {
    const Shape out = rev::ops::detail::concat_shape(parts);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(out);
    const index_t N = out[0], C = out[1], inner = rev::ops::detail::channel_inner(out);
    index_t c0 = 0;
    for (const Tensor<T, cuda>& part : parts) {
      const index_t run = part.size(1) * inner;
      detail::copy_strided_runs(y.data() + c0 * inner, C * inner, part.data(), run, run, N);
      c0 += part.size(1);
    }
    return y;
  }
};

}  // namespace rev::gpu
