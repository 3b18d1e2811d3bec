// Up-sampling layers (no parameters): bilinear, as in RevBiFPN's fusion transforms; bilinear
// with aligned corners, as in RevCol's image decoders; nearest, as in RevCol's up paths.
#pragma once

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/resample.hpp"

namespace rev::nn {

/// Bilinear up-sampling by Factor (align_corners = false). Keeps nothing for backward.
template <int Factor, Scalar T = float, class B = cpu>
class UpsampleBilinear : public layer_types<T, B>, public no_parameters {
  static_assert(Factor >= 1, "rev::nn::UpsampleBilinear: Factor must be >= 1");

 public:
  template <Scalar T2, class B2>
  using rebind = UpsampleBilinear<Factor, T2, B2>;
  using tensor_type = Tensor<T, B>;
  struct cache {};
  static constexpr int factor = Factor;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;

  tensor_type forward(const tensor_type& x, context&) { return ops::upsample_bilinear(x, Factor); }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) { return ops::upsample_bilinear_backward(dy, Factor); }
};

/// Bilinear up-sampling by Factor with align_corners = true. Keeps nothing for backward.
template <int Factor, Scalar T = float, class B = cpu>
class UpsampleBilinearAligned : public layer_types<T, B>, public no_parameters {
  static_assert(Factor >= 1, "rev::nn::UpsampleBilinearAligned: Factor must be >= 1");

 public:
  template <Scalar T2, class B2>
  using rebind = UpsampleBilinearAligned<Factor, T2, B2>;
  using tensor_type = Tensor<T, B>;
  struct cache {};
  static constexpr int factor = Factor;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;

  tensor_type forward(const tensor_type& x, context&) { return ops::upsample_bilinear_aligned(x, Factor); }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) { return ops::upsample_bilinear_aligned_backward(dy, Factor); }
};

/// Nearest up-sampling by Factor. Keeps nothing for backward.
template <int Factor, Scalar T = float, class B = cpu>
class UpsampleNearest : public layer_types<T, B>, public no_parameters {
  static_assert(Factor >= 1, "rev::nn::UpsampleNearest: Factor must be >= 1");

 public:
  template <Scalar T2, class B2>
  using rebind = UpsampleNearest<Factor, T2, B2>;
  using tensor_type = Tensor<T, B>;
  struct cache {};
  static constexpr int factor = Factor;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;

  tensor_type forward(const tensor_type& x, context&) { return ops::upsample_nearest(x, Factor); }
  tensor_type forward(const tensor_type& x, context& ctx, cache&) { return forward(x, ctx); }
  tensor_type backward(cache&, const tensor_type& dy) { return ops::upsample_nearest_backward(dy, Factor); }
};

}  // namespace rev::nn
