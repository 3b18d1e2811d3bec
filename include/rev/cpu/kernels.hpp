// rev::kernels<rev::cpu>: the CPU backend's op set, one struct of static member functions per
// group of ops (one header each), gathered here. The ops of rev::ops (rev/ops/) call it for every
// Tensor<T, rev::cpu>.
#pragma once

#include "rev/cpu/activation.hpp"
#include "rev/cpu/attention.hpp"
#include "rev/cpu/batchnorm.hpp"
#include "rev/cpu/channels.hpp"
#include "rev/cpu/conv2d.hpp"
#include "rev/cpu/dropout.hpp"
#include "rev/cpu/elementwise.hpp"
#include "rev/cpu/layer_scale.hpp"
#include "rev/cpu/layernorm.hpp"
#include "rev/cpu/linear.hpp"
#include "rev/cpu/loss.hpp"
#include "rev/cpu/pool.hpp"
#include "rev/cpu/rel_pos.hpp"
#include "rev/cpu/resample.hpp"
#include "rev/cpu/softmax.hpp"
#include "rev/cpu/space_to_depth.hpp"
#include "rev/cpu/squeeze_excite.hpp"
#include "rev/cpu/tokens.hpp"
#include "rev/cpu/windows.hpp"

namespace rev {

template <>
struct kernels<cpu> : ops::host::elementwise_kernels,
                      ops::host::activation_kernels,
                      ops::host::conv2d_kernels,
                      ops::host::batchnorm_kernels,
                      ops::host::linear_kernels,
                      ops::host::layernorm_kernels,
                      ops::host::layer_scale_kernels,
                      ops::host::softmax_kernels,
                      ops::host::attention_kernels,
                      ops::host::loss_kernels,
                      ops::host::resample_kernels,
                      ops::host::space_to_depth_kernels,
                      ops::host::pool_kernels,
                      ops::host::channels_kernels,
                      ops::host::dropout_kernels,
                      ops::host::squeeze_excite_kernels,
                      ops::host::tokens_kernels,
                      ops::host::rel_pos_kernels,
                      ops::host::windows_kernels {};

}  // namespace rev
