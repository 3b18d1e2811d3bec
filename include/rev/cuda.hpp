// rev's CUDA backend: device tensors (rev::Tensor<T, rev::cuda>), the caching allocator, streams,
// and every op of rev::ops on the GPU through cuDNN, cuBLAS and rev's own kernels. Include it from
// a translation unit compiled as CUDA (nvcc, with --extended-lambda; CMake: link rev::cuda).
// Layers, couplings and models take the backend as a template parameter and run unchanged:
//
//   #include <rev/rev.hpp>
//   #include <rev/cuda.hpp>
//   rev::Tensor<float, rev::cuda> x = rev::to_device(host_tensor);
//   rev::nn::Conv2d<3, 16, rev::nn::conv_opts{.kernel = 3}, float, rev::cuda> conv;
#pragma once

#if !defined(__CUDACC__)
#error "<rev/cuda.hpp> must be compiled as CUDA (nvcc); CPU-only programs include <rev/rev.hpp> and use rev::cpu"
#endif

#include "rev/cuda/allocator.hpp"
#include "rev/cuda/error.hpp"
#include "rev/cuda/handles.hpp"
#include "rev/cuda/kernels.hpp"
#include "rev/cuda/stream.hpp"
#include "rev/cuda/tensor.cuh"
