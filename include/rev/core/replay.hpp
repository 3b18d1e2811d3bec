// The replay record: what a reversible backward needs to re-evaluate a function exactly as its
// train-phase forward did, kept with the tape of that forward rather than in the layers.
//
// A batch-norm layer's batch statistics, a dropout layer's rng_state and a spectral norm's
// normalisation belong to one forward pass. Kept in the layer, a second train-phase forward
// overwrites them, and the walk back of the first tape silently replays the second. Kept here,
// each tape replays its own forward:
//
//   train phase      a layer puts its state under its own address: ctx.replay->put(this, s)
//   recompute phase  it reads it back: ctx.replay->find<S>(this)
//
// rev::Chain and rev::Repeat own one record per reversible tape: their forward hands it to the
// blocks in ctx.replay, their backward makes it the current record of the thread for as long as
// the walk back lasts (a replay_scope), and recompute_context() (coupling/coupling.hpp) picks it
// up. Without a record (a layer run on its own, a recompute context made by hand) the layers use
// the state of their last train-phase forward, as before.
//
// A layer object used at two places of one forward keeps one entry: the second use's state.
#pragma once

#include <any>
#include <unordered_map>

namespace rev {

class replay_record {
 public:
  /// Keeps `state` for `owner`, replacing what `owner` kept before in this record.
  template <class S>
  void put(const void* owner, S state) {
    entries_.insert_or_assign(owner, std::any(std::move(state)));
  }

  /// What `owner` kept, or nullptr when it kept nothing (or kept another type).
  template <class S>
  const S* find(const void* owner) const {
    const auto it = entries_.find(owner);
    return it == entries_.end() ? nullptr : std::any_cast<S>(&it->second);
  }

  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  void clear() { entries_.clear(); }

 private:
  std::unordered_map<const void*, std::any> entries_;
};

namespace detail {
inline replay_record*& current_replay_slot() {
  thread_local replay_record* current = nullptr;
  return current;
}
}  // namespace detail

/// The record of the walk back running on this thread (nullptr outside one).
inline replay_record* current_replay() { return detail::current_replay_slot(); }

/// Makes `r` the current record of this thread until the scope ends (nested scopes restore the
/// outer record).
class replay_scope {
 public:
  explicit replay_scope(replay_record* r) : previous_(detail::current_replay_slot()) {
    detail::current_replay_slot() = r;
  }
  ~replay_scope() { detail::current_replay_slot() = previous_; }
  replay_scope(const replay_scope&) = delete;
  replay_scope& operator=(const replay_scope&) = delete;

 private:
  replay_record* previous_;
};

}  // namespace rev
