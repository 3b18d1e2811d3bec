// Training checkpoints in one safetensors file, resumable bit-for-bit:
//   meta.step          I64 [1]  the step to resume at
//   meta.rng.default   I64 [2]  rev::default_generator()'s (seed, offset): dropout masks, inits
//   model.<name>       the parameters and buffers of a model under their state_dict names
//   optim.<param>.exp_avg, optim.step, ...   an optimiser's state (its save_state)
//   ema.<name>, data.rng, ...                 any other part with save_state / load_state
// Parts are named by the caller: train::part("model", net), train::part("optim", opt), ...
// A model is any object with for_each_parameter / for_each_buffer; a Generator is stored as
// "<name>.state"; anything else must have save_state(io::file&, prefix) and
// load_state(const io::file&, prefix).
//
// Loading is strict within each part: a missing, extra or mis-shaped key raises rev::io_error
// naming the key and both extents, so the checkpoint of another model is refused. Parts saved
// but not named when loading are ignored (load_checkpoint(path, part("model", net)) takes only
// the weights). Models are checked completely before any weight changes; the other parts may
// be partly loaded when an error is raised.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "rev/core/rng.hpp"
#include "rev/io/safetensors.hpp"
#include "rev/train/state.hpp"

namespace rev::train {

/// A named part of a checkpoint (see the file comment); make one with train::part.
template <class P>
struct checkpoint_part {
  std::string name;
  P* object;
};

template <class P>
checkpoint_part<P> part(std::string name, P& object) {
  return {std::move(name), &object};
}

namespace detail {

template <class P>
concept Stateful = requires(P& p, const io::file& in, io::file& out, const std::string& prefix) {
  p.save_state(out, prefix);
  p.load_state(in, prefix);
};

template <class P>
void save_part(io::file& f, const checkpoint_part<P>& p) {
  const std::string prefix = p.name + ".";
  if constexpr (std::is_same_v<P, Generator>) put_rng(f, prefix + "state", p.object->state());
  else if constexpr (Stateful<P>) p.object->save_state(f, prefix);
  else save_model_state(f, *p.object, prefix);
}

template <class P>
void load_part(const io::file& f, const checkpoint_part<P>& p, const std::string& who) {
  const std::string prefix = p.name + ".";
  if constexpr (std::is_same_v<P, Generator>) {
    const rng_state s = get_rng(f, prefix + "state", who);
    check_no_extra_keys(f, prefix, {prefix + "state"}, who);
    p.object->set_state(s);
  } else if constexpr (Stateful<P>) {
    p.object->load_state(f, prefix);
  } else {
    load_model_state(f, *p.object, prefix, who);
  }
}

}  // namespace detail

/// The checkpoint of `parts` at `step` (and of rev::default_generator()) as an io::file.
template <class... P>
io::file make_checkpoint(std::int64_t step, const checkpoint_part<P>&... parts) {
  io::file f;
  f.metadata["format"] = "rev.train.checkpoint/1";
  put_u64(f, "meta.step", {static_cast<std::uint64_t>(step)});
  put_rng(f, "meta.rng.default", default_generator().state());
  (detail::save_part(f, parts), ...);
  return f;
}

/// Restores `parts` and rev::default_generator() from a checkpoint; returns its step.
template <class... P>
std::int64_t restore_checkpoint(const io::file& f, const checkpoint_part<P>&... parts) {
  constexpr const char* who = "rev::train::load_checkpoint";
  const auto step = static_cast<std::int64_t>(get_u64(f, "meta.step", 1, who)[0]);
  const rng_state rng = get_rng(f, "meta.rng.default", who);
  check_no_extra_keys(f, "meta.", {"meta.step", "meta.rng.default"}, who);
  (detail::load_part(f, parts, who), ...);
  default_generator().set_state(rng);
  return step;
}

/// Writes a checkpoint file: train::save_checkpoint("ck.safetensors", step, train::part("model", net), ...).
template <class... P>
void save_checkpoint(const std::string& path, std::int64_t step, const checkpoint_part<P>&... parts) {
  io::save(make_checkpoint(step, parts...), path);
}

/// Reads a checkpoint file into `parts` (the same names as when saved); returns the saved step.
template <class... P>
std::int64_t load_checkpoint(const std::string& path, const checkpoint_part<P>&... parts) {
  return restore_checkpoint(io::load(path), parts...);
}

}  // namespace rev::train
