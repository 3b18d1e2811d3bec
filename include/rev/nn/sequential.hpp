// nn::Sequential<L...>: layers applied in order, as one layer. Children are named "0", "1", ...
// as in PyTorch's nn.Sequential, so state_dict keys match.
#pragma once

#include <string>
#include <tuple>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"

namespace rev::nn {

/// The layers of a Sequential chain: at every junction, what layer i returns fits what layer i+1
/// takes (layout and width; core/signature.hpp).
template <class... L>
concept ChainableLayers = first_junction_mismatch<L...>()
< 0;

/// Named in the compile error of a Sequential whose junction J does not fit (J joins layers J
/// and J + 1, 0-based).
template <int J>
struct Sequential_junction {
  template <class Returned>
  struct layer_returns {
    template <class Taken>
    struct next_layer_takes;
  };
};

namespace detail {
template <int J, class Returned, class Taken>
using sequential_report =
    typename Sequential_junction<J>::template layer_returns<Returned>::template next_layer_takes<Taken>;
}  // namespace detail

template <class... L>
class Sequential {
  static_assert(sizeof...(L) > 0, "rev::nn::Sequential<L...>: needs at least one layer");
  // A junction that does not fit makes this an error naming it (sizeof of an incomplete type).
  static_assert(sizeof(typename decltype(junction_check<detail::sequential_report, L...>())::type) > 0);
  using first = std::tuple_element_t<0, std::tuple<L...>>;

 public:
  template <class T2, class B2>
  using rebind = Sequential<rebind_t<L, T2, B2>...>;
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  using tensor_type = Tensor<value_type, backend>;
  static constexpr signature<1> in_signature = sequence_in_signature<L...>();
  static constexpr signature<1> out_signature(const signature<1>& reaching) {
    return sequence_out_signature<L...>(reaching);
  }
  static constexpr int in_channels = in_signature[0].width;
  static constexpr int out_channels = out_signature(in_signature)[0].width;
  struct cache {
    std::tuple<typename L::cache...> layers;
  };

  tensor_type forward(const tensor_type& x, context& ctx) {
    return run(x, [&](auto& layer, const tensor_type& v, auto) { return layer.forward(v, ctx); });
  }
  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    return run(x, [&](auto& layer, const tensor_type& v, auto i) {
      return layer.forward(v, ctx, std::get<decltype(i)::value>(c.layers));
    });
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return backward_from<sizeof...(L) - 1>(c, dy); }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    each([&]<class Child>(Child& l, std::size_t i) { l.for_each_parameter(f, child_prefix<Child>(prefix, i)); });
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    each([&]<class Child>(Child& l, std::size_t i) { l.for_each_buffer(f, child_prefix<Child>(prefix, i)); });
  }
  /// Calls v(layer) for each layer (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    each([&](auto& l, auto) { v(l); });
  }

  template <std::size_t I>
  auto& get() {
    return std::get<I>(layers_);
  }

 private:
  template <class Step>
  tensor_type run(const tensor_type& x, Step&& step) {
    tensor_type v = x;
    for_each_index<sizeof...(L)>([&](auto i) { v = step(std::get<i>(layers_), v, i); });
    return v;
  }
  template <std::size_t I>
  tensor_type backward_from(cache& c, const tensor_type& dy) {
    tensor_type dx = std::get<I>(layers_).backward(std::get<I>(c.layers), dy);
    if constexpr (I == 0) return dx;
    else return backward_from<I - 1>(c, dx);
  }
  template <class F>
  void each(F&& f) {
    for_each_index<sizeof...(L)>([&](auto i) { f(std::get<i>(layers_), i); });
  }

  std::tuple<L...> layers_;
};

}  // namespace rev::nn
