// Average pooling of NCHW maps: global (y[n, c] = mean over (h, w) of x[n, c, h, w]) and over
// non-overlapping k x k windows (kernel = stride = k, no padding, as nn.AvgPool2d(k)).
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

}  // namespace rev::ops
