// Execution of a sequence of blocks in two modes with the same gradients:
//
//   mode::stored      every block keeps what its backward needs (ordinary backprop);
//   mode::reversible  couplings keep nothing: their inputs are reconstructed from their outputs
//                     in backward; ordinary (non-invertible) blocks keep their input as a
//                     checkpoint and are re-run in backward, except the last block of the
//                     outermost container (a classifier head), whose backward comes first: it
//                     keeps what its stored backward needs.
//
//   rev::Chain<Stem, rev::Repeat<8, Block>, Head> net;
//   typename decltype(net)::cache tape{rev::mode::reversible};
//   auto y  = net.forward(x, ctx, tape);
//   auto dx = net.backward(tape, dy);
//
// Chain and Repeat are blocks themselves: a Chain or Repeat of couplings is a coupling (it has
// inverse and backward_reversible), so containers nest without keeping anything in between.
//
// A reversible tape also holds the replay record of its forward (core/replay.hpp): the batch
// statistics, dropout draws and spectral normalisations the walk back re-evaluates with. So
// two train-phase forwards on two tapes walk back independently, in any order. The outermost
// container owns the record; nested ones use it. A reversible tape needs a train-phase context.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/core/signature.hpp"
#include "rev/core/traits.hpp"
#include "rev/coupling/coupling.hpp"
#include "rev/graph/anomaly.hpp"

namespace rev {

enum class mode { stored, reversible };

namespace detail {

// What a container's tape keeps besides its blocks' records: the mode and, for a reversible
// tape made by the outermost container, the replay record of its forward.
struct tape_state {
  tape_state(mode mode_) : m(mode_) {}
  mode m;
  replay_record replay;
  bool owns_replay = false;
  bool filled = false;  // holds a forward that no backward has consumed yet
};

// The context a container's forward runs its blocks in: `ctx`, with the tape's replay record
// when the tape is reversible and no outer container provides one.
inline context begin_forward(tape_state& t, const context& ctx, const char* who) {
  check<value_error>(t.m == mode::stored || ctx.mode != phase::eval, who,
                     ": a reversible tape needs a train-phase context (an eval-phase forward keeps no batch statistics "
                     "or masks to replay); use forward(x, ctx) or a mode::stored tape in the eval phase");
  context inner = ctx;
  t.filled = true;
  t.replay.clear();
  t.owns_replay = t.m == mode::reversible && ctx.replay == nullptr;
  if (t.owns_replay) inner.replay = &t.replay;
  return inner;
}

// What a container's backward walks back with: its own replay record, if it made one. A tape
// holds one forward for one backward.
class walk_back {
 public:
  walk_back(tape_state& t, const char* who)
      : t_(consumed(t, who)), scope_(t.owns_replay ? &t.replay : current_replay()) {}
  ~walk_back() {
    if (t_.owns_replay) t_.replay.clear();
    t_.owns_replay = false;
  }
  walk_back(const walk_back&) = delete;
  walk_back& operator=(const walk_back&) = delete;

 private:
  static tape_state& consumed(tape_state& t, const char* who) {
    check<value_error>(t.filled, who,
                       ": backward on a tape that holds no forward (it was never passed to forward(x, ctx, tape), or "
                       "an earlier backward consumed it: a tape serves one backward; run the forward again)");
    t.filled = false;
    return t;
  }

  tape_state& t_;
  replay_scope scope_;
};

}  // namespace detail

/// The container protocol (Chain, Repeat): a block whose tape chooses the mode and which returns
/// its input with the gradient. It declares `static constexpr bool is_container = true;`, its
/// `cache` is made from a mode and keeps it in `m`, and it has
///   reconstructed<In> backward_with_input(cache& c, const Out& dy).
/// A container of ordinary blocks checkpoints inside itself when run in a reversible container.
template <class C>
concept DeclaresContainer = requires {
  requires C::is_container;
};

namespace detail {
template <class C>
concept container_tape = requires(typename C::cache& k, mode m) {
  requires std::constructible_from<typename C::cache, mode>;
  k.m = m;
};
template <class C>
concept container_backward = requires(C& c, typename C::cache& k, const output_t<C>& dy) {
  { c.backward_with_input(k, dy) } -> std::same_as<reconstructed<input_t<C>>>;
};
}  // namespace detail

template <class C>
concept Container = DeclaresContainer<C> && detail::container_tape<C> && detail::container_backward<C>;

/// true; a compile error naming what is missing for a block that declares itself a coupling or
/// a container and does not follow that protocol (see also checked_coupling).
template <class S>
constexpr bool checked_block() {
  if constexpr (DeclaresContainer<S>) {
    static_assert(detail::container_tape<S>,
                  "rev::Container: a block declaring is_container lacks a `cache` made from a rev::mode and keeping "
                  "it in `m`");
    static_assert(detail::container_backward<S>,
                  "rev::Container: a block declaring is_container lacks `rev::reconstructed<In> "
                  "backward_with_input(cache& c, const Out& dy)`");
  }
  return checked_coupling<S>();
}

namespace detail {

// What a container keeps for one of its blocks.
template <class S>
struct block_record {
  typename S::cache stored;  // stored mode, the inner tape of a nested container, a block kept whole
  input_t<S> checkpoint;     // reversible mode, ordinary blocks only: the block's input
  bool whole = false;        // reversible mode: the block keeps its stored record (see last_block)
};

// The last block of the outermost container on a reversible tape. Its backward is the first of
// the walk back, so a checkpoint would recompute at once what its forward has just computed: an
// ordinary last block keeps its stored record instead (as PyTorch's checkpoint_sequential runs
// its last segment without a checkpoint), which adds nothing to the step's peak. Its input is
// kept too when the block before it is a coupling, whose backward starts from it.
enum class last_block { no, alone, after_coupling };

// Forward of one block, keeping what the mode asks for.
template <class S>
output_t<S> forward_block(S& s, const input_t<S>& x, context& ctx, block_record<S>& r, mode m,
                          last_block last = last_block::no) {
  r.whole = m == mode::reversible && last != last_block::no && !Coupling<S>;
  if constexpr (Container<S>) r.stored.m = r.whole ? mode::stored : m;
  if (m == mode::stored || r.whole) {
    if (r.whole && last == last_block::after_coupling) r.checkpoint = x;
    return s.forward(x, ctx, r.stored);
  }
  if constexpr (Coupling<S>) {
    return s.forward(x, ctx);
  } else if constexpr (Container<S>) {  // a container of ordinary blocks checkpoints inside itself
    return s.forward(x, ctx, r.stored);
  } else {
    r.checkpoint = x;
    return s.forward(x, ctx);
  }
}

// Backward of one block given its output y (read by couplings in reversible mode) and dy.
// Returns the block's input (reconstructed or checkpointed; left empty in stored mode and for a
// last block kept alone, where nothing upstream reads it) and the gradient with respect to it.
// Mirrors forward_block.
template <class S>
reconstructed<input_t<S>> backward_block(S& s, const output_t<S>& y, const output_t<S>& dy, block_record<S>& r,
                                         mode m) {
  if (m == mode::stored || r.whole) {
    input_t<S> dx = s.backward(r.stored, dy);
    r.stored = {};
    r.whole = false;
    return {std::exchange(r.checkpoint, input_t<S>{}), std::move(dx)};
  }
  if constexpr (Coupling<S>) {
    return s.backward_reversible(y, dy);
  } else if constexpr (Container<S>) {
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

namespace detail {
template <class... S>
constexpr bool same_state_types() {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (std::same_as<output_t<nth_block<I, S...>>, input_t<nth_block<I + 1, S...>>> && ...);
  }
  (std::make_index_sequence<sizeof...(S) - 1>{});
}
}  // namespace detail

/// The blocks of a Chain fit together: at every junction, the signatures fit (core/signature.hpp)
/// and block i returns the state type (element type, backend, tensor count) block i+1 takes.
template <class... S>
concept ChainableBlocks = first_junction_mismatch<S...>()
< 0 && detail::same_state_types<S...>();

/// Two blocks chain: ChainableBlocks<A, B>.
template <class A, class B>
concept Chainable = ChainableBlocks<A, B>;

/// Named in the compile error of a Chain whose junction J does not fit (J joins blocks J, J + 1).
template <int J>
struct Chain_junction {
  template <class Returned>
  struct block_returns {
    template <class Taken>
    struct next_block_takes;
  };
};
/// Named in the compile error of a Repeat whose block does not take what it returns.
template <class Returned>
struct Repeat_block_returns {
  template <class Taken>
  struct but_takes;
};

namespace detail {
template <int J, class Returned, class Taken>
using chain_report = typename Chain_junction<J>::template block_returns<Returned>::template next_block_takes<Taken>;
// signatures_fit, or (an incomplete type) what a Repeat's block returns and takes.
template <class Block>
constexpr auto repeat_check() {
  constexpr auto taken = sequence_in_signature<Block, Block>();
  constexpr auto returned = out_signature_of<Block>(taken);
  if constexpr (!fits(returned, taken))
    return std::type_identity<
        typename Repeat_block_returns<signature_name_t<returned>>::template but_takes<signature_name_t<taken>>>{};
  else return std::type_identity<signatures_fit>{};
}
}  // namespace detail

template <class... S>
class Chain {
  static_assert(sizeof...(S) > 0, "rev::Chain<S...>: needs at least one block");
  static_assert((checked_block<S>() && ...));
  // A junction that does not fit makes this an error naming it (sizeof of an incomplete type).
  static_assert(sizeof(typename decltype(junction_check<detail::chain_report, S...>())::type) > 0);
  static_assert(detail::same_state_types<S...>(),
                "rev::Chain<S...>: a block returns another element type or backend than the next block takes");
  using tuple = std::tuple<S...>;
  static constexpr std::size_t n = sizeof...(S);
  using first = std::tuple_element_t<0, tuple>;
  using last = std::tuple_element_t<n - 1, tuple>;

 public:
  template <class T2, class B2>
  using rebind = Chain<rebind_t<S, T2, B2>...>;
  using value_type = typename first::value_type;
  using backend = typename first::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = input_t<first>;
  using output_type = output_t<last>;
  static constexpr auto in_signature = sequence_in_signature<S...>();
  template <std::size_t N>
  static constexpr auto out_signature(const signature<N>& reaching) {
    return sequence_out_signature<S...>(reaching);
  }
  static constexpr int in_channels = in_signature[0].width;
  static constexpr int out_channels = out_signature(in_signature)[0].width;
  static constexpr bool is_container = true;
  static constexpr bool is_coupling = (Coupling<S> && ...);

  struct cache : detail::tape_state {
    cache(mode mode_ = mode::stored) : detail::tape_state(mode_) {}
    std::tuple<detail::block_record<S>...> records;
    output_type y;  // reversible mode: where the reconstruction starts
  };

  Chain() = default;
  /// The chain of the given blocks (for blocks made with arguments, such as a Dropout's rate).
  explicit Chain(S... blocks) : blocks_(std::move(blocks)...) {}

  output_type forward(const input_type& x, context& ctx) {
    return run<0>(x, [&](auto& s, const auto& v, auto i) {
      const detail::anomaly_block a(name_of<i>);
      auto y = s.forward(v, ctx);
      a.check(y, pass::forward);
      return y;
    });
  }

  output_type forward(const input_type& x, context& ctx, cache& c) {
    context inner = detail::begin_forward(c, ctx, "rev::Chain");
    const detail::last_block tail = c.owns_replay ? last_kind() : detail::last_block::no;
    output_type y = run<0>(x, [&](auto& s, const auto& v, auto i) {
      const detail::anomaly_block a(name_of<i>);
      auto out =
          detail::forward_block(s, v, inner, std::get<i>(c.records), c.m, i + 1 == n ? tail : detail::last_block::no);
      a.check(out, pass::forward);
      return out;
    });
    if (c.m == mode::reversible) c.y = y;
    return y;
  }

  input_type backward(cache& c, const output_type& dy) { return backward_with_input(c, dy).dx; }

  /// backward that also returns the input, reconstructed or checkpointed (reversible mode).
  reconstructed<input_type> backward_with_input(cache& c, const output_type& dy) {
    detail::walk_back w(c, "rev::Chain::backward");
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
    each([&]<class Block>(Block& s, std::size_t i) { s.for_each_parameter(v, child_prefix<Block>(prefix, i)); });
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    each([&]<class Block>(Block& s, std::size_t i) { s.for_each_buffer(v, child_prefix<Block>(prefix, i)); });
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
    auto r = [&] {
      const detail::anomaly_block a(name_of<I>);  // named until block I is done, not in the recursion
      auto rec = detail::backward_block(std::get<I>(blocks_), y, dy, std::get<I>(c.records), c.m);
      a.check(rec.x, pass::reconstruction);
      a.check(rec.dx, pass::backward);
      return rec;
    }();
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
    for_each_index<n>([&](auto i) { f(std::get<i>(blocks_), i); });
  }

  // Block I's name in an anomaly path: its key, or I.
  template <std::size_t I>
  static constexpr auto name_of = [] { return detail::child_name<std::tuple_element_t<I, tuple>>(I); };

  static constexpr detail::last_block last_kind() {
    if constexpr (n > 1) {
      if constexpr (Coupling<std::tuple_element_t<n - 2, tuple>>) return detail::last_block::after_coupling;
    }
    return detail::last_block::alone;
  }

  tuple blocks_;
};

/// N blocks of the same type, stored in an array and run in a loop (no template recursion).
/// Parameters are named "<i>.<block's names>" as in an nn.Sequential of the blocks, i counted
/// from First (a stack that continues another's numbering: Rev-MViT's "layers.4" .. "layers.13").
template <int N, class Block, int First = 0>
class Repeat {
  static_assert(N > 0, "rev::Repeat<N,Block>: N must be positive");
  static_assert(First >= 0, "rev::Repeat<N,Block,First>: First must not be negative");
  static constexpr auto first = static_cast<std::size_t>(First);
  static_assert(checked_block<Block>());
  static_assert(sizeof(typename decltype(detail::repeat_check<Block>())::type) > 0);
  static_assert(std::same_as<input_t<Block>, output_t<Block>>,
                "rev::Repeat<N,Block>: Block returns another element type or backend than it takes");

 public:
  template <class T2, class B2>
  using rebind = Repeat<N, rebind_t<Block, T2, B2>, First>;
  using value_type = typename Block::value_type;
  using backend = typename Block::backend;
  using tensor_type = Tensor<value_type, backend>;
  using input_type = input_t<Block>;
  using output_type = output_t<Block>;
  static constexpr auto in_signature = in_signature_of<Block>();
  template <std::size_t M>
  static constexpr auto out_signature(const signature<M>& reaching) {
    return out_signature_of<Block>(reaching);
  }
  static constexpr int in_channels = in_channels_of<Block>();
  static constexpr int out_channels = out_channels_of<Block>();
  static constexpr bool is_container = true;
  static constexpr bool is_coupling = Coupling<Block>;

  struct cache : detail::tape_state {
    cache(mode mode_ = mode::stored) : detail::tape_state(mode_) {}
    std::vector<detail::block_record<Block>> records;
    output_type y;
  };

  output_type forward(const input_type& x, context& ctx) {
    output_type v = x;
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      const detail::anomaly_block a([i] { return std::to_string(i); });
      v = blocks_[i].forward(v, ctx);
      a.check(v, pass::forward);
    }
    return v;
  }

  output_type forward(const input_type& x, context& ctx, cache& c) {
    context inner = detail::begin_forward(c, ctx, "rev::Repeat");
    c.records.assign(N, {});
    output_type v = x;
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      const detail::anomaly_block a([i] { return std::to_string(i); });
      v = detail::forward_block(
          blocks_[i], v, inner, c.records[i], c.m,
          c.owns_replay && i + 1 == blocks_.size() ? detail::last_block::alone : detail::last_block::no);
      a.check(v, pass::forward);
    }
    if (c.m == mode::reversible) c.y = v;
    return v;
  }

  input_type backward(cache& c, const output_type& dy) { return backward_with_input(c, dy).dx; }

  /// backward that also returns the input, reconstructed or checkpointed (reversible mode).
  reconstructed<input_type> backward_with_input(cache& c, const output_type& dy) {
    detail::walk_back w(c, "rev::Repeat::backward");
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
      blocks_[i].for_each_parameter(v, child_prefix<Block>(prefix, first + i));
  }
  template <class V>
  void for_each_buffer(V&& v, const std::string& prefix = "") {
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      blocks_[i].for_each_buffer(v, child_prefix<Block>(prefix, first + i));
  }
  /// Calls v(block) for each block (rev::apply).
  template <class V>
  void for_each_child(V&& v) {
    for (auto& b : blocks_) v(b);
  }

  Block& operator[](std::size_t i) { return blocks_[i]; }
  static constexpr int size() { return N; }

 private:
  reconstructed<input_type> back(cache& c, output_type y, output_type dy) {
    for (std::size_t i = blocks_.size(); i-- > 0;) {
      const detail::anomaly_block a([i] { return std::to_string(i); });
      auto r = detail::backward_block(blocks_[i], y, dy, c.records[i], c.m);
      a.check(r.x, pass::reconstruction);
      a.check(r.dx, pass::backward);
      y = std::move(r.x);
      dy = std::move(r.dx);
    }
    c.records.clear();
    return {std::move(y), std::move(dy)};
  }

  std::array<Block, static_cast<std::size_t>(N)> blocks_;
};

}  // namespace rev
