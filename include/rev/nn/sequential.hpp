// nn::Sequential<L...>: layers applied in order, as one layer. Children are named "0", "1", ...
// as in PyTorch's nn.Sequential, so state_dict keys match.
#pragma once

#include <string>
#include <tuple>
#include <utility>

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"

namespace rev::nn {

namespace detail {

// The index of the first layer whose input channels differ from those reaching it, or -1.
template <class... L>
constexpr int first_channel_mismatch() {
  return first_channel_break<sizeof...(L)>({in_channels_of<L>()...}, {out_channels_of<L>()...},
                                           {channel_factor_of<L>()...});
}

// Channel-agnostic layers keep their channel count, so a sequence's input channels are those of
// its first layer that states them, and its output channels those of its last.
template <class... L>
constexpr int sequence_in_channels() {
  for (int c : {in_channels_of<L>()...})
    if (c != any_channels) return c;
  return any_channels;
}
template <class... L>
constexpr int sequence_out_channels() {
  int last = any_channels;
  for (int c : {out_channels_of<L>()...})
    if (c != any_channels) last = c;
  return last;
}

}  // namespace detail

/// The layers of a Sequential must chain: layer i's output channels are layer i+1's input channels.
template <class... L>
concept ChainableLayers = (detail::first_channel_mismatch<L...>() < 0);

template <class... L>
class Sequential {
  static_assert(sizeof...(L) > 0, "rev::nn::Sequential<L...>: needs at least one layer");
  static_assert(ChainableLayers<L...>,
                "rev::nn::Sequential<L...>: the output channels of a layer differ from the input channels of the next");
  using first = std::tuple_element_t<0, std::tuple<L...>>;

 public:
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  using tensor_type = Tensor<value_type, backend>;
  static constexpr int in_channels = detail::sequence_in_channels<L...>();
  static constexpr int out_channels = detail::sequence_out_channels<L...>();
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
    each([&](auto& layer, std::size_t i) { layer.for_each_parameter(f, join_name(prefix, std::to_string(i))); });
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    each([&](auto& layer, std::size_t i) { layer.for_each_buffer(f, join_name(prefix, std::to_string(i))); });
  }

  template <std::size_t I>
  auto& get() {
    return std::get<I>(layers_);
  }

 private:
  template <class Step>
  tensor_type run(const tensor_type& x, Step&& step) {
    tensor_type v = x;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((v = step(std::get<I>(layers_), v, std::integral_constant<std::size_t, I>{})), ...);
    }
    (std::index_sequence_for<L...>{});
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
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::get<I>(layers_), I), ...); }
    (std::index_sequence_for<L...>{});
  }

  std::tuple<L...> layers_;
};

}  // namespace rev::nn
