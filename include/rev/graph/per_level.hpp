// rev::PerLevel<B_0, ..., B_{n-1}>: one block per pyramid level (or stream), y_s = B_s(x_s). It
// is a coupling when every B_s is one (RevBiFPN's RevBlock groups: one
// reversible residual block per scale), an ordinary block otherwise (RevBiFPN's neck: one MBConv
// per scale). Children are named "0", "1", ... unless they are rev::Named.
//
//   rev::PerLevel<Block<48>, Block<64>, Block<80>> group;   // Tensors<float, 3> -> Tensors<float, 3>
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"

namespace rev {

template <class... Blocks>
class PerLevel {
  static constexpr std::size_t n = sizeof...(Blocks);
  static_assert(n > 0, "rev::PerLevel<B...>: needs at least one level");
  using tuple = std::tuple<Blocks...>;
  using first = std::tuple_element_t<0, tuple>;
  static_assert(((std::same_as<input_t<Blocks>, typename first::tensor_type> &&
                  std::same_as<output_t<Blocks>, typename first::tensor_type>)&&...),
                "rev::PerLevel<B...>: every level's block takes and returns one tensor of one element type and "
                "backend");
  static_assert((checked_coupling<Blocks>() && ...));

 public:
  template <class T2, class B2>
  using rebind = PerLevel<rebind_t<Blocks, T2, B2>...>;
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = Tensors<value_type, static_cast<int>(n), backend>;
  using output_type = input_type;
  static constexpr bool is_coupling = (Coupling<Blocks> && ...);
  static constexpr signature<n> in_signature{in_signature_of<Blocks>()[0]...};
  static constexpr signature<n> out_signature(const signature<n>& reaching) {
    return [&]<std::size_t... S>(std::index_sequence<S...>) {
      return signature<n>{out_signature_of<Blocks>(signature<1>{reaching[S]})[0]...};
    }
    (std::make_index_sequence<n>{});
  }

  struct cache {
    std::tuple<typename Blocks::cache...> levels;
  };

  output_type forward(const input_type& x, context& ctx) {
    output_type y;
    each([&](auto& b, auto s) { y[s] = b.forward(x[s], ctx); });
    return y;
  }
  output_type forward(const input_type& x, context& ctx, cache& c) {
    output_type y;
    each([&](auto& b, auto s) { y[s] = b.forward(x[s], ctx, std::get<s>(c.levels)); });
    return y;
  }
  input_type backward(cache& c, const output_type& dy) {
    input_type dx;
    each([&](auto& b, auto s) { dx[s] = b.backward(std::get<s>(c.levels), dy[s]); });
    c = cache{};
    return dx;
  }
  input_type inverse(const output_type& y, context& ctx) requires is_coupling {
    input_type x;
    each([&](auto& b, auto s) { x[s] = b.inverse(y[s], ctx); });
    return x;
  }
  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) requires is_coupling {
    reconstructed<input_type> r;
    each([&](auto& b, auto s) {
      auto level = b.backward_reversible(y[s], dy[s]);
      r.x[s] = std::move(level.x);
      r.dx[s] = std::move(level.dx);
    });
    return r;
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    each([&]<class Block>(Block& b, auto s) { b.for_each_parameter(v, child_prefix<Block>(prefix, s)); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each([&]<class Block>(Block& b, auto s) { b.for_each_buffer(v, child_prefix<Block>(prefix, s)); });
  }
  /// Calls v(block) for each block (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    each([&](auto& b, auto) { v(b); });
  }

  template <std::size_t S>
  auto& get() {
    return std::get<S>(blocks_);
  }

 private:
  template <class F>
  void each(F&& f) {
    for_each_index<n>([&](auto s) { f(std::get<s>(blocks_), s); });
  }

  tuple blocks_;
};

}  // namespace rev
