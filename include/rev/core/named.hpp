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
  constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

template <fixed_string Key, class L>
class Named : public L {
  static_assert(Key.view().size() > 0 && Key.view().find('.') == std::string_view::npos,
                "rev::Named<Key, L>: the key must be a non-empty name without '.'");

 public:
  template <class T2, class B2>
  using rebind = Named<Key, rebind_t<L, T2, B2>>;
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

/// Block L under the key Prefix followed by the digits of I: NamedAt<"recomp_transform_", 3, L>
/// is named "recomp_transform_3", for blocks named by their position under another pattern than
/// "<i>". Like Named, it is L in every other respect.
template <fixed_string Prefix, std::size_t I, class L>
class NamedAt : public L {
 public:
  template <class T2, class B2>
  using rebind = NamedAt<Prefix, I, rebind_t<L, T2, B2>>;
  /// The key this block is named by (read by containers, see child_prefix).
  static inline const std::string key = std::string(Prefix.view()) + std::to_string(I);

  using L::L;
  NamedAt() = default;
  explicit NamedAt(L inner) : L(std::move(inner)) {}

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    L::for_each_parameter(v, join_name(prefix, key));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    L::for_each_buffer(v, join_name(prefix, key));
  }
};

/// Block L adding no key of its own: inside a container its parameters are named as if they
/// were the container's (no "<i>"). For structure a model has and the official module tree
/// does not, such as the taps RevCol's intermediate heads hang from. Like Named, it is L in
/// every other respect.
template <class L>
class Unnamed : public L {
 public:
  template <class T2, class B2>
  using rebind = Unnamed<rebind_t<L, T2, B2>>;
  /// No key: child_prefix passes the container's prefix through.
  static constexpr std::string_view key{};

  using L::L;
  Unnamed() = default;
  explicit Unnamed(L inner) : L(std::move(inner)) {}
};

}  // namespace rev
