// Static signatures: for each tensor a block takes or returns, its layout and its width
// (core/traits.hpp says how a layer states them). Containers walk them block by block:
//
//   reaching = what the previous block returns (refined by what this block takes)
//   block i fits when every tensor's layouts intersect and widths match (any matches anything)
//   returned = block i's out signature given what reached it
//
// A mismatch is reported as a type whose name spells it, e.g.
//   rev::Chain_junction<1>::block_returns<rev::sig::map<64>>::next_block_takes<rev::sig::tokens<384>>
// so that the compiler's one line of error names the container, the junction and both sides.
// Junction j joins block j and block j + 1 (0-based). A width of -1 is any width.
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "rev/core/traits.hpp"

namespace rev {

/// The layouts a tensor may have; a set, so `features` (tokens or flat) and `any` are unions.
enum class layout : unsigned {
  map = 1,       // [B, C, H, W]; width C
  tokens = 2,    // [B, N, D]; width D
  flat = 4,      // [B, D]; width D
  features = 6,  // tokens or flat: the width is the last extent
  any = 7
};
constexpr layout operator&(layout a, layout b) { return layout(unsigned(a) & unsigned(b)); }

/// One tensor of a signature.
struct tensor_signature {
  layout layouts = layout::any;
  int width = any_channels;
};
template <std::size_t N>
using signature = std::array<tensor_signature, N>;

/// The number of tensors of a block's state: 1, or N for std::array<Tensor, N>.
template <class State>
inline constexpr std::size_t tensor_count = 1;
template <class T, std::size_t N>
inline constexpr std::size_t tensor_count<std::array<T, N>> = N;

template <class L>
constexpr layout in_layout_of() {
  if constexpr (requires { L::in_layout; }) return L::in_layout;
  else return layout::any;
}

namespace detail {
template <class L>
constexpr int stated_out_width() {
  if constexpr (requires { L::out_channels; }) return L::out_channels;
  else if constexpr (requires { L::out_features; }) return L::out_features;
  else return any_channels;
}
}  // namespace detail

/// What block L takes: its in_signature if it states one, else one entry per tensor from its
/// in_layout and its width.
template <class L>
constexpr auto in_signature_of() {
  if constexpr (requires { L::in_signature; }) {
    return L::in_signature;
  } else {
    signature<tensor_count<input_t<L>>> s{};
    for (auto& t : s) t = {in_layout_of<L>(), in_channels_of<L>()};
    return s;
  }
}

/// What block L returns when `reaching` reaches it: its out_signature(reaching) if it states
/// one, else per tensor its out_layout (or the layout reaching it) and its stated width (or the
/// width reaching it times its channel_factor).
template <class L, std::size_t N>
constexpr auto out_signature_of(const signature<N>& reaching) {
  constexpr std::size_t out_n = tensor_count<output_t<L>>;
  if constexpr (requires { L::out_signature(reaching); }) {
    return L::out_signature(reaching);
  } else {
    signature<out_n> s{};
    for (std::size_t i = 0; i < out_n; ++i) {
      const tensor_signature r = N == out_n ? reaching[i] : tensor_signature{};
      if constexpr (requires { L::out_layout; }) s[i].layouts = L::out_layout;
      else s[i].layouts = r.layouts & in_layout_of<L>();
      constexpr int in = in_channels_of<L>(), out = detail::stated_out_width<L>(), factor = channel_factor_of<L>();
      if (out != any_channels) s[i].width = out;
      else if (in != any_channels) s[i].width = in * factor;
      else s[i].width = r.width == any_channels ? any_channels : r.width * factor;
    }
    return s;
  }
}

/// What block L returns when what it takes (in_signature_of<L>) reaches it.
template <class L>
constexpr auto own_out_signature_of() {
  return out_signature_of<L>(in_signature_of<L>());
}

/// Whether what a block returns fits what the next block takes.
template <std::size_t N, std::size_t M>
constexpr bool fits(const signature<N>& returned, const signature<M>& taken) {
  if constexpr (N != M) {
    return false;
  } else {
    for (std::size_t i = 0; i < N; ++i)
      if (!channels_match(returned[i].width, taken[i].width) || (returned[i].layouts & taken[i].layouts) == layout{})
        return false;
    return true;
  }
}

/// What reaches a block: what the previous one returns, narrowed by what this one takes.
template <std::size_t N>
constexpr signature<N> meet(const signature<N>& returned, const signature<N>& taken) {
  signature<N> s{};
  for (std::size_t i = 0; i < N; ++i)
    s[i] = {returned[i].layouts & taken[i].layouts,
            taken[i].width != any_channels ? taken[i].width : returned[i].width};
  return s;
}

namespace detail {

template <std::size_t I, class... S>
using nth_block = std::tuple_element_t<I, std::tuple<S...>>;

// The index of the first junction that does not fit, walking from `reaching`, or -1.
template <int I, class S, class... Rest, std::size_t N>
constexpr int walk_signatures(const signature<N>& reaching) {
  constexpr auto taken = in_signature_of<S>();
  if constexpr (N != taken.size()) {
    return I - 1;
  } else {
    if (!fits(reaching, taken)) return I - 1;
    const auto returned = out_signature_of<S>(meet(reaching, taken));
    if constexpr (sizeof...(Rest) == 0) return -1;
    else return walk_signatures<I + 1, Rest...>(returned);
  }
}

// What block J returns, walking from `reaching` (the junctions before J fit).
template <int J, class S, class... Rest, std::size_t N>
constexpr auto returned_by(const signature<N>& reaching) {
  const auto returned = out_signature_of<S>(meet(reaching, in_signature_of<S>()));
  if constexpr (J == 0) return returned;
  else return returned_by<J - 1, Rest...>(returned);
}

// Whether block S passes its first tensor's signature through untouched (so the blocks after it
// say what the sequence takes).
template <class S>
constexpr bool transparent() {
  return !requires { S::in_signature; }
  &&!requires { S::out_layout; }
  &&in_layout_of<S>() == layout::any&& in_channels_of<S>() == any_channels&& stated_out_width<S>() ==
          any_channels&& channel_factor_of<S>() == 1 &&
      tensor_count<input_t<S>> == tensor_count<output_t<S>>;
}

}  // namespace detail

/// What a sequence of blocks takes: the first block's signature, refined by the blocks after
/// leading blocks that pass everything through (a ReLU before a Conv2d<3, 8> takes a 3-channel map).
template <class S, class... Rest>
constexpr auto sequence_in_signature() {
  constexpr auto first = in_signature_of<S>();
  if constexpr (sizeof...(Rest) > 0 && detail::transparent<S>()) {
    constexpr auto next = sequence_in_signature<Rest...>();
    if constexpr (next.size() == first.size()) return meet(first, next);
    else return first;
  } else {
    return first;
  }
}

/// What a sequence of blocks returns when `reaching` reaches its first block.
template <class... S, std::size_t N>
constexpr auto sequence_out_signature(const signature<N>& reaching) {
  return detail::returned_by<static_cast<int>(sizeof...(S)) - 1, S...>(reaching);
}

/// The first junction of S... that does not fit, or -1 (junction j joins blocks j and j + 1).
template <class... S>
constexpr int first_junction_mismatch() {
  return detail::walk_signatures<0, S...>(sequence_in_signature<S...>());
}

/// The check type of containers whose junctions all fit (the others name the junction).
struct signatures_fit {};

/// Readable names of signatures, for compile errors (a width of -1 is any width).
namespace sig {
template <int W>
struct map;
template <int W>
struct tokens;
template <int W>
struct flat;
template <int W>
struct features;
template <int W>
struct any;
template <class... T>
struct tensors;  // several tensors: pyramid levels or streams
}  // namespace sig

namespace detail {
template <tensor_signature T>
constexpr auto tensor_name() {
  if constexpr (T.layouts == layout::map) return std::type_identity<sig::map<T.width>>{};
  else if constexpr (T.layouts == layout::tokens) return std::type_identity<sig::tokens<T.width>>{};
  else if constexpr (T.layouts == layout::flat) return std::type_identity<sig::flat<T.width>>{};
  else if constexpr (T.layouts == layout::features) return std::type_identity<sig::features<T.width>>{};
  else return std::type_identity<sig::any<T.width>>{};
}
template <auto Sig, std::size_t... I>
constexpr auto signature_name(std::index_sequence<I...>) {
  if constexpr (sizeof...(I) == 1) return tensor_name<Sig[0]>();
  else return std::type_identity<sig::tensors<typename decltype(tensor_name<Sig[I]>())::type...>>{};
}
}  // namespace detail

/// The readable type naming signature Sig (sig::map<64>, sig::tensors<sig::map<64>, ...>).
template <auto Sig>
using signature_name_t = typename decltype(detail::signature_name<Sig>(std::make_index_sequence<Sig.size()>{}))::type;

/// signatures_fit, or Report<j, returned, taken> for the first junction j of S... that does not
/// fit: an incomplete type whose name spells the container, j and both signatures, so that a
/// container's `static_assert(sizeof(typename decltype(junction_check<...>())::type) > 0)` is a
/// one-line error naming them.
template <template <int, class, class> class Report, class... S>
constexpr auto junction_check() {
  constexpr int j = first_junction_mismatch<S...>();
  if constexpr (j >= 0) {
    constexpr auto returned = detail::returned_by<j, S...>(sequence_in_signature<S...>());
    constexpr auto taken = in_signature_of<detail::nth_block<j + 1, S...>>();
    return std::type_identity<Report<j, signature_name_t<returned>, signature_name_t<taken>>>{};
  } else {
    return std::type_identity<signatures_fit>{};
  }
}

}  // namespace rev
