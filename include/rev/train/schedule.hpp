// Cosine learning-rate schedule with linear warm-up (Loshchilov & Hutter, SGDR, ICLR 2017;
// Goyal et al. 2017 for the warm-up), as a pure function of the step t = 0, 1, ...:
//   t <  W:      lr = warmup_lr + (base_lr - warmup_lr) * t / W
//   W <= t < T:  lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2
//   t >= T:      lr = min_lr
// with W = warmup_steps and T = total_steps. This is timm's CosineLRScheduler with
// warmup_prefix=True, t_initial = T - W and one cycle, and equals PyTorch's
//   SequentialLR([LinearLR(start_factor = warmup_lr / base_lr, total_iters = W),
//                 CosineAnnealingLR(T_max = T - W, eta_min = min_lr)], milestones = [W])
// (checked against it in tests/unit/test_optim.cpp). Being stateless, it needs nothing in a
// checkpoint but the step.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include "rev/core/errors.hpp"

namespace rev::train {

struct cosine_schedule {
  double base_lr = 0.1;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  double warmup_lr = 0;  // the lr at step 0 when warmup_steps > 0
  double min_lr = 0;

  /// Validates the options (called by lr(); call it early to fail before training).
  void check() const {
    rev::check<value_error>(base_lr >= 0 && warmup_lr >= 0 && min_lr >= 0, "rev::train::cosine_schedule: base_lr ",
                            base_lr, ", warmup_lr ", warmup_lr, " and min_lr ", min_lr, " must be non-negative");
    rev::check<value_error>(warmup_steps >= 0 && warmup_steps < total_steps,
                            "rev::train::cosine_schedule: warmup_steps ", warmup_steps,
                            " must be in [0, total_steps = ", total_steps, ")");
  }

  /// The learning rate of step t (t >= 0).
  double lr(std::int64_t t) const {
    check();
    rev::check<value_error>(t >= 0, "rev::train::cosine_schedule: step ", t, " must be non-negative");
    if (t < warmup_steps)
      return warmup_lr + (base_lr - warmup_lr) * static_cast<double>(t) / static_cast<double>(warmup_steps);
    if (t >= total_steps) return min_lr;
    const double progress = static_cast<double>(t - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + (base_lr - min_lr) * (1 + std::cos(std::numbers::pi * progress)) / 2;
  }

  /// Sets the optimiser's base lr to lr(t) (parameter groups keep their lr_scale on top of it).
  template <class Optimizer>
  void apply(Optimizer& opt, std::int64_t t) const {
    opt.options().lr = lr(t);
  }
};

}  // namespace rev::train
