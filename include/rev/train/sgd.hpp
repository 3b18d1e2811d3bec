// Stochastic gradient descent with momentum, Nesterov momentum and weight decay, with
// PyTorch's update rule (torch.optim.SGD):
//   g = grad + weight_decay * w;  b = momentum * b + g (b = g at the first step);
//   w -= lr * (nesterov ? g + momentum * b : b)
#pragma once

#include <string>
#include <vector>

#include "rev/core/layer.hpp"

namespace rev::train {

struct sgd_options {
  double lr = 0.1;
  double momentum = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

template <Scalar T = float, class B = cpu>
class SGD {
 public:
  /// Optimises every parameter of `model` (visited once, now; the model must outlive the optimiser).
  template <class Model>
  SGD(Model& model, sgd_options o) : options_(o) {
    check<value_error>(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0, "rev::train::SGD: lr ", o.lr, ", momentum ",
                       o.momentum, " and weight_decay ", o.weight_decay, " must be non-negative");
    check<value_error>(!o.nesterov || o.momentum > 0, "rev::train::SGD: Nesterov momentum needs momentum > 0");
    model.for_each_parameter([&](const std::string& name, Param<T, B>& p) { params_.push_back({name, &p, {}}); });
  }

  void step() {
    const T lr = static_cast<T>(options_.lr), m = static_cast<T>(options_.momentum), wd = static_cast<T>(options_.weight_decay);
    for (auto& s : params_) {
      T* w = s.param->value.data();
      const T* g = s.param->grad.data();
      const index_t n = s.param->value.numel();
      if (m == T(0)) {
        for (index_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
        continue;
      }
      const bool first = s.momentum.empty();
      if (first) s.momentum = Tensor<T, B>::uninitialized(s.param->value.shape());
      T* b = s.momentum.data();
      for (index_t i = 0; i < n; ++i) {
        const T gi = g[i] + wd * w[i];
        b[i] = first ? gi : m * b[i] + gi;
        w[i] -= lr * (options_.nesterov ? gi + m * b[i] : b[i]);
      }
    }
  }

  void zero_grad() {
    for (auto& s : params_) s.param->zero_grad();
  }

  sgd_options& options() { return options_; }

 private:
  struct slot {
    std::string name;
    Param<T, B>* param;
    Tensor<T, B> momentum;
  };
  sgd_options options_;
  std::vector<slot> params_;
};

}  // namespace rev::train
