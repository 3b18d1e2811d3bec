// Moving a model between backends: copy_state(src, dst) copies every parameter and buffer of one
// model into another of the same architecture, matching them by name, on any two backends:
//
//   rev::models::RevBiFPN<S0> host;                   host.load(rev::io::load("s0.safetensors"));
//   rev::models::RevBiFPN<S0, float, rev::cuda> gpu;  rev::copy_state(host, gpu);
#pragma once

#include <map>
#include <string>

#include "rev/core/errors.hpp"
#include "rev/core/layer.hpp"
#include "rev/core/tensor.hpp"

namespace rev {

/// Copies src's parameter values and buffers (BatchNorm running statistics) into dst's, by name.
/// Gradients are not copied. Throws rev::error naming the key when a name is missing on either
/// side or the extents differ; dst is then partly written.
template <class Src, class Dst>
void copy_state(Src& src, Dst& dst) {
  using source_tensor = Tensor<typename Src::value_type, typename Src::backend>;
  std::map<std::string, source_tensor> from;
  src.for_each_parameter([&](const std::string& name, auto& p) { from.emplace(name, p.value); });
  src.for_each_buffer([&](const std::string& name, auto& t) { from.emplace(name, t); });
  const std::size_t total = from.size();
  auto take = [&](const std::string& name, auto& t) {
    const auto it = from.find(name);
    check(it != from.end(), "rev::copy_state: the destination has '", name, "', the source has no such key");
    copy_into(t, it->second, ("rev::copy_state: '" + name + "'").c_str());
    from.erase(it);
  };
  dst.for_each_parameter([&](const std::string& name, auto& p) { take(name, p.value); });
  dst.for_each_buffer([&](const std::string& name, auto& t) { take(name, t); });
  check(from.empty(), "rev::copy_state: ", from.size(), " of the source's ", total,
        " keys have no match in the destination, the first is '", from.empty() ? "" : from.begin()->first, "'");
}

}  // namespace rev
