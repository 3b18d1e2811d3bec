// What the model tests share (test_revbifpn, test_revcol, test_revvit; the GPU's
// test_cuda_revbifpn through revbifpn_golden.hpp): the worst error of a group of tensors, the
// keys and extents of a model against a reference state_dict, and a training step's peak bytes.
#pragma once

#include <map>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/core/memory.hpp"
#include "rev/graph/chain.hpp"
#include "rev/io/safetensors.hpp"

namespace rev::testing {

// The worst error of a group of tensors, relative to each tensor's max |ref|.
struct worst {
  double rel = 0;
  std::string key;
  void add(const std::string& k, double r) {
    if (r > rel) rel = r, key = k;
  }
};

// The keys and extents of net's parameters and buffers, by key.
template <class Net>
std::map<std::string, Shape> keys_of(Net& net) {
  std::map<std::string, Shape> keys;
  net.for_each_parameter([&](const std::string& k, auto& p) { keys[k] = p.value.shape(); });
  net.for_each_buffer([&](const std::string& k, auto& b) { keys[k] = b.shape(); });
  return keys;
}

// Peak bytes above the start of one training step of net (forward + backward, zero output
// gradient) on image, in mode m.
template <class Net, class T>
std::size_t step_peak(Net& net, const Tensor<T>& image, mode m) {
  context train{phase::train};
  typename Net::cache tape{m};
  peak_scope<cpu> scope;
  const Tensor<T> y = net.forward(image, train, tape);
  net.backward(tape, Tensor<T>(y.shape()));
  return scope.peak_above_start();
}

}  // namespace rev::testing
