// rev::Cascade<B_0, ..., B_{n-1}>: merges n + 1 pyramid levels (or streams) into one tensor by
// carrying a running tensor from level 0 to level n:
//
//   t_0 = x_0,   t_{i+1} = x_{i+1} + B_i(t_i),   y = t_n
//
// RevBiFPN's classification head (the pyramid heads, each B_i a strided MBConv
// from level i's width to level i + 1's). An ordinary block: in a reversible Chain it is
// checkpointed. Children are named "0", "1", ... unless they are rev::Named.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/elementwise.hpp"

namespace rev {

/// Named in the compile error of a Cascade whose junction J does not fit (J joins blocks J, J + 1).
template <int J>
struct Cascade_junction {
  template <class Returned>
  struct block_returns {
    template <class Taken>
    struct next_block_takes;
  };
};
namespace detail {
template <int J, class Returned, class Taken>
using cascade_report = typename Cascade_junction<J>::template block_returns<Returned>::template next_block_takes<Taken>;
}  // namespace detail

template <class... Blocks>
class Cascade {
  static constexpr std::size_t n = sizeof...(Blocks);
  static_assert(n > 0, "rev::Cascade<B...>: needs at least one block (two levels)");
  using tuple = std::tuple<Blocks...>;
  using first = std::tuple_element_t<0, tuple>;
  static_assert(((std::same_as<input_t<Blocks>, typename first::tensor_type> &&
                  std::same_as<output_t<Blocks>, typename first::tensor_type>)&&...),
                "rev::Cascade<B...>: every block takes and returns one tensor of one element type and backend");
  // B_{i+1} takes what B_i returns (plus level i + 1, of the same signature): an error naming
  // the junction otherwise.
  static_assert(sizeof(typename decltype(junction_check<detail::cascade_report, Blocks...>())::type) > 0);

 public:
  template <class T2, class B2>
  using rebind = Cascade<rebind_t<Blocks, T2, B2>...>;
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = Tensors<value_type, static_cast<int>(n + 1), backend>;
  using output_type = tensor_type;
  /// Level 0: what B_0 takes; level i + 1: what B_i returns (it is added to it).
  static constexpr signature<n + 1> in_signature{in_signature_of<first>()[0], own_out_signature_of<Blocks>()[0]...};
  static constexpr signature<1> out_signature(const signature<n + 1>&) {
    return own_out_signature_of<std::tuple_element_t<n - 1, tuple>>();
  }

  struct cache {
    std::tuple<typename Blocks::cache...> blocks;
  };

  output_type forward(const input_type& x, context& ctx) {
    tensor_type t = x[0];
    each([&](auto& b, auto i) { t = added(x[i + 1], b.forward(t, ctx), i); });
    return t;
  }
  output_type forward(const input_type& x, context& ctx, cache& c) {
    tensor_type t = x[0];
    each([&](auto& b, auto i) { t = added(x[i + 1], b.forward(t, ctx, std::get<i>(c.blocks)), i); });
    return t;
  }
  /// dx_{i+1} = dt_{i+1};  dt_i = B_i'(t_i)^T dt_{i+1};  dx_0 = dt_0.
  input_type backward(cache& c, const output_type& dy) {
    input_type dx;
    dx[n] = dy;
    back<n - 1>(c, dx);
    c = cache{};
    return dx;
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    each([&]<class Block>(Block& b, auto i) { b.for_each_parameter(v, child_prefix<Block>(prefix, i)); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each([&]<class Block>(Block& b, auto i) { b.for_each_buffer(v, child_prefix<Block>(prefix, i)); });
  }
  /// Calls v(block) for each block (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    each([&](auto& b, auto) { v(b); });
  }

  template <std::size_t I>
  auto& get() {
    return std::get<I>(blocks_);
  }

 private:
  template <std::size_t I>
  void back(cache& c, input_type& dx) {
    dx[I] = std::get<I>(blocks_).backward(std::get<I>(c.blocks), dx[I + 1]);
    if constexpr (I > 0) back<I - 1>(c, dx);
  }
  // x_{i+1} + B_i(t_i): a B_i result of other extents is named with its index.
  static tensor_type added(const tensor_type& level, const tensor_type& b, std::size_t i) {
    check<shape_error>(b.shape() == level.shape(), "rev::Cascade: block ", i, " returns extents ", b.shape(),
                       ", but level ", i + 1, " it is added to has extents ", level.shape());
    return ops::add(level, b);
  }
  template <class F>
  void each(F&& f) {
    for_each_index<n>([&](auto i) { f(std::get<i>(blocks_), i); });
  }

  tuple blocks_;
};

}  // namespace rev
