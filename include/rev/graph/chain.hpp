// Execution of a sequence of blocks in two modes with the same gradients:
//
//   mode::stored      every block keeps what its backward needs (ordinary backprop);
//   mode::reversible  couplings keep nothing: their inputs are reconstructed from their outputs
//                     in backward; ordinary (non-invertible) blocks keep their input as a
//                     checkpoint and are re-run in backward.
//
//   rev::Chain<Stem, rev::Repeat<8, Block>, Head> net;
//   typename decltype(net)::cache tape{rev::mode::reversible};
//   auto y  = net.forward(x, ctx, tape);
//   auto dx = net.backward(tape, dy);
//
// Chain and Repeat are blocks themselves: a Chain or Repeat of couplings is a coupling (it has
// inverse and backward_reversible), so containers nest without keeping anything in between.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"

namespace rev {

enum class mode { stored, reversible };

namespace detail {

// What a container keeps for one of its blocks.
template <class S>
struct block_record {
  typename S::cache stored;  // stored mode, and the inner tape of a nested container
  input_t<S> checkpoint;     // reversible mode, ordinary blocks only: the block's input
};

template <class C>
void set_mode(C& c, mode m) {
  if constexpr (requires { c.m; }) c.m = m;
}

// Forward of one block, keeping what the mode asks for.
template <class S>
output_t<S> forward_block(S& s, const input_t<S>& x, context& ctx, block_record<S>& r, mode m) {
  if (m == mode::stored) {
    set_mode(r.stored, m);
    return s.forward(x, ctx, r.stored);
  }
  if constexpr (Coupling<S>) {
    return s.forward(x, ctx);
  } else if constexpr (requires { r.stored.m; }) {
    set_mode(r.stored, m);  // a container of ordinary blocks checkpoints inside itself
    return s.forward(x, ctx, r.stored);
  } else {
    r.checkpoint = x;
    return s.forward(x, ctx);
  }
}

// Backward of one block given its output y (read by couplings in reversible mode) and dy.
// Returns the block's input (reconstructed or checkpointed; left empty in stored mode, where
// nothing upstream reads it) and the gradient with respect to it. Mirrors forward_block.
template <class S>
reconstructed<input_t<S>> backward_block(S& s, const output_t<S>& y, const output_t<S>& dy, block_record<S>& r,
                                         mode m) {
  if (m == mode::stored) {
    input_t<S> dx = s.backward(r.stored, dy);
    r.stored = {};
    return {input_t<S>{}, std::move(dx)};
  }
  if constexpr (Coupling<S>) {
    return s.backward_reversible(y, dy);
  } else if constexpr (requires { r.stored.m; }) {
    return s.backward_with_input(r.stored, dy);
  } else {
    context ctx = recompute_context();
    typename S::cache c;
    s.forward(r.checkpoint, ctx, c);
    input_t<S> dx = s.backward(c, dy);
    return {std::exchange(r.checkpoint, input_t<S>{}), std::move(dx)};
  }
}

}  // namespace detail

/// Blocks chain when each one's output type and channels are the next one's input.
template <class A, class B>
concept Chainable = std::same_as<output_t<A>, input_t<B>> && channels_match(out_channels_of<A>(), in_channels_of<B>());

namespace detail {
// The index of the first block whose output does not fit the next block's input, or -1.
template <class... S>
constexpr int first_unchainable() {
  using tuple = std::tuple<S...>;
  int bad = -1;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((bad < 0 && !Chainable<std::tuple_element_t<I, tuple>, std::tuple_element_t<I + 1, tuple>>
          ? void(bad = static_cast<int>(I))
          : void()),
     ...);
  }
  (std::make_index_sequence<sizeof...(S) - 1>{});
  if (bad < 0)
    bad = first_channel_break<sizeof...(S)>({in_channels_of<S>()...}, {out_channels_of<S>()...},
                                            {channel_factor_of<S>()...});
  return bad;
}
}  // namespace detail

/// The blocks of a Chain fit together: block i's output (type and channels) is block i+1's input.
template <class... S>
concept ChainableBlocks = (detail::first_unchainable<S...>() < 0);

template <class... S>
class Chain {
  static_assert(sizeof...(S) > 0, "rev::Chain<S...>: needs at least one block");
  static_assert(ChainableBlocks<S...>,
                "rev::Chain<S...>: a block's output (state type or channel count) does not fit the next block's input");
  using tuple = std::tuple<S...>;
  static constexpr std::size_t n = sizeof...(S);
  using first = std::tuple_element_t<0, tuple>;
  using last = std::tuple_element_t<n - 1, tuple>;

 public:
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = input_t<first>;
  using output_type = output_t<last>;
  static constexpr int in_channels = in_channels_of<first>();
  static constexpr int out_channels = out_channels_of<last>();

  struct cache {
    cache(mode mode_ = mode::stored) : m(mode_) {}
    mode m;
    std::tuple<detail::block_record<S>...> records;
    output_type y;  // reversible mode: where the reconstruction starts
  };

  output_type forward(const input_type& x, context& ctx) {
    return run<0>(x, [&](auto& s, const auto& v, auto) { return s.forward(v, ctx); });
  }

  output_type forward(const input_type& x, context& ctx, cache& c) {
    output_type y = run<0>(x, [&](auto& s, const auto& v, auto i) {
      return detail::forward_block(s, v, ctx, std::get<decltype(i)::value>(c.records), c.m);
    });
    if (c.m == mode::reversible) c.y = y;
    return y;
  }

  input_type backward(cache& c, const output_type& dy) { return backward_with_input(c, dy).dx; }

  /// backward that also returns the input, reconstructed or checkpointed (reversible mode).
  reconstructed<input_type> backward_with_input(cache& c, const output_type& dy) {
    return back<n - 1>(c, std::exchange(c.y, output_type{}), dy);
  }

  input_type inverse(const output_type& y, context& ctx) requires(Coupling<S>&&...) {
    return inverse_from<n - 1>(y, ctx);
  }

  reconstructed<input_type> backward_reversible(const output_type& y,
                                                const output_type& dy) requires(Coupling<S>&&...) {
    cache c{mode::reversible};
    return back<n - 1>(c, y, dy);
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    each([&](auto& s, std::size_t i) { s.for_each_parameter(v, join_name(prefix, std::to_string(i))); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each([&](auto& s, std::size_t i) { s.for_each_buffer(v, join_name(prefix, std::to_string(i))); });
  }

  template <std::size_t I>
  auto& get() {
    return std::get<I>(blocks_);
  }

 private:
  // The recursion over the blocks takes each state by value and drops it before going on, so
  // that only the current state is alive: a frame holding its block's input or output for the
  // rest of the chain would keep every intermediate state, and memory would grow with depth.
  template <std::size_t I, class X, class Step>
  auto run(X x, Step&& step) {
    auto y = step(std::get<I>(blocks_), x, std::integral_constant<std::size_t, I>{});
    x = X{};
    if constexpr (I + 1 == n) return y;
    else return run<I + 1>(std::move(y), step);
  }

  template <std::size_t I>
  reconstructed<input_type> back(cache& c, output_t<std::tuple_element_t<I, tuple>> y,
                                 output_t<std::tuple_element_t<I, tuple>> dy) {
    auto r = detail::backward_block(std::get<I>(blocks_), y, dy, std::get<I>(c.records), c.m);
    y = {};
    dy = {};
    if constexpr (I == 0) return r;
    else return back<I - 1>(c, std::move(r.x), std::move(r.dx));
  }

  template <std::size_t I>
  input_type inverse_from(output_t<std::tuple_element_t<I, tuple>> y, context& ctx) {
    auto x = std::get<I>(blocks_).inverse(y, ctx);
    y = {};
    if constexpr (I == 0) return x;
    else return inverse_from<I - 1>(std::move(x), ctx);
  }

  template <class F>
  void each(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::get<I>(blocks_), I), ...); }
    (std::make_index_sequence<n>{});
  }

  tuple blocks_;
};

/// N blocks of the same type, stored in an array and run in a loop (no template recursion).
/// Parameters are named "<i>.<block's names>" as in an nn.Sequential of the blocks.
template <int N, class Block>
class Repeat {
  static_assert(N > 0, "rev::Repeat<N,Block>: N must be positive");
  static_assert(Chainable<Block, Block>,
                "rev::Repeat<N,Block>: Block's output (state type or channel count) must equal its input");

 public:
  using value_type = typename Block::value_type;
  using backend = typename Block::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = input_t<Block>;
  using output_type = output_t<Block>;
  static constexpr int in_channels = in_channels_of<Block>();
  static constexpr int out_channels = out_channels_of<Block>();

  struct cache {
    cache(mode mode_ = mode::stored) : m(mode_) {}
    mode m;
    std::vector<detail::block_record<Block>> records;
    output_type y;
  };

  output_type forward(const input_type& x, context& ctx) {
    output_type v = x;
    for (auto& b : blocks_) v = b.forward(v, ctx);
    return v;
  }

  output_type forward(const input_type& x, context& ctx, cache& c) {
    c.records.assign(N, {});
    output_type v = x;
    for (std::size_t i = 0; i < blocks_.size(); ++i) v = detail::forward_block(blocks_[i], v, ctx, c.records[i], c.m);
    if (c.m == mode::reversible) c.y = v;
    return v;
  }

  input_type backward(cache& c, const output_type& dy) { return backward_with_input(c, dy).dx; }

  /// backward that also returns the input, reconstructed or checkpointed (reversible mode).
  reconstructed<input_type> backward_with_input(cache& c, const output_type& dy) {
    return back(c, std::exchange(c.y, output_type{}), dy);
  }

  input_type inverse(const output_type& y, context& ctx) requires Coupling<Block> {
    input_type v = y;
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) v = it->inverse(v, ctx);
    return v;
  }

  reconstructed<input_type> backward_reversible(const output_type& y, const output_type& dy) requires Coupling<Block> {
    cache c{mode::reversible};
    c.records.resize(N);
    return back(c, y, dy);
  }

  template <class V>
  void for_each_parameter(V&& v, const std::string& prefix = "") {
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      blocks_[i].for_each_parameter(v, join_name(prefix, std::to_string(i)));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      blocks_[i].for_each_buffer(v, join_name(prefix, std::to_string(i)));
  }

  Block& operator[](std::size_t i) { return blocks_[i]; }
  static constexpr int size() { return N; }

 private:
  reconstructed<input_type> back(cache& c, output_type y, output_type dy) {
    for (std::size_t i = blocks_.size(); i-- > 0;) {
      auto r = detail::backward_block(blocks_[i], y, dy, c.records[i], c.m);
      y = std::move(r.x);
      dy = std::move(r.dx);
    }
    c.records.clear();
    return {std::move(y), std::move(dy)};
  }

  std::array<Block, static_cast<std::size_t>(N)> blocks_;
};

}  // namespace rev
