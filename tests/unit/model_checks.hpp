// What the model tests share (test_revbifpn, test_revcol, test_revvit, test_revmvit[v2]; the GPU's
// test_cuda_revbifpn through revbifpn_golden.hpp): the worst error of a group of tensors, the
// keys and extents of a model against a reference state_dict, a training step against a float64
// reference, and a training step's peak bytes.
#pragma once

#include <map>
#include <ostream>
#include <string>

#include "helpers.hpp"
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

// One training step of net in mode m on a float64 reference of tests/torch_ref/gen_*.py ("x",
// "dout", "logits", "dx", "grad.<key>"): checks the logits, that `count` parameters have a
// gradient, and the gradients for which zero(key) holds (zero in exact arithmetic: the reference
// holds rounding noise) in absolute terms; returns the worst relative error of the image gradient
// and the other parameter gradients.
template <class Net, class Zero>
worst reference_step(Net& net, const io::file& ref, mode m, std::size_t count, Zero zero) {
  zero_grad(net);
  context train{phase::train};
  typename Net::cache tape{m};
  CHECK(test::max_rel_error(net.forward(ref.tensor<double>("x"), train, tape), ref.tensor<double>("logits")) <= 1e-12);
  worst g;
  g.add("input", test::max_rel_error(net.backward(tape, ref.tensor<double>("dout")), ref.tensor<double>("dx")));
  std::size_t checked = 0;
  net.for_each_parameter([&](const std::string& k, auto& p) {
    ++checked;
    if (zero(k)) CHECK(test::max_abs_error(p.grad, ref.tensor<double>("grad." + k)) <= 1e-12);
    else g.add(k, test::max_rel_error(p.grad, ref.tensor<double>("grad." + k)));
  });
  CHECK(checked == count);
  return g;
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

// The worst relative difference of two same-type models' parameter gradients (Stored against
// Reversible), leaving out the keys for which skip(key) holds (gradients that are zero in exact
// arithmetic, compared in absolute terms by the caller).
template <class Net, class Skip>
worst gradient_gap(Net& a, Net& b, Skip skip) {
  std::map<std::string, Tensor<typename Net::value_type>> ref;
  a.for_each_parameter([&](const std::string& k, auto& p) { ref[k] = p.grad; });
  worst w;
  b.for_each_parameter([&](const std::string& k, auto& p) {
    if (!skip(k)) w.add(k, test::max_rel_error(p.grad, ref.at(k)));
  });
  return w;
}

// Peak bytes of a training step of a shallow and a deep model of one family, Stored and
// Reversible: activation memory grows with depth when stored, stays flat when reversible.
struct depth_peaks {
  std::size_t stored_shallow, stored_deep, reversible_shallow, reversible_deep;
  bool stored_grows() const { return stored_deep > 3 * stored_shallow / 2; }
  bool reversible_flat() const { return reversible_deep <= reversible_shallow + reversible_shallow / 20; }
  friend std::ostream& operator<<(std::ostream& os, const depth_peaks& p) {
    return os << "stored " << p.stored_shallow << " vs " << p.stored_deep << ", reversible " << p.reversible_shallow
              << " vs " << p.reversible_deep;
  }
};
template <class Shallow, class Deep, class T>
depth_peaks step_peaks(Shallow& shallow, Deep& deep, const Tensor<T>& image) {
  return {step_peak(shallow, image, mode::stored), step_peak(deep, image, mode::stored),
          step_peak(shallow, image, mode::reversible), step_peak(deep, image, mode::reversible)};
}

}  // namespace rev::testing
