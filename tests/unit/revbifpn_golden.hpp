// What the RevBiFPN-S0 golden tests share (tests/unit/test_revbifpn.cpp on the CPU,
// tests/cuda/test_cuda_revbifpn.cu on the GPU): the tensors whose true gradient is zero.
#pragma once

#include <set>
#include <string>

#include "model_checks.hpp"

namespace rev::testing {

// Spec §13.12: the nine tensors whose true gradient is exactly zero.
inline bool zero_gradient(const std::string& key) {
  static const std::set<std::string> zero{"rev_stack.recomp_op.recomp_transform_1.project_conv.norm.bias",
                                          "rev_stack.recomp_op.recomp_transform_2.project_conv.norm.bias",
                                          "rev_stack.recomp_op.recomp_transform_3.project_conv.norm.bias",
                                          "head.pyramid_heads.0.project_conv.norm.bias",
                                          "head.pyramid_heads.1.project_conv.norm.bias",
                                          "head.pyramid_heads.2.project_conv.norm.bias",
                                          "rev_stack.15.g.xform_0_1.0.project_conv.norm.bias",
                                          "rev_stack.15.g.xform_0_2.0.project_conv.norm.bias",
                                          "rev_stack.15.g.xform_1_2.0.project_conv.norm.bias"};
  return zero.count(key) != 0;
}

}  // namespace rev::testing
