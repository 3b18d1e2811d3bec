// 2-D convolution on the GPU through cuDNN's convolution API (cudnnConvolutionForward,
// BackwardData, BackwardFilter, BackwardBias), with the semantics, checks and messages of the CPU
// op (rev/ops/conv2d.hpp): cross-correlation, zero padding, stride, dilation, groups; NCHW, float
// or double.
//
// Algorithms are chosen once per (device, element type, extents, params, pass) and cached for the
// process. The choice comes from cuDNN's heuristics (cudnnGet*Algorithm_v7), not from timed runs
// (cudnnFind*): the heuristics run no kernels, need no scratch outputs (a timed backward-filter
// search writes its output, here the accumulated dw), and choose the same algorithm in every run.
// Of the ranked candidates the first one cuDNN accepts (its workspace query succeeds) whose
// workspace fits workspace_limit is taken, else the accepted one with the smallest workspace.
//
// The workspace is a tensor from the caching allocator that lives for the call, so rev::memory<cuda>
// counts it; freeing it before the kernels finish is safe, as blocks are reused in stream order.
//
// Math: float convolutions run with CUDNN_FMA_MATH, not CUDNN_DEFAULT_MATH, because on sm_80 and
// newer the default lets cuDNN pick TF32 tensor-core kernels (10-bit mantissa inputs); FMA math
// keeps float32 accuracy, so results match the CPU op within float32 rounding. Double has no
// reduced-precision path: CUDNN_DEFAULT_MATH.
#pragma once

#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <map>
#include <mutex>
#include <type_traits>

#include "rev/core/op_count.hpp"
#include "rev/cuda/error.hpp"
#include "rev/cuda/handles.hpp"
#include "rev/cuda/tensor.cuh"
#include "rev/ops/conv2d.hpp"

namespace rev::gpu {

namespace conv_detail {

// An owned cuDNN descriptor, destroyed with its scope (also when a later call throws).
template <class H, cudnnStatus_t (*create)(H*), cudnnStatus_t (*destroy)(H)>
class descriptor {
 public:
  descriptor() { REV_CUDA_CHECK(create(&h_)); }
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  ~descriptor() { (void)destroy(h_); }
  operator H() const { return h_; }

 private:
  H h_{};
};

using tensor_descriptor =
    descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using filter_descriptor =
    descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using convolution_descriptor =
    descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

template <Scalar T>
inline constexpr cudnnDataType_t data_type = std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;

// cuDNN takes extents as int.
inline int to_int(const char* who, index_t v) {
  check<value_error>(v <= INT_MAX, who, ": extent ", v, " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

inline void set_4d(const char* who, cudnnTensorDescriptor_t d, cudnnDataType_t t, index_t n, index_t c, index_t h,
                   index_t w) {
  REV_CUDA_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, t, to_int(who, n), to_int(who, c), to_int(who, h),
                                            to_int(who, w)));
}

// The descriptors of one convolution: input, weight, output and the convolution itself.
struct conv_descriptors {
  tensor_descriptor x, y;
  filter_descriptor w;
  convolution_descriptor conv;

  conv_descriptors(const char* who, const ops::detail::conv_geometry& g, cudnnDataType_t t) {
    set_4d(who, x, t, g.n, g.c_in, g.h, g.w);
    set_4d(who, y, t, g.n, g.c_out, g.ho, g.wo);
    REV_CUDA_CHECK(cudnnSetFilter4dDescriptor(w, t, CUDNN_TENSOR_NCHW, to_int(who, g.c_out), to_int(who, g.cin_g),
                                              to_int(who, g.kh), to_int(who, g.kw)));
    const ops::conv2d_params& p = g.p;
    REV_CUDA_CHECK(cudnnSetConvolution2dDescriptor(conv, p.pad_h, p.pad_w, p.stride_h, p.stride_w, p.dilation_h,
                                                   p.dilation_w, CUDNN_CROSS_CORRELATION, t));
    REV_CUDA_CHECK(cudnnSetConvolutionGroupCount(conv, p.groups));
    REV_CUDA_CHECK(cudnnSetConvolutionMathType(conv, t == CUDNN_DATA_FLOAT ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  }
};

enum class pass { forward, backward_data, backward_filter };

struct algorithm {
  int algo;               // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  std::size_t workspace;  // bytes
};

// Candidates with a larger workspace are passed over while a smaller one is accepted: a workspace
// beyond this would dwarf the activations whose memory a reversible network saves.
inline constexpr std::size_t workspace_limit = std::size_t{256} << 20;

struct algorithm_cache {
  std::mutex mutex;
  std::map<std::array<index_t, 17>, algorithm> chosen;
  std::size_t searches = 0;

  static algorithm_cache& instance() {
    static algorithm_cache* c = new algorithm_cache;  // never destroyed: usable until exit
    return *c;
  }
};

// The first of cuDNN's ranked candidates perf[0, count) that it accepts with a workspace within
// the limit, else the accepted one with the smallest workspace. workspace_of(algo, bytes) is the
// cudnnGet*WorkspaceSize query. Tensor-core candidates are skipped for float (see the top).
template <class Perf, class Query>
algorithm pick(const char* who, const Perf* perf, int count, bool float32, Query workspace_of) {
  algorithm best{-1, 0};
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (float32 &&
        (perf[i].mathType == CUDNN_TENSOR_OP_MATH || perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    std::size_t bytes = 0;
    if (workspace_of(perf[i].algo, bytes) != CUDNN_STATUS_SUCCESS) continue;
    if (bytes <= workspace_limit) return {static_cast<int>(perf[i].algo), bytes};
    if (best.algo < 0 || bytes < best.workspace) best = {static_cast<int>(perf[i].algo), bytes};
  }
  check<cuda_error>(best.algo >= 0, who, ": cuDNN offers no algorithm for this convolution");
  return best;
}

inline algorithm search(const char* who, pass which, cudnnHandle_t h, const conv_descriptors& d, cudnnDataType_t t) {
  const bool f32 = t == CUDNN_DATA_FLOAT;
  if (which == pass::forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    REV_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                          &count, perf));
    return pick(who, perf, count, f32, [&](cudnnConvolutionFwdAlgo_t a, std::size_t& bytes) {
      return cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, a, &bytes);
    });
  }
  if (which == pass::backward_data) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    REV_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    return pick(who, perf, count, f32, [&](cudnnConvolutionBwdDataAlgo_t a, std::size_t& bytes) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.conv, d.x, a, &bytes);
    });
  }
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  REV_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w,
                                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
  return pick(who, perf, count, f32, [&](cudnnConvolutionBwdFilterAlgo_t a, std::size_t& bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.conv, d.w, a, &bytes);
  });
}

// The cached algorithm of one pass of the convolution g on the current device, searched on first use.
inline algorithm choose(const char* who, pass which, const ops::detail::conv_geometry& g, cudnnHandle_t h,
                        const conv_descriptors& d, cudnnDataType_t t) {
  int device = 0;
  REV_CUDA_CHECK(cudaGetDevice(&device));
  const ops::conv2d_params& p = g.p;
  const std::array<index_t, 17> key{device,
                                    static_cast<index_t>(t),
                                    static_cast<index_t>(which),
                                    g.n,
                                    g.c_in,
                                    g.h,
                                    g.w,
                                    g.c_out,
                                    g.kh,
                                    g.kw,
                                    p.stride_h,
                                    p.stride_w,
                                    p.pad_h,
                                    p.pad_w,
                                    p.dilation_h,
                                    p.dilation_w,
                                    p.groups};
  algorithm_cache& cache = algorithm_cache::instance();
  std::lock_guard lock(cache.mutex);
  if (const auto it = cache.chosen.find(key); it != cache.chosen.end()) return it->second;
  const algorithm a = search(who, which, h, d, t);
  ++cache.searches;
  cache.chosen.emplace(key, a);
  return a;
}

// Scratch of at least `bytes` from the caching allocator, alive while the handle is.
inline Tensor<float, cuda> workspace(std::size_t bytes) {
  return Tensor<float, cuda>::uninitialized({static_cast<index_t>((bytes + sizeof(float) - 1) / sizeof(float))});
}

}  // namespace conv_detail

/// How many algorithm searches the convolutions ran: one per new (device, element type, extents,
/// params, pass); repeated shapes reuse the cached choice.
inline std::size_t conv_algorithm_searches() {
  conv_detail::algorithm_cache& cache = conv_detail::algorithm_cache::instance();
  std::lock_guard lock(cache.mutex);
  return cache.searches;
}

/// rev::ops::conv2d and conv2d_backward on rev::cuda.
struct conv_ops {
  /// y = conv2d(x, w) + bias; see rev/ops/conv2d.hpp.
  template <Scalar T>
  static Tensor<T, cuda> conv2d(const Tensor<T, cuda>& x, const Tensor<T, cuda>& w,
                                std::type_identity_t<const Tensor<T, cuda>*> bias, const ops::conv2d_params& p) {
    constexpr const char* who = "rev::ops::conv2d";
    const auto g = ops::detail::conv_check(who, x, w, bias, p);
    Tensor<T, cuda> y = Tensor<T, cuda>::uninitialized(g.out_shape());
    if (op_counts* c = rev::detail::active_op_counts()) {
      c->conv_macs += y.numel() * w.size(1) * w.size(2) * w.size(3);
      if (bias) c->conv_bias += y.numel();
    }
    if (y.numel() == 0) return y;
    constexpr cudnnDataType_t t = conv_detail::data_type<T>;
    const T one = 1, zero = 0;
    const cudnnHandle_t h = cudnn();
    if (x.numel() == 0) {  // an empty image with padding: every output reads zeros only
      y.fill(T(0));
    } else {
      const conv_detail::conv_descriptors d(who, g, t);
      const conv_detail::algorithm a = conv_detail::choose(who, conv_detail::pass::forward, g, h, d, t);
      Tensor<float, cuda> ws = conv_detail::workspace(a.workspace);
      REV_CUDA_CHECK(cudnnConvolutionForward(h, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                             static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws.data(), a.workspace,
                                             &zero, d.y, y.data()));
    }
    if (bias) {  // y += bias[o], broadcast over N, H, W
      conv_detail::tensor_descriptor yd, bd;
      conv_detail::set_4d(who, yd, t, g.n, g.c_out, g.ho, g.wo);
      conv_detail::set_4d(who, bd, t, 1, g.c_out, 1, 1);
      REV_CUDA_CHECK(cudnnAddTensor(h, &one, bd, bias->data(), &one, yd, y.data()));
    }
    return y;
  }

  /// The backward of conv2d: returns dL/dx (an empty tensor when need_dx is false) and ADDS
  /// dL/dw into *dw and dL/dbias into *db when they are non-null; see rev/ops/conv2d.hpp.
  template <Scalar T>
  static Tensor<T, cuda> conv2d_backward(const Tensor<T, cuda>& x, const Tensor<T, cuda>& w, const Tensor<T, cuda>& dy,
                                         const ops::conv2d_params& p, std::type_identity_t<Tensor<T, cuda>*> dw,
                                         std::type_identity_t<Tensor<T, cuda>*> db, bool need_dx = true) {
    constexpr const char* who = "rev::ops::conv2d_backward";
    const auto g = ops::detail::conv_check(who, x, w, nullptr, p);
    expect_shape(dy, g.out_shape(), who, "output gradient");
    if (dw) expect_shape(*dw, w.shape(), who, "weight gradient");
    if (db) expect_shape(*db, Shape{g.c_out}, who, "bias gradient");
    Tensor<T, cuda> dx = need_dx ? Tensor<T, cuda>::uninitialized(x.shape()) : Tensor<T, cuda>();
    if (dy.numel() == 0) return dx;
    constexpr cudnnDataType_t t = conv_detail::data_type<T>;
    const T one = 1, zero = 0;
    const cudnnHandle_t h = cudnn();
    if (x.numel() > 0 && (need_dx || dw)) {  // an empty x has no dx and adds nothing to dw
      const conv_detail::conv_descriptors d(who, g, t);
      conv_detail::algorithm data{-1, 0}, filter{-1, 0};
      if (need_dx) data = conv_detail::choose(who, conv_detail::pass::backward_data, g, h, d, t);
      if (dw) filter = conv_detail::choose(who, conv_detail::pass::backward_filter, g, h, d, t);
      Tensor<float, cuda> ws = conv_detail::workspace(std::max(data.workspace, filter.workspace));
      if (need_dx)  // dx = conv2d^T(dy), overwritten (beta = 0)
        REV_CUDA_CHECK(cudnnConvolutionBackwardData(h, &one, d.w, w.data(), d.y, dy.data(), d.conv,
                                                    static_cast<cudnnConvolutionBwdDataAlgo_t>(data.algo), ws.data(),
                                                    data.workspace, &zero, d.x, dx.data()));
      if (dw)  // dw += sum over samples and positions of dy (x) x, accumulated (beta = 1)
        REV_CUDA_CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x, x.data(), d.y, dy.data(), d.conv,
                                                      static_cast<cudnnConvolutionBwdFilterAlgo_t>(filter.algo),
                                                      ws.data(), filter.workspace, &one, d.w, dw->data()));
    }
    if (db) {  // db[o] += sum over N, H, W of dy[:, o]
      conv_detail::tensor_descriptor yd, bd;
      conv_detail::set_4d(who, yd, t, g.n, g.c_out, g.ho, g.wo);
      conv_detail::set_4d(who, bd, t, 1, g.c_out, 1, 1);
      REV_CUDA_CHECK(cudnnConvolutionBackwardBias(h, &one, yd, dy.data(), &one, bd, db->data()));
    }
    return dx;
  }
};

}  // namespace rev::gpu
