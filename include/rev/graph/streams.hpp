// The ends of two-stream (or N-stream) networks: Rev-ViT (Mangalam et al., CVPR 2022) ends its
// two residual streams either by concatenating them along the features (then a norm and the
// mean over tokens) or by averaging them (then a norm).
//
//   rev::ConcatStreams<2>   {x_1, x_2} -> [x_1 | x_2] along the last extent   (a coupling)
//   rev::MeanStreams<2>     {x_1, x_2} -> (x_1 + x_2) / 2                      (an ordinary block)
//
// RevCol's classifier reads one level of the last column's state: rev::Select<I, N>.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/channels.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

namespace detail {
// The streams' common extents, checked: every stream has the first stream's extents.
template <class State>
Shape common_extents(const State& x, const char* who) {
  for (std::size_t s = 1; s < x.size(); ++s)
    check<shape_error>(x[s].shape() == x[0].shape(), who, ": stream ", s, " has extents ", x[s].shape(),
                       ", stream 0 has ", x[0].shape());
  return x[0].shape();
}
}  // namespace detail

/// N streams of extents [..., D] into one [..., N * D], stream s at features [s D, (s + 1) D).
/// Its input is its output split again, so it is a coupling.
template <int N, Scalar T = float, class B = cpu>
class ConcatStreams : public layer_types<T, B>, public no_parameters {
  static_assert(N >= 1, "rev::ConcatStreams<N>: N must be positive");
  static constexpr std::size_t n = N;

 public:
  template <Scalar T2, class B2>
  using rebind = ConcatStreams<N, T2, B2>;
  static constexpr bool is_coupling = true;
  using tensor_type = Tensor<T, B>;
  using input_type = Tensors<T, N, B>;
  using output_type = tensor_type;
  static constexpr signature<1> out_signature(const signature<n>& reaching) {
    return {{{reaching[0].layouts, reaching[0].width == any_channels ? any_channels : N * reaching[0].width}}};
  }
  struct cache {};

  output_type forward(const input_type& x, context&) {
    const Shape s = detail::common_extents(x, "rev::ConcatStreams");
    check<shape_error>(s.rank() >= 2, "rev::ConcatStreams: streams have extents ", s, ", expected rank >= 2");
    std::vector<tensor_type> rows;  // [rows, D] views, concatenated along dim 1
    for (const auto& t : x) rows.push_back(t.reshape({t.numel() / t.size(-1), t.size(-1)}));
    Shape out = s;
    out[s.rank() - 1] = N * s[s.rank() - 1];
    return ops::concat_channels(rows).reshape(out);
  }
  output_type forward(const input_type& x, context& ctx, cache&) { return forward(x, ctx); }
  input_type backward(cache&, const output_type& dy) { return split(dy); }
  input_type inverse(const output_type& y, context&) { return split(y); }
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) {
    return {split(y), split(dy)};
  }

 private:
  static input_type split(const tensor_type& y) {
    check<shape_error>(y.rank() >= 2 && y.size(-1) % N == 0, "rev::ConcatStreams: tensor has extents ", y.shape(),
                       ", expected [..., ", N, " * D]");
    const index_t d = y.size(-1) / N;
    Shape part = y.shape();
    part[y.rank() - 1] = d;
    const std::vector<index_t> sizes(n, d);
    auto rows = ops::split_channels(y.reshape({y.numel() / y.size(-1), y.size(-1)}), sizes);
    input_type x;
    for (std::size_t s = 0; s < n; ++s) x[s] = rows[s].reshape(part);
    return x;
  }
};

/// The mean of N streams, (x_1 + ... + x_N) / N; the gradient of each stream is dy / N.
template <int N, Scalar T = float, class B = cpu>
class MeanStreams : public layer_types<T, B>, public no_parameters {
  static_assert(N >= 1, "rev::MeanStreams<N>: N must be positive");
  static constexpr std::size_t n = N;

 public:
  template <Scalar T2, class B2>
  using rebind = MeanStreams<N, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using input_type = Tensors<T, N, B>;
  using output_type = tensor_type;
  static constexpr signature<1> out_signature(const signature<n>& reaching) { return {reaching[0]}; }
  struct cache {};

  output_type forward(const input_type& x, context&) {
    detail::common_extents(x, "rev::MeanStreams");
    tensor_type y = x[0].clone();
    for (std::size_t s = 1; s < n; ++s) ops::add_(y, x[s]);
    ops::scale_(y, T(1) / T(N));
    return y;
  }
  output_type forward(const input_type& x, context& ctx, cache&) { return forward(x, ctx); }
  input_type backward(cache&, const output_type& dy) {
    input_type dx;
    tensor_type d = dy.clone();
    ops::scale_(d, T(1) / T(N));
    dx[0] = d;
    for (std::size_t s = 1; s < n; ++s) dx[s] = d.clone();
    return dx;
  }
};

/// Stream I of N, y = x_I; the other streams' gradients are zero (an ordinary block: the
/// other streams cannot be recovered from y).
template <int I, int N, Scalar T = float, class B = cpu>
class Select : public layer_types<T, B>, public no_parameters {
  static_assert(0 <= I && I < N, "rev::Select<I, N>: I must be in [0, N)");

 public:
  template <Scalar T2, class B2>
  using rebind = Select<I, N, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using input_type = Tensors<T, N, B>;
  using output_type = tensor_type;
  static constexpr signature<1> out_signature(const signature<N>& reaching) { return {reaching[I]}; }
  struct cache {
    std::array<Shape, N> shapes;
  };

  output_type forward(const input_type& x, context&) { return x[I]; }
  output_type forward(const input_type& x, context&, cache& c) {
    for (std::size_t s = 0; s < x.size(); ++s) c.shapes[s] = x[s].shape();
    return x[I];
  }
  input_type backward(cache& c, const output_type& dy) {
    check<shape_error>(dy.shape() == c.shapes[I], "rev::Select<", I, ", ", N, ">: gradient has extents ", dy.shape(),
                       ", expected ", c.shapes[I]);
    input_type dx;
    for (std::size_t s = 0; s < dx.size(); ++s) dx[s] = s == I ? dy : tensor_type(c.shapes[s]);
    return dx;
  }
};

}  // namespace rev
