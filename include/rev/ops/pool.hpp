// Pooling of NCHW maps: the average, global (y[n, c] = mean over (h, w) of x[n, c, h, w]) and over
// non-overlapping k x k windows (kernel = stride = k, no padding, as nn.AvgPool2d(k)); and the
// maximum over k x k windows at a stride with implicit -inf padding (nn.MaxPool2d(k, s, p)).
#pragma once

#include <algorithm>

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

namespace detail {

inline void gap_check_input(const char* who, const Shape& s) {
  check<shape_error>(s.rank() == 4, who, ": input has rank ", s.rank(), " (extents ", s,
                     "), expected rank 4 [N, C, H, W]");
  check<shape_error>(s[2] * s[3] > 0, who, ": input has extents ", s, ", expected H * W > 0");
}

struct max_pool_dims {
  index_t H, W, Ho, Wo;
};

inline max_pool_dims max_pool_check(const char* who, const Shape& s, int k, int stride, int pad) {
  gap_check_input(who, s);
  check<value_error>(k >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= k, who, ": kernel ", k, ", stride ", stride,
                     ", padding ", pad, ": expected kernel >= 1, stride >= 1 and 0 <= padding <= kernel / 2");
  const index_t H = s[2], W = s[3];
  check<shape_error>(H + 2 * pad >= k && W + 2 * pad >= k, who, ": input has extents ", s, ", smaller than the ", k,
                     "x", k, " window with padding ", pad);
  return {H, W, (H + 2 * pad - k) / stride + 1, (W + 2 * pad - k) / stride + 1};
}

}  // namespace detail

/// [N, C, H, W] -> [N, C, 1, 1], the mean over each map (accumulated in double).
template <Scalar T, class B>
Tensor<T, B> global_avg_pool(const Tensor<T, B>& x) {
  return kernels<B>::global_avg_pool(x);
}

/// dx[n, c, h, w] = dy[n, c] / (H * W).
template <Scalar T, class B>
Tensor<T, B> global_avg_pool_backward(const Shape& input_shape, const Tensor<T, B>& dy) {
  return kernels<B>::global_avg_pool_backward(input_shape, dy);
}

/// [N, C, H, W] -> [N, C, H / k, W / k]: the mean of each k x k window (kernel = stride = k, no
/// padding); as nn.AvgPool2d(k), trailing rows and columns that do not fill a window are dropped.
template <Scalar T, class B>
Tensor<T, B> avg_pool2d(const Tensor<T, B>& x, int k) {
  return kernels<B>::avg_pool2d(x, k);
}

/// dx[n, c, h, w] = dy[n, c, h / k, w / k] / k^2 inside the windows, 0 in dropped rows/columns.
template <Scalar T, class B>
Tensor<T, B> avg_pool2d_backward(const Shape& input_shape, const Tensor<T, B>& dy, int k) {
  return kernels<B>::avg_pool2d_backward(input_shape, dy, k);
}

/// [N, C, H, W] -> [N, C, Ho, Wo], Ho = (H + 2 padding - k) / stride + 1: the maximum of each
/// k x k window (padding counts as -inf; the first maximum in row-major order wins ties and NaN
/// propagates, as PyTorch's).
template <Scalar T, class B>
Tensor<T, B> max_pool2d(const Tensor<T, B>& x, int k, int stride, int padding) {
  return kernels<B>::max_pool2d(x, k, stride, padding);
}

/// dx: each output's gradient lands on the input element its maximum came from (recomputed from x).
template <Scalar T, class B>
Tensor<T, B> max_pool2d_backward(const Tensor<T, B>& x, const Tensor<T, B>& dy, int k, int stride, int padding) {
  return kernels<B>::max_pool2d_backward(x, dy, k, stride, padding);
}

}  // namespace rev::ops
