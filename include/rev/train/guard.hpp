// The NaN guard of a training loop: stop with a clear error the first time the loss is not a
// finite number, instead of training on NaN weights, and leave the model as it was before the
// refused step.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/tensor.hpp"

namespace rev::train {

/// Throws rev::value_error "rev::train: the loss is nan at step 123 ..." unless `loss` is finite.
inline void check_finite_loss(double loss, std::int64_t step) {
  if (std::isfinite(loss)) return;
  throw value_error(rev::detail::concat("rev::train: the loss is ",
                                        std::isnan(loss) ? "nan"
                                        : loss > 0       ? "inf"
                                                         : "-inf",
                                        " at step ", step,
                                        "; lower the learning rate, clip the gradient norm or check the input data"));
}

/// Makes a refused step leave no trace. A train-phase forward updates the batch-norm running
/// statistics before the loss is known, so a NaN batch would poison every later evaluation even
/// though its step is refused. Construct the guard before the forward: it copies the model's
/// buffers; check_loss restores them before it throws. The parameters, the optimiser and the EMA
/// are untouched as long as the loss is checked before the backward and the optimiser step.
///
///   train::step_guard guard(net);
///   const Tensor<float> logits = net.forward(x, ctx, tape);
///   const double loss = ops::cross_entropy(logits, labels);
///   guard.check_loss(loss, step);   // not finite: buffers as before the forward, then value_error
template <class Model>
class step_guard {
  using tensor = Tensor<typename Model::value_type, typename Model::backend>;
  static_assert(std::same_as<typename Model::backend, cpu>,
                "rev::train::step_guard: CPU-only for now (it copies host buffers); the model must run on rev::cpu");

 public:
  explicit step_guard(Model& model) {
    model.for_each_buffer([&](const std::string&, tensor& b) { saved_.emplace_back(&b, b.clone()); });
  }

  /// Puts every buffer back as it was when the guard was made.
  void restore() {
    for (auto& [buffer, copy] : saved_) std::copy(copy.begin(), copy.end(), buffer->begin());
  }

  /// check_finite_loss, after restoring the buffers if the loss is not finite.
  void check_loss(double loss, std::int64_t step) {
    if (!std::isfinite(loss)) restore();
    check_finite_loss(loss, step);
  }

 private:
  std::vector<std::pair<tensor*, tensor>> saved_;
};

}  // namespace rev::train
