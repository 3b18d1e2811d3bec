// Compile-time facts about layers and couplings: the channel counts they map between and the
// type of state (a tensor, or an array of tensors) they take and return.
#pragma once

#include <array>
#include <concepts>
#include <type_traits>

#include "rev/core/tensor.hpp"

namespace rev {

/// The channel count of a layer that accepts any number of channels (and keeps it).
inline constexpr int any_channels = -1;

template <class L>
constexpr int in_channels_of() {
  if constexpr (requires { L::in_channels; }) return L::in_channels;
  else return any_channels;
}
template <class L>
constexpr int out_channels_of() {
  if constexpr (requires { L::out_channels; }) return L::out_channels;
  else if constexpr (requires { L::in_channels; }) return L::in_channels;
  else return any_channels;
}

/// How a layer without stated channel counts changes the count: out = in * factor (e.g. 4 for a
/// space-to-depth with block 2); 1 for layers that keep it.
template <class L>
constexpr int channel_factor_of() {
  if constexpr (requires { L::channel_factor; }) return L::channel_factor;
  else return 1;
}

/// Whether two channel counts can be the same (any_channels matches everything).
constexpr bool channels_match(int a, int b) { return a == any_channels || b == any_channels || a == b; }

/// The index of the first block whose input channels differ from the channels reaching it, or
/// -1. Channel-agnostic blocks pass the count through, so Conv<3,8>, ReLU, Conv<4,4> is caught.
template <std::size_t N>
constexpr int first_channel_break(const std::array<int, N>& in, const std::array<int, N>& out,
                                  const std::array<int, N>& factor) {
  int current = any_channels;
  for (std::size_t i = 0; i < N; ++i) {
    if (!channels_match(current, in[i])) return static_cast<int>(i);
    if (out[i] != any_channels) current = out[i];
    else if (in[i] != any_channels) current = in[i] * factor[i];
    else if (current != any_channels) current *= factor[i];
  }
  return -1;
}

/// What flows between blocks: one tensor, or a fixed number of tensors (pyramid levels, streams).
template <class L>
struct state_types {
  using input = typename L::tensor_type;
  using output = typename L::tensor_type;
};
template <class L>
requires requires { typename L::input_type; }
struct state_types<L> {
  using input = typename L::input_type;
  using output = typename L::output_type;
};
template <class L>
using input_t = typename state_types<L>::input;
template <class L>
using output_t = typename state_types<L>::output;

/// N tensors travelling together: pyramid levels (Silo, Column) or streams (two-stream Additive).
template <Scalar T, int N, class B = cpu>
using Tensors = std::array<Tensor<T, B>, N>;

}  // namespace rev
