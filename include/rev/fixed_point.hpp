// Entry header: the fixed-point residual block of RevUp / i-ResNet, y = x + g(x) with g
// contractive, the spectrally normalised convolution that makes g contractive, and the
// Chain/Repeat execution it runs in.
//   rev::FixedPointResidual<G>          (rev/coupling/fixed_point.hpp)
//   rev::nn::SNConv2d<In, Out, opts>    (rev/nn/spectral_norm.hpp)
#pragma once

#include "rev/coupling/fixed_point.hpp"
#include "rev/graph/chain.hpp"
#include "rev/nn/spectral_norm.hpp"
#include "rev/testing/check_invertible.hpp"
