// rev::Fork<N>: one tensor into N streams (or pyramid levels) that start equal, y_s = x. Rev-ViT's
// two residual streams start as two copies of the patch embedding (X_1 = X_2 = x); Fork<1> makes
// a one-level pyramid (RevBiFPN's stem). The input is the first stream, so Fork is a coupling:
// its inverse reads y_0, and the gradient of x is the sum of the streams' gradients.
#pragma once

#include <cstddef>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

template <int N, Scalar T = float, class B = cpu>
class Fork : public layer_types<T, B>, public no_parameters {
  static_assert(N >= 1, "rev::Fork<N>: N must be positive");

 public:
  template <Scalar T2, class B2>
  using rebind = Fork<N, T2, B2>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  using input_type = tensor_type;
  using output_type = Tensors<T, N, B>;
  static constexpr std::size_t streams = N;
  static constexpr signature<N> out_signature(const signature<1>& reaching) {
    signature<N> s{};
    s.fill(reaching[0]);
    return s;
  }
  struct cache {};

  /// Stream 0 shares x's storage; the others are copies, so that no stream aliases another.
  output_type forward(const input_type& x, context&) {
    output_type y;
    y[0] = x;
    for (std::size_t s = 1; s < streams; ++s) y[s] = x.clone();
    return y;
  }
  output_type forward(const input_type& x, context& ctx, cache&) { return forward(x, ctx); }
  input_type backward(cache&, const output_type& dy) { return summed(dy); }
  input_type inverse(const output_type& y, context&) { return y[0]; }
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) {
    return {y[0], summed(dy)};
  }

 private:
  static tensor_type summed(const output_type& dy) {
    if constexpr (N == 1) {
      return dy[0];
    } else {
      tensor_type d = ops::add(dy[0], dy[1]);
      for (std::size_t s = 2; s < streams; ++s) ops::add_(d, dy[s]);
      return d;
    }
  }
};

}  // namespace rev
