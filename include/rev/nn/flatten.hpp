// nn::Flatten: [N, d1, d2, ...] -> [N, d1*d2*...] (a view: no copy), as torch.nn.Flatten.
#pragma once

#include <array>

#include "rev/core/layer.hpp"

namespace rev::nn {

template <Scalar T = float, class B = cpu>
class Flatten : public layer_types<T, B>, public no_parameters {
 public:
  template <Scalar T2, class B2>
  using rebind = Flatten<T2, B2>;
  using tensor_type = Tensor<T, B>;
  /// A flat [N, D] whose width is known only at run time (D = C * H * W of a map).
  static constexpr signature<1> out_signature(const signature<1>&) { return {{{layout::flat, any_channels}}}; }
  struct cache {
    Shape shape;
  };

  tensor_type forward(const tensor_type& x, context&) {
    check<shape_error>(x.rank() >= 1, "rev::nn::Flatten: input has rank 0, expected [N, ...]");
    const std::array<index_t, 2> flat{x.size(0), x.numel() / std::max<index_t>(x.size(0), 1)};
    return x.reshape(Shape(flat.begin(), flat.end()));
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    c.shape = x.shape();
    return forward(x, ctx);
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return dy.reshape(c.shape); }
};

}  // namespace rev::nn
