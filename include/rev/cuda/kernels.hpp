// rev::kernels<rev::cuda>: the CUDA backend's op set, one struct of static member functions per
// group of ops (one header each), gathered here. The ops of rev::ops (rev/ops/) call it for every
// Tensor<T, rev::cuda>; member names and signatures are those of rev/cpu/kernels.hpp, with
// Tensor<T, cuda> for Tensor<T>.
#pragma once

#include "rev/cuda/attention.cuh"
#include "rev/cuda/batchnorm.cuh"
#include "rev/cuda/channels.cuh"
#include "rev/cuda/conv2d.cuh"
#include "rev/cuda/dropout.cuh"
#include "rev/cuda/elementwise.cuh"
#include "rev/cuda/layernorm.cuh"
#include "rev/cuda/linear.cuh"
#include "rev/cuda/loss.cuh"
#include "rev/cuda/pool.cuh"
#include "rev/cuda/resample.cuh"
#include "rev/cuda/softmax.cuh"
#include "rev/cuda/space_to_depth.cuh"
#include "rev/cuda/squeeze_excite.cuh"
#include "rev/cuda/tensor.cuh"

namespace rev {

template <>
struct kernels<cuda> : gpu::memory_ops,
                       gpu::elementwise_ops,
                       gpu::conv_ops,
                       gpu::batchnorm_ops,
                       gpu::linear_ops,
                       gpu::layernorm_ops,
                       gpu::softmax_ops,
                       gpu::attention_ops,
                       gpu::loss_ops,
                       gpu::resample_ops,
                       gpu::space_to_depth_ops,
                       gpu::pool_ops,
                       gpu::channel_ops,
                       gpu::dropout_ops,
                       gpu::channel_scale_ops {};

}  // namespace rev
