// An exponential moving average of a model's weights (Polyak & Juditsky 1992; timm's ModelEmaV2
// update and ModelEmaV3 warm-up), over its parameters and buffers (BatchNorm running statistics):
//   ema = decay * ema + (1 - decay) * w
// With warm-up, the n-th update (n = 1, 2, ...) uses
//   decay_n = max(min_decay, min(decay, 1 - (1 + n / warmup_gamma)^(-warmup_power)))
// (timm's ModelEmaV3.get_decay(step = n)), so early averages are not dominated by the random
// initial weights. The average starts as a copy of the model.
//
//   train::ModelEMA<float> ema(net, {.decay = 0.999});
//   ... opt.step(); ema.update();
//   ema.swap();  evaluate(net);  ema.swap();     // evaluate the averaged weights, then go back
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "rev/core/layer.hpp"
#include "rev/train/state.hpp"

namespace rev::train {

struct ema_options {
  double decay = 0.9999;
  bool warmup = false;
  double warmup_gamma = 1;
  double warmup_power = 2.0 / 3.0;
  double min_decay = 0;
  bool average_buffers = true;  // false: buffers are copied, not averaged (timm's exclude_buffers)
};

template <Scalar T = float, class B = cpu>
class ModelEMA {
  static_assert(std::same_as<B, cpu>,
                "rev::train::ModelEMA: CPU-only for now (its averaging loops over host memory); use rev::cpu");

 public:
  /// Tracks every parameter and buffer of `model` (which must outlive the ModelEMA).
  template <class Model>
  explicit ModelEMA(Model& model, ema_options o = {}) : options_(o) {
    check<value_error>(o.decay >= 0 && o.decay <= 1 && o.min_decay >= 0 && o.min_decay <= 1,
                       "rev::train::ModelEMA: decay ", o.decay, " and min_decay ", o.min_decay, " must be in [0, 1]");
    check<value_error>(!o.warmup || (o.warmup_gamma > 0 && o.warmup_power > 0), "rev::train::ModelEMA: warmup_gamma ",
                       o.warmup_gamma, " and warmup_power ", o.warmup_power, " must be positive");
    model.for_each_parameter([&](const std::string& name, Param<T, B>& p) {
      slots_.push_back({name, &p.value, p.value.clone(), false});
    });
    model.for_each_buffer([&](const std::string& name, Tensor<T, B>& t) {
      slots_.push_back({name, &t, t.clone(), true});
    });
  }

  /// The decay of the n-th update (n >= 1).
  double decay_at(std::int64_t n) const {
    if (!options_.warmup) return options_.decay;
    const double d = 1 - std::pow(1 + static_cast<double>(n) / options_.warmup_gamma, -options_.warmup_power);
    return std::max(options_.min_decay, std::min(options_.decay, d));
  }

  /// Moves the average towards the model's current weights (call after each optimiser step).
  void update() {
    ++updates_;
    const T d = static_cast<T>(decay_at(updates_)), one_d = static_cast<T>(1 - decay_at(updates_));
    for (auto& s : slots_) {
      T* e = s.shadow.data();
      const T* w = s.source->data();
      const index_t n = s.shadow.numel();
      if (s.buffer && !options_.average_buffers) std::copy(w, w + n, e);
      else
        for (index_t i = 0; i < n; ++i) e[i] = e[i] * d + one_d * w[i];
    }
  }

  /// Exchanges the tracked model's weights and the average; call again to restore them.
  void swap() {
    for (auto& s : slots_) std::swap_ranges(s.shadow.data(), s.shadow.data() + s.shadow.numel(), s.source->data());
  }

  /// Copies the average into `model`, the tracked one or another of the same architecture.
  template <class Model>
  void copy_to(Model& model) const {
    std::map<std::string, const Tensor<T, B>*> by_name;
    for (const auto& s : slots_) by_name[s.name] = &s.shadow;
    auto copy = [&](const std::string& name, Tensor<T, B>& dst) {
      auto it = by_name.find(name);
      check<value_error>(it != by_name.end(), "rev::train::ModelEMA::copy_to: the model has '", name,
                         "', which the average does not track");
      check<shape_error>(it->second->shape() == dst.shape(), "rev::train::ModelEMA::copy_to: '", name, "' has extents ",
                         dst.shape(), " in the model, but ", it->second->shape(), " in the average");
      std::copy(it->second->data(), it->second->data() + dst.numel(), dst.data());
    };
    model.for_each_parameter([&](const std::string& name, Param<T, B>& p) { copy(name, p.value); });
    model.for_each_buffer([&](const std::string& name, Tensor<T, B>& t) { copy(name, t); });
  }

  /// The average of parameter or buffer `name`.
  const Tensor<T, B>& average(const std::string& name) const {
    for (const auto& s : slots_)
      if (s.name == name) return s.shadow;
    throw value_error(rev::detail::concat("rev::train::ModelEMA: no parameter or buffer named '", name, "'"));
  }
  std::int64_t updates() const { return updates_; }
  ema_options& options() { return options_; }

  /// Stores "<prefix>updates" and the averages under "<prefix><name>".
  void save_state(io::file& f, const std::string& prefix) const {
    put_u64(f, prefix + "updates", {static_cast<std::uint64_t>(updates_)});
    for (const auto& s : slots_) put_tensor(f, prefix + s.name, s.shadow);
  }
  /// Restores what save_state stored; io_error if a key is missing, extra or of other extents.
  void load_state(const io::file& f, const std::string& prefix) {
    constexpr const char* who = "rev::train::ModelEMA::load_state";
    const auto updates = static_cast<std::int64_t>(get_u64(f, prefix + "updates", 1, who)[0]);
    std::set<std::string> expected{prefix + "updates"};
    for (auto& s : slots_) {
      get_tensor(f, prefix + s.name, s.shadow, who);
      expected.insert(prefix + s.name);
    }
    check_no_extra_keys(f, prefix, expected, who);
    updates_ = updates;
  }

 private:
  struct slot {
    std::string name;
    Tensor<T, B>* source;
    Tensor<T, B> shadow;
    bool buffer;
  };
  ema_options options_;
  std::vector<slot> slots_;
  std::int64_t updates_ = 0;
};

}  // namespace rev::train
