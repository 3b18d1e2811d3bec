// Compile-time facts about layers and couplings: the signature of what they take and return.
//
// A block's signature gives, for each tensor it takes or returns, its LAYOUT (an NCHW map, a
// token sequence [B, N, D], a vector [B, D]) and its WIDTH (the channels C of a map, the features
// D of tokens or a vector); a block over several tensors (pyramid levels, streams) has one entry
// per tensor. A layer states what it knows:
//
//   static constexpr int in_channels, out_channels;     // widths (or in_features, out_features)
//   static constexpr rev::layout layout;                // the layouts it takes and returns
//   static constexpr rev::layout in_layout, out_layout; // ... when they differ
//
// and what it leaves out is free: a layer without a width accepts any and keeps it (times its
// channel_factor), a layer without a layout accepts any and keeps it. Sequential, Chain and
// Repeat walk the signatures block by block and report the first junction that does not fit.
#pragma once

#include <array>
#include <concepts>
#include <type_traits>
#include <utility>

#include "rev/core/tensor.hpp"

namespace rev {

/// The width of a layer that accepts any number of channels or features (and keeps it).
inline constexpr int any_channels = -1;

/// The width a layer takes: its in_channels (maps) or in_features (tokens, vectors).
template <class L>
constexpr int in_channels_of() {
  if constexpr (requires { L::in_channels; }) return L::in_channels;
  else if constexpr (requires { L::in_features; }) return L::in_features;
  else return any_channels;
}
/// The width a layer returns: its out_channels or out_features; a layer stating only what it
/// takes keeps it.
template <class L>
constexpr int out_channels_of() {
  if constexpr (requires { L::out_channels; }) return L::out_channels;
  else if constexpr (requires { L::out_features; }) return L::out_features;
  else return in_channels_of<L>();
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

/// A block declares how it is rebound to another element type and backend:
///   template <class T2, class B2> using rebind = Conv2d<In, Out, O, T2, B2>;
/// containers and couplings rebind their blocks. A block whose rebind to its own element type
/// and backend is not itself (a rebind inherited from a base class) keeps its type.
template <class L>
concept Rebindable = requires {
  typename L::template rebind<typename L::value_type, typename L::backend>;
  requires std::same_as<typename L::template rebind<typename L::value_type, typename L::backend>, L>;
};
template <class L, class T, class B>
struct rebind_block {
  using type = L;
};
template <Rebindable L, class T, class B>
struct rebind_block<L, T, B> {
  using type = typename L::template rebind<T, B>;
};
/// L with every layer inside it over element type T on backend B.
template <class L, class T, class B>
using rebind_t = typename rebind_block<L, T, B>::type;

/// An architecture written once, without its element type and backend (its layers take the
/// defaults, float on rev::cpu), bound to both in one place:
///   using Spec = rev::Chain<rev::nn::Conv2d<3, 16>, rev::Repeat<8, rev::Additive<F, F>>>;
///   rev::model<Spec, double> net;               // every layer in double
///   rev::model<Spec, float, rev::cuda> gpu_net;  // every layer on the GPU
template <class Spec, Scalar T = float, class B = cpu>
using model = rebind_t<Spec, T, B>;

/// Calls f(std::integral_constant<std::size_t, I>{}) for I = 0, ..., N - 1 in order: the
/// compile-time loop over the blocks of a tuple (f reads I as a constant: std::get<I>(t)).
template <std::size_t N, class F>
constexpr void for_each_index(F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::integral_constant<std::size_t, I>{}), ...); }
  (std::make_index_sequence<N>{});
}

}  // namespace rev
