// Layer normalisation (Ba et al. 2016) with a biased variance and a per-channel affine map:
//
//   y = (x - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var + eps)
//
// layer_norm normalises over the last extent of tokens [..., D] (PyTorch's F.layer_norm);
// layer_norm_channels over the channels of an NCHW map at every pixel (RevCol's and
// ConvNeXt's "channels_first" LayerNorm). Statistics are
// accumulated in double.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
#include <vector>

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

template <Scalar T, class B>
void ln_check_params(const char* who, index_t D, const Tensor<T, B>& weight,
                     std::type_identity_t<const Tensor<T, B>*> bias) {
  expect_shape(weight, Shape{D}, who, "weight");
  if (bias) expect_shape(*bias, Shape{D}, who, "bias");
}

template <Scalar T, class B>
void ln_check_grads(const char* who, index_t D, const Tensor<T, B>* dweight, const Tensor<T, B>* dbias) {
  if (dweight) expect_shape(*dweight, Shape{D}, who, "dweight");
  if (dbias) expect_shape(*dbias, Shape{D}, who, "dbias");
}

inline void ln_check_eps(const char* who, double eps) {
  check<value_error>(eps >= 0 && std::isfinite(eps), who, ": eps must be finite and >= 0, got ", eps);
}

}  // namespace detail

/// LayerNorm over the channels of x [N, C, H, W] at each pixel; weight, bias [C].
template <Scalar T, class B>
Tensor<T, B> layer_norm_channels(const Tensor<T, B>& x, const Tensor<T, B>& weight, const Tensor<T, B>& bias,
                                 double eps) {
  return kernels<B>::layer_norm_channels(x, weight, bias, eps);
}

/// Backward of layer_norm_channels. With xhat = (x - mean) * rstd and g = dy * weight, per pixel
///   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),
///   dweight += sum_{n,h,w}(dy * xhat),  dbias += sum_{n,h,w}(dy).
template <Scalar T, class B>
Tensor<T, B> layer_norm_channels_backward(const Tensor<T, B>& x, const Tensor<T, B>& weight, double eps,
                                          const Tensor<T, B>& dy, std::type_identity_t<Tensor<T, B>*> dweight,
                                          std::type_identity_t<Tensor<T, B>*> dbias) {
  return kernels<B>::layer_norm_channels_backward(x, weight, eps, dy, dweight, dbias);
}

/// LayerNorm over the last extent D of x [..., D]; weight, bias [D].
template <Scalar T, class B>
Tensor<T, B> layer_norm(const Tensor<T, B>& x, const Tensor<T, B>& weight, const Tensor<T, B>& bias, double eps) {
  return kernels<B>::layer_norm(x, weight, bias, eps);
}

/// Backward of layer_norm. With xhat = (x - mean) * rstd and g = dy * weight, per row
///   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
///   dweight += sum_rows(dy * xhat),  dbias += sum_rows(dy).
template <Scalar T, class B>
Tensor<T, B> layer_norm_backward(const Tensor<T, B>& x, const Tensor<T, B>& weight, double eps, const Tensor<T, B>& dy,
                                 std::type_identity_t<Tensor<T, B>*> dweight,
                                 std::type_identity_t<Tensor<T, B>*> dbias) {
  return kernels<B>::layer_norm_backward(x, weight, eps, dy, dweight, dbias);
}

}  // namespace rev::ops
