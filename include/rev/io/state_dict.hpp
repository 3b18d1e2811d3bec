// A model's parameters and buffers as a safetensors file under their state_dict keys, and back.
//
//   rev::io::save(rev::io::state_dict(net), "net.safetensors");
//   rev::io::load_state(net, rev::io::load("net.safetensors"));          // strict: throws io_error
//   auto report = rev::io::load_state(net, file, {.strict = false});     // loads what matches
#pragma once

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/io/safetensors.hpp"

namespace rev::io {

/// What a non-strict load found wrong; a strict load throws on the first of these.
struct load_report {
  std::vector<std::string> missing;     // model keys absent from the file
  std::vector<std::string> unexpected;  // file keys the model does not have (num_batches_tracked excepted)
  std::vector<std::string> mismatched;  // keys whose extents differ (left unchanged)
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

struct load_options {
  bool strict = true;
  std::string who = "rev::io::load_state";  // the prefix of error messages, usually the model's name
};

/// Copies every parameter and buffer of `model` from `f` by key. PyTorch's num_batches_tracked
/// entries are ignored. Strict: a missing, unexpected or mis-shaped key throws io_error naming the
/// key and both extents, and the model is left as it was (every key is checked before any is
/// copied); otherwise the matching keys are loaded and the rest reported.
template <class Model>
load_report load_state(Model& model, const file& f, const load_options& o = {}) {
  using T = typename Model::value_type;
  using B = typename Model::backend;
  load_report report;
  std::set<std::string> known;
  std::vector<std::pair<const entry*, Tensor<T, B>*>> loads;
  auto take = [&](const std::string& key, Tensor<T, B>& dst) {
    known.insert(key);
    if (!f.contains(key)) {
      check<io_error>(!o.strict, o.who, "::load: missing key '", key, "' (expected extents ", dst.shape(), ")");
      report.missing.push_back(key);
      return;
    }
    const entry& e = f.at(key);
    if (e.shape != dst.shape()) {
      check<io_error>(!o.strict, o.who, "::load: key '", key, "' has extents ", e.shape, " in the file, expected ",
                      dst.shape());
      report.mismatched.push_back(key);
      return;
    }
    loads.emplace_back(&e, &dst);
  };
  model.for_each_parameter([&](const std::string& key, Param<T, B>& p) { take(key, p.value); });
  model.for_each_buffer([&](const std::string& key, Tensor<T, B>& b) { take(key, b); });
  static const std::string nbt = "num_batches_tracked";
  for (const auto& [key, e] : f.entries) {
    if (known.count(key) || (key.size() >= nbt.size() && key.compare(key.size() - nbt.size(), nbt.size(), nbt) == 0))
      continue;
    check<io_error>(!o.strict, o.who, "::load: unexpected key '", key, "' (extents ", e.shape, ")");
    report.unexpected.push_back(key);
  }
  for (const auto& [e, dst] : loads) copy_into(*dst, e->template to_tensor<T>(), o.who.c_str());
  return report;
}

/// Every parameter and buffer of `model` under its key.
template <class Model>
file state_dict(Model& model) {
  using T = typename Model::value_type;
  using B = typename Model::backend;
  file f;
  model.for_each_parameter([&](const std::string& key, Param<T, B>& p) { f.put(key, to<cpu>(p.value)); });
  model.for_each_buffer([&](const std::string& key, Tensor<T, B>& b) { f.put(key, to<cpu>(b)); });
  return f;
}

}  // namespace rev::io
