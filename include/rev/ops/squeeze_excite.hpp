// Squeeze-and-excitation (Hu et al. 2018) as one op, for x [N, W, H, W'] and the two 1x1
// convolutions w1 [Q, W, 1, 1], b1 [Q], w2 [W, Q, 1, 1], b2 [W]:
//
//   u = mean_{h,w}(x)                 [N, W]
//   z1 = W1 u + b1,  s = Inner(z1)    [N, Q]
//   z2 = W2 s + b2,  g = Gate(z2)     [N, W]
//   y = x * g                         (per-channel broadcast)
//
// One op rather than five, so that a backend can fuse the small [N, W] and [N, Q] steps (the CPU
// does them in one pass per sample).
#pragma once

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/tensor.hpp"

namespace rev::ops {

/// The input and the small intermediates the backward reads.
template <Scalar T, class B = cpu>
struct squeeze_excite_cache {
  Tensor<T, B> x, u, z1, s, z2, g;
};

/// The gradients squeeze_excite_backward adds to (the parameters' gradient buffers).
template <Scalar T, class B = cpu>
struct squeeze_excite_grads {
  Tensor<T, B>&dw1, &db1, &dw2, &db2;
};

namespace detail {

// The extents of x and the weights; returns {W, Q}.
template <Scalar T, class B>
std::pair<index_t, index_t> se_check(const char* who, const Tensor<T, B>& x, const Tensor<T, B>& w1,
                                     const Tensor<T, B>& b1, const Tensor<T, B>& w2, const Tensor<T, B>& b2) {
  expect_rank(w1, 4, who, "w1");
  const index_t Q = w1.size(0), W = w1.size(1);
  expect_shape(w1, Shape{Q, W, 1, 1}, who, "w1");
  expect_shape(b1, Shape{Q}, who, "b1");
  expect_shape(w2, Shape{W, Q, 1, 1}, who, "w2");
  expect_shape(b2, Shape{W}, who, "b2");
  check<shape_error>(x.rank() == 4 && x.size(1) == W, who, ": input has extents ", x.shape(), ", expected [N, ", W,
                     ", H, W]");
  return {W, Q};
}

}  // namespace detail

/// y = x * Gate(W2 Inner(W1 mean_{h,w}(x) + b1) + b2); fills `cache` for the backward. Inner and
/// Gate are rev::ops::act functors.
template <class Inner, class Gate, Scalar T, class B>
Tensor<T, B> squeeze_excite(const Tensor<T, B>& x, const Tensor<T, B>& w1, const Tensor<T, B>& b1,
                            const Tensor<T, B>& w2, const Tensor<T, B>& b2, squeeze_excite_cache<T, B>& cache) {
  detail::se_check("rev::ops::squeeze_excite", x, w1, b1, w2, b2);
  return kernels<B>::template squeeze_excite<Inner, Gate>(x, w1, b1, w2, b2, cache);
}

/// dx = dy * g + broadcast(du / HW), with dg = sum_{h,w}(dy * x) back through Gate, the second
/// convolution, Inner and the first; ADDS the parameter gradients into `grads`.
template <class Inner, class Gate, Scalar T, class B>
Tensor<T, B> squeeze_excite_backward(const squeeze_excite_cache<T, B>& cache, const Tensor<T, B>& w1,
                                     const Tensor<T, B>& b1, const Tensor<T, B>& w2, const Tensor<T, B>& b2,
                                     const Tensor<T, B>& dy, squeeze_excite_grads<T, B> grads) {
  constexpr const char* who = "rev::ops::squeeze_excite_backward";
  detail::se_check(who, cache.x, w1, b1, w2, b2);
  expect_shape(dy, cache.x.shape(), who, "dy");
  expect_shape(grads.dw1, w1.shape(), who, "dw1");
  expect_shape(grads.db1, b1.shape(), who, "db1");
  expect_shape(grads.dw2, w2.shape(), who, "dw2");
  expect_shape(grads.db2, b2.shape(), who, "db2");
  return kernels<B>::template squeeze_excite_backward<Inner, Gate>(cache, w1, w2, dy, grads);
}

}  // namespace rev::ops
