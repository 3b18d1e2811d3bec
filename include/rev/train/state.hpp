// Training state in a safetensors io::file: the helpers that optimisers, ModelEMA, data loaders
// and checkpoints use to store tensors and counters under namespaced keys ("optim.fc.weight.exp_avg").
//
// Tensors are stored in their own element type (F32 for float, F64 for double), so a save/load
// round trip is bit-for-bit. Counters and random-number states are stored as I64 holding the
// exact 64-bit pattern. Reading a key that is absent, or whose extents or type differ from what
// the reader expects, raises rev::io_error naming the key and both shapes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "rev/core/rng.hpp"
#include "rev/io/safetensors.hpp"

namespace rev::train {

/// Stores t under `key` in its own precision (F32 or F64).
template <Scalar T>
void put_tensor(io::file& f, const std::string& key, const Tensor<T>& t) {
  f.put(key, t);
}

/// Throws io_error unless `f` holds `key` as a float tensor of extents `shape`.
inline void check_entry(const io::file& f, const std::string& key, const Shape& shape, const std::string& who) {
  check<io_error>(f.contains(key), who, ": the checkpoint has no tensor '", key, "' (expected extents ", shape,
                  "); is it a checkpoint of another model?");
  const io::entry& e = f.at(key);
  check<io_error>(e.shape == shape, who, ": tensor '", key, "' has extents ", e.shape, " in the checkpoint, but ",
                  shape, " here; is it a checkpoint of another model?");
  check<io_error>(e.type == io::dtype::F32 || e.type == io::dtype::F64, who, ": tensor '", key, "' has dtype ",
                  io::dtype_name(e.type), ", expected F32 or F64");
}

/// Reads `key` into dst, which must already have the expected extents; `who` prefixes errors.
template <Scalar T>
void get_tensor(const io::file& f, const std::string& key, Tensor<T>& dst, const std::string& who) {
  check_entry(f, key, dst.shape(), who);
  const Tensor<T> src = f.at(key).to_tensor<T>();
  std::copy(src.data(), src.data() + src.numel(), dst.data());
}

/// Stores 64-bit counters under `key` as an I64 tensor [n] holding their exact bit patterns.
inline void put_u64(io::file& f, const std::string& key, const std::vector<std::uint64_t>& values) {
  io::entry e;
  e.type = io::dtype::I64;
  e.shape = Shape{static_cast<index_t>(values.size())};
  e.bytes.resize(values.size() * 8);
  if (!values.empty()) std::memcpy(e.bytes.data(), values.data(), e.bytes.size());
  f.entries[key] = std::move(e);
}

/// Reads the n counters stored by put_u64 under `key`.
inline std::vector<std::uint64_t> get_u64(const io::file& f, const std::string& key, std::size_t n,
                                          const std::string& who) {
  check<io_error>(f.contains(key), who, ": the checkpoint has no entry '", key, "' (expected I64 [", n, "])");
  const io::entry& e = f.at(key);
  check<io_error>(e.type == io::dtype::I64 && e.shape == Shape{static_cast<index_t>(n)}, who, ": entry '", key, "' is ",
                  io::dtype_name(e.type), " ", e.shape, " in the checkpoint, expected I64 [", n, "]");
  std::vector<std::uint64_t> out(n);
  if (n) std::memcpy(out.data(), e.bytes.data(), n * 8);
  return out;
}

inline void put_rng(io::file& f, const std::string& key, const rng_state& s) { put_u64(f, key, {s.seed, s.offset}); }
inline rng_state get_rng(const io::file& f, const std::string& key, const std::string& who) {
  const auto v = get_u64(f, key, 2, who);
  return {v[0], v[1]};
}

/// Throws io_error if `f` holds a key starting with `prefix` that is not in `expected`.
inline void check_no_extra_keys(const io::file& f, const std::string& prefix, const std::set<std::string>& expected,
                                const std::string& who) {
  for (auto it = f.entries.lower_bound(prefix); it != f.entries.end() && it->first.starts_with(prefix); ++it)
    check<io_error>(expected.count(it->first) != 0, who, ": the checkpoint has an unexpected tensor '", it->first,
                    "' with extents ", it->second.shape,
                    " that nothing here expects; is it a checkpoint of another model?");
}

/// The parameters and buffers of `model`, stored under prefix + their state_dict names.
template <class Model>
void save_model_state(io::file& f, Model& model, const std::string& prefix) {
  model.for_each_parameter([&](const std::string& name, auto& p) { put_tensor(f, prefix + name, p.value); });
  model.for_each_buffer([&](const std::string& name, auto& t) { put_tensor(f, prefix + name, t); });
}

/// Loads what save_model_state stored, strictly: every parameter and buffer must be present with
/// its extents, and no other key may start with `prefix`. Everything is checked before the model
/// is changed, so a checkpoint of another model leaves it as it was.
template <class Model>
void load_model_state(const io::file& f, Model& model, const std::string& prefix, const std::string& who) {
  std::set<std::string> expected;
  model.for_each_parameter([&](const std::string& name, auto& p) {
    check_entry(f, prefix + name, p.shape(), who);
    expected.insert(prefix + name);
  });
  model.for_each_buffer([&](const std::string& name, auto& t) {
    check_entry(f, prefix + name, t.shape(), who);
    expected.insert(prefix + name);
  });
  check_no_extra_keys(f, prefix, expected, who);
  model.for_each_parameter([&](const std::string& name, auto& p) { get_tensor(f, prefix + name, p.value, who); });
  model.for_each_buffer([&](const std::string& name, auto& t) { get_tensor(f, prefix + name, t, who); });
}

}  // namespace rev::train
