// Stochastic gradient descent with momentum, Nesterov momentum and weight decay, with
// PyTorch's update rule (torch.optim.SGD), per parameter group (param_groups.hpp):
//   g = grad + weight_decay * w;  b = momentum * b + g (b = g at the first step);
//   w -= lr * lr_scale * (nesterov ? g + momentum * b : b)
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/train/param_groups.hpp"
#include "rev/train/state.hpp"

namespace rev::train {

struct sgd_options {
  double lr = 0.1;
  double momentum = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

template <Scalar T = float, class B = cpu>
class SGD {
  static_assert(std::same_as<B, cpu>,
                "rev::train::SGD: CPU-only for now (its update loops over host memory); use rev::cpu");

 public:
  /// Optimises every parameter of `model` (visited once, now; the model must outlive the optimiser).
  /// A parameter that a group in `groups` matches uses that group's lr_scale and weight decay.
  template <class Model>
  SGD(Model& model, sgd_options o, const std::vector<param_group>& groups = {}) : options_(o) {
    check<value_error>(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0, "rev::train::SGD: lr ", o.lr, ", momentum ",
                       o.momentum, " and weight_decay ", o.weight_decay, " must be non-negative");
    check<value_error>(!o.nesterov || o.momentum > 0, "rev::train::SGD: Nesterov momentum needs momentum > 0");
    detail::group_resolver resolve("rev::train::SGD", groups);
    model.for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      params_.push_back({name, &p, resolve.assign(name, p.shape()), {}});
    });
    resolve.done();
  }

  void step() {
    const T m = static_cast<T>(options_.momentum);
    for (auto& s : params_) {
      const T lr = static_cast<T>(options_.lr * s.group.lr_scale);
      const T wd = static_cast<T>(s.group.weight_decay.value_or(options_.weight_decay));
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
    ++steps_;
  }

  void zero_grad() {
    for (auto& s : params_) s.param->zero_grad();
  }

  sgd_options& options() { return options_; }
  /// The number of step() calls so far.
  std::int64_t steps() const { return steps_; }
  /// The learning-rate multiplier of parameter `name` (1 outside every group).
  double lr_scale(const std::string& name) const {
    for (const auto& s : params_)
      if (s.name == name) return s.group.lr_scale;
    throw value_error(rev::detail::concat("rev::train::SGD: no parameter named '", name, "'"));
  }

  /// Stores the state under prefix: "lr", "step" and, once a momentum step was taken,
  /// "<param>.momentum_buffer" (PyTorch's state name).
  void save_state(io::file& f, const std::string& prefix) const {
    put_tensor(f, prefix + "lr", Tensor<double>::full({1}, options_.lr));
    put_u64(f, prefix + "step", {static_cast<std::uint64_t>(steps_)});
    for (const auto& s : params_)
      if (!s.momentum.empty()) put_tensor(f, prefix + s.name + ".momentum_buffer", s.momentum);
  }
  /// Restores what save_state stored; io_error if a key is missing, extra or of other extents.
  void load_state(const io::file& f, const std::string& prefix) {
    constexpr const char* who = "rev::train::SGD::load_state";
    Tensor<double> lr({1});
    get_tensor(f, prefix + "lr", lr, who);
    const auto steps = static_cast<std::int64_t>(get_u64(f, prefix + "step", 1, who)[0]);
    std::set<std::string> expected{prefix + "lr", prefix + "step"};
    const bool buffers = options_.momentum > 0 && steps > 0;
    for (auto& s : params_) {
      s.momentum = {};
      if (!buffers) continue;
      const std::string key = prefix + s.name + ".momentum_buffer";
      s.momentum = Tensor<T, B>::uninitialized(s.param->value.shape());
      get_tensor(f, key, s.momentum, who);
      expected.insert(key);
    }
    check_no_extra_keys(f, prefix, expected, who);
    options_.lr = lr.data()[0];
    steps_ = steps;
  }

 private:
  struct slot {
    std::string name;
    Param<T, B>* param;
    detail::group_settings group;
    Tensor<T, B> momentum;
  };
  sgd_options options_;
  std::vector<slot> params_;
  std::int64_t steps_ = 0;
};

}  // namespace rev::train
