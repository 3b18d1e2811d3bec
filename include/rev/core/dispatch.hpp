// Backend dispatch of rev::ops. The CPU ops are overloads on Tensor<T, cpu>; layer templates
// call them as rev::ops::name(...), a qualified name whose overloads are fixed where the layer
// is defined, before any other backend's header is seen. The forwarders below are those
// overloads for every other backend: they pass the call on to kernels<B>::name, which is looked
// up only when the layer is instantiated (for rev::cuda: rev/cuda/kernels.hpp).
#pragma once

#include <concepts>
#include <initializer_list>
#include <ranges>
#include <span>
#include <type_traits>
#include <utility>

#include "rev/core/device.hpp"
#include "rev/core/shape.hpp"
#include "rev/core/tensor.hpp"

namespace rev {
namespace detail {

template <class X>
struct device_tensor_of : std::false_type {};
template <class T, class B>
struct device_tensor_of<Tensor<T, B>> : std::bool_constant<!std::same_as<B, cpu>> {};

}  // namespace detail

/// A tensor of a backend other than rev::cpu (cv-ref qualifiers ignored).
template <class X>
concept DeviceTensor = detail::device_tensor_of<std::remove_cvref_t<X>>::value;

}  // namespace rev

// ops::name(x, args...) with x a device tensor -> kernels<B>::name(x, args...).
#define REV_DISPATCH_OP(op)                                                         \
  template <::rev::DeviceTensor X, class... A>                                      \
  decltype(auto) op(X&& x, A&&... a) {                                              \
    using backend_ = typename std::remove_cvref_t<X>::backend;                      \
    return ::rev::kernels<backend_>::op(std::forward<X>(x), std::forward<A>(a)...); \
  }

// ops::name(shape, dy, args...) with dy a device tensor (the backward of a reduction).
#define REV_DISPATCH_OP_SHAPE_FIRST(op)                                                 \
  template <::rev::DeviceTensor X, class... A>                                          \
  decltype(auto) op(const ::rev::Shape& s, X&& dy, A&&... a) {                          \
    using backend_ = typename std::remove_cvref_t<X>::backend;                          \
    return ::rev::kernels<backend_>::op(s, std::forward<X>(dy), std::forward<A>(a)...); \
  }

namespace rev::ops {

// elementwise.hpp
REV_DISPATCH_OP(add)
REV_DISPATCH_OP(sub)
REV_DISPATCH_OP(mul)
REV_DISPATCH_OP(add_)
REV_DISPATCH_OP(accumulate)
REV_DISPATCH_OP(scale_)
REV_DISPATCH_OP(sum)
REV_DISPATCH_OP(dot)
// conv2d.hpp, linear.hpp
REV_DISPATCH_OP(conv2d)
REV_DISPATCH_OP(conv2d_backward)
REV_DISPATCH_OP(linear)
REV_DISPATCH_OP(linear_backward)
// batchnorm.hpp
REV_DISPATCH_OP(batch_norm_train)
REV_DISPATCH_OP(batch_norm_apply)
REV_DISPATCH_OP(batch_norm_backward_train)
REV_DISPATCH_OP(batch_norm_backward_eval)
REV_DISPATCH_OP(batch_norm_update_running)
// layernorm.hpp, softmax.hpp, attention.hpp, loss.hpp
REV_DISPATCH_OP(layer_norm)
REV_DISPATCH_OP(layer_norm_backward)
REV_DISPATCH_OP(layer_norm_channels)
REV_DISPATCH_OP(layer_norm_channels_backward)
REV_DISPATCH_OP(softmax)
REV_DISPATCH_OP(softmax_backward)
REV_DISPATCH_OP(multi_head_attention)
REV_DISPATCH_OP(multi_head_attention_backward)
REV_DISPATCH_OP(cross_entropy)
REV_DISPATCH_OP(cross_entropy_backward)
// resample.hpp, space_to_depth.hpp, pool.hpp, channels.hpp, dropout.hpp
REV_DISPATCH_OP(upsample_nearest)
REV_DISPATCH_OP(upsample_nearest_backward)
REV_DISPATCH_OP(upsample_bilinear)
REV_DISPATCH_OP(upsample_bilinear_backward)
REV_DISPATCH_OP(space_to_depth)
REV_DISPATCH_OP(depth_to_space)
REV_DISPATCH_OP(global_avg_pool)
REV_DISPATCH_OP_SHAPE_FIRST(global_avg_pool_backward)
REV_DISPATCH_OP(avg_pool2d)
REV_DISPATCH_OP_SHAPE_FIRST(avg_pool2d_backward)
REV_DISPATCH_OP(split_channels)
REV_DISPATCH_OP(dropout)
REV_DISPATCH_OP(dropout_backward)
REV_DISPATCH_OP(drop_path)
REV_DISPATCH_OP(drop_path_backward)
// Device-only steps of nn::SqueezeExcite (the CPU layer fuses them): y = x * g per (n, c), and
// its backward {dy * g, sum_{h,w}(dy * x)}.
REV_DISPATCH_OP(scale_channels)
REV_DISPATCH_OP(scale_channels_backward)

/// y = A(x) and its backward, A one of rev::ops::act.
template <class A, DeviceTensor X>
decltype(auto) activation(X&& x) {
  return kernels<typename std::remove_cvref_t<X>::backend>::template activation<A>(std::forward<X>(x));
}
template <class A, DeviceTensor X, DeviceTensor D>
decltype(auto) activation_backward(X&& x, D&& dy) {
  return kernels<typename std::remove_cvref_t<X>::backend>::template activation_backward<A>(std::forward<X>(x),
                                                                                            std::forward<D>(dy));
}

/// split_channels(x, {sizes...}): a braced list is not deduced by the forwarder above.
template <DeviceTensor X>
auto split_channels(X&& x, std::initializer_list<index_t> sizes) {
  return kernels<typename std::remove_cvref_t<X>::backend>::split_channels(
      std::forward<X>(x), std::span<const index_t>(sizes.begin(), sizes.size()));
}

/// concat_channels of a contiguous range (std::vector, std::array, span) of device tensors.
template <std::ranges::contiguous_range R>
requires DeviceTensor<std::ranges::range_value_t<R>>
auto concat_channels(const R& parts) {
  using tensor = std::ranges::range_value_t<R>;
  return kernels<typename tensor::backend>::concat_channels(
      std::span<const tensor>(std::ranges::data(parts), std::ranges::size(parts)));
}
template <Scalar T, class B>
requires(!std::same_as<B, cpu>) Tensor<T, B> concat_channels(std::initializer_list<Tensor<T, B>> parts) {
  return kernels<B>::concat_channels(std::span<const Tensor<T, B>>(parts.begin(), parts.size()));
}

}  // namespace rev::ops

#undef REV_DISPATCH_OP
#undef REV_DISPATCH_OP_SHAPE_FIRST
