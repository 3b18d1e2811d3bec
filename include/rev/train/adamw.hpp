// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, ICLR 2019), with PyTorch's
// update rule (torch.optim.AdamW, 1.13), per parameter group (param_groups.hpp). At step t:
//   w  *= 1 - lr * weight_decay
//   m   = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
//   vmax = max(vmax, v) with amsgrad (else vmax = v)
//   w  -= lr / (1 - beta1^t) * m / (sqrt(vmax) / sqrt(1 - beta2^t) + eps)
// where lr is options.lr * the group's lr_scale.
#pragma once

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/train/param_groups.hpp"
#include "rev/train/state.hpp"

namespace rev::train {

struct adamw_options {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
};

template <Scalar T = float, class B = cpu>
class AdamW {
  static_assert(std::same_as<B, cpu>,
                "rev::train::AdamW: CPU-only for now (its update loops over host memory); use rev::cpu");

 public:
  /// Optimises every parameter of `model` (visited once, now; the model must outlive the optimiser).
  /// A parameter that a group in `groups` matches uses that group's lr_scale and weight decay.
  template <class Model>
  AdamW(Model& model, adamw_options o, const std::vector<param_group>& groups = {}) : options_(o) {
    check<value_error>(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0, "rev::train::AdamW: lr ", o.lr, ", eps ", o.eps,
                       " and weight_decay ", o.weight_decay, " must be non-negative");
    check<value_error>(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "rev::train::AdamW: betas (",
                       o.beta1, ", ", o.beta2, ") must be in [0, 1)");
    detail::group_resolver resolve("rev::train::AdamW", groups);
    model.for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      params_.push_back({name, &p, resolve.assign(name, p.shape()), {}, {}, {}});
    });
    resolve.done();
  }

  void step() {
    if (steps_ == 0)
      for (auto& s : params_) {
        s.exp_avg = Tensor<T, B>(s.param->value.shape());
        s.exp_avg_sq = Tensor<T, B>(s.param->value.shape());
        if (options_.amsgrad) s.max_exp_avg_sq = Tensor<T, B>(s.param->value.shape());
      }
    ++steps_;
    const double t = static_cast<double>(steps_);
    const double bias_correction1 = 1 - std::pow(options_.beta1, t);
    const double bias_correction2_sqrt = std::sqrt(1 - std::pow(options_.beta2, t));
    const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2);
    const T one_b1 = static_cast<T>(1 - options_.beta1), one_b2 = static_cast<T>(1 - options_.beta2);
    const T eps = static_cast<T>(options_.eps), bc2 = static_cast<T>(bias_correction2_sqrt);
    for (auto& s : params_) {
      const double lr = options_.lr * s.group.lr_scale;
      const T decay = static_cast<T>(1 - lr * s.group.weight_decay.value_or(options_.weight_decay));
      const T step_size = static_cast<T>(lr / bias_correction1);
      T* w = s.param->value.data();
      const T* g = s.param->grad.data();
      T* m = s.exp_avg.data();
      T* v = s.exp_avg_sq.data();
      T* vmax = options_.amsgrad ? s.max_exp_avg_sq.data() : v;
      const index_t n = s.param->value.numel();
      for (index_t i = 0; i < n; ++i) {
        w[i] *= decay;
        m[i] = m[i] * b1 + g[i] * one_b1;
        v[i] = v[i] * b2 + one_b2 * g[i] * g[i];
        if (options_.amsgrad) vmax[i] = std::max(vmax[i], v[i]);
        w[i] += -step_size * (m[i] / (std::sqrt(vmax[i]) / bc2 + eps));
      }
    }
  }

  void zero_grad() {
    for (auto& s : params_) s.param->zero_grad();
  }

  adamw_options& options() { return options_; }
  /// The number of step() calls so far (the t of the bias corrections).
  std::int64_t steps() const { return steps_; }

  /// Stores the state under prefix: "lr", "step" and, after the first step, "<param>.exp_avg",
  /// "<param>.exp_avg_sq" (and "<param>.max_exp_avg_sq" with amsgrad), PyTorch's state names.
  void save_state(io::file& f, const std::string& prefix) const {
    put_tensor(f, prefix + "lr", Tensor<double>::full({1}, options_.lr));
    put_u64(f, prefix + "step", {static_cast<std::uint64_t>(steps_)});
    if (steps_ == 0) return;
    for (const auto& s : params_) {
      put_tensor(f, prefix + s.name + ".exp_avg", s.exp_avg);
      put_tensor(f, prefix + s.name + ".exp_avg_sq", s.exp_avg_sq);
      if (options_.amsgrad) put_tensor(f, prefix + s.name + ".max_exp_avg_sq", s.max_exp_avg_sq);
    }
  }
  /// Restores what save_state stored; io_error if a key is missing, extra or of other extents.
  void load_state(const io::file& f, const std::string& prefix) {
    constexpr const char* who = "rev::train::AdamW::load_state";
    Tensor<double> lr({1});
    get_tensor(f, prefix + "lr", lr, who);
    const auto steps = static_cast<std::int64_t>(get_u64(f, prefix + "step", 1, who)[0]);
    std::set<std::string> expected{prefix + "lr", prefix + "step"};
    auto load = [&](Tensor<T, B>& dst, const Shape& shape, const std::string& key) {
      dst = Tensor<T, B>::uninitialized(shape);
      get_tensor(f, key, dst, who);
      expected.insert(key);
    };
    for (auto& s : params_) {
      s.exp_avg = s.exp_avg_sq = s.max_exp_avg_sq = {};
      if (steps == 0) continue;
      load(s.exp_avg, s.param->shape(), prefix + s.name + ".exp_avg");
      load(s.exp_avg_sq, s.param->shape(), prefix + s.name + ".exp_avg_sq");
      if (options_.amsgrad) load(s.max_exp_avg_sq, s.param->shape(), prefix + s.name + ".max_exp_avg_sq");
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
    Tensor<T, B> exp_avg, exp_avg_sq, max_exp_avg_sq;
  };
  adamw_options options_;
  std::vector<slot> params_;
  std::int64_t steps_ = 0;
};

}  // namespace rev::train
