// rev::Named<"stem", L>: the block L under a state_dict key. Its parameters and buffers are named
// "stem.<L's names>"; inside a Chain, Repeat or nn::Sequential the key replaces the child's index,
// so a model written as a composition gets PyTorch's module names:
//
//   rev::Chain<rev::Named<"stem", Stem>, rev::Named<"layers", rev::Repeat<4, Block>>, rev::Named<"head", Head>>
//   // "stem.0.weight", "layers.3.f.0.weight", "head.fc.bias", ...
//
// Named is L in every other respect (it derives from it): the same forward, backward, cache,
// signature and, for a coupling or a container, the same protocol.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include "rev/core/layer.hpp"

namespace rev {

/// A string usable as a template argument: rev::Named<"stem", L>.
template <std::size_t N>
struct fixed_string {
  char chars[N] = {};
  constexpr fixed_string() = default;
  constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

namespace detail {
constexpr std::size_t decimal_digits(std::size_t i) { return i < 10 ? 1 : 1 + decimal_digits(i / 10); }
}  // namespace detail

/// Prefix followed by the decimal digits of I: numbered_key<"rev_transform_", 2>() is
/// "rev_transform_2", for blocks named by their position under another pattern than "<i>".
template <fixed_string Prefix, std::size_t I>
constexpr auto numbered_key() {
  constexpr std::size_t p = Prefix.view().size(), d = detail::decimal_digits(I);
  fixed_string<p + d + 1> key;
  std::copy_n(Prefix.chars, p, key.chars);
  std::size_t i = I;
  for (std::size_t k = 0; k < d; ++k, i /= 10) key.chars[p + d - 1 - k] = static_cast<char>('0' + i % 10);
  return key;
}

template <fixed_string Key, class L>
class Named : public L {
  static_assert(Key.view().size() > 0 && Key.view().find('.') == std::string_view::npos,
                "rev::Named<Key, L>: the key must be a non-empty name without '.'");

 public:
  /// The key this block is named by (read by containers, see child_prefix).
  static constexpr std::string_view key = Key.view();

  using L::L;
  Named() = default;
  explicit Named(L inner) : L(std::move(inner)) {}

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    L::for_each_parameter(v, join_name(prefix, std::string(key)));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    L::for_each_buffer(v, join_name(prefix, std::string(key)));
  }

  /// The named block itself.
  L& inner() { return *this; }
  const L& inner() const { return *this; }
};

/// Block L named Prefix followed by I: NamedAt<"recomp_transform_", 3, L> is
/// Named<"recomp_transform_3", L>.
template <fixed_string Prefix, std::size_t I, class L>
using NamedAt = Named<numbered_key<Prefix, I>(), L>;

}  // namespace rev
