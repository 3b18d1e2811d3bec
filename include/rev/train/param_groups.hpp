// Parameter groups of the optimisers: parameters matched by a predicate on their name and
// extents get their own learning-rate multiplier and weight decay (PyTorch's param_groups;
// the multiplier is timm's "lr_scale", so a schedule that sets the base lr moves every group).
//
//   // Fixup / RevUp: the scalar biases and multipliers learn at lr / 10 without weight decay
//   train::SGD opt(net, {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4},
//                  {{.name = "scalars", .match = train::scalars(), .lr_scale = 0.1, .weight_decay = 0}});
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/shape.hpp"

namespace rev::train {

/// A group of parameters: the first group whose `match` accepts a parameter owns it; parameters
/// no group accepts use the optimiser's options unchanged.
struct param_group {
  std::string name{};  // names the group in errors
  std::function<bool(const std::string& name, const Shape& shape)> match{};
  double lr_scale = 1;                   // lr = options.lr * lr_scale
  std::optional<double> weight_decay{};  // default: options.weight_decay
};

/// Matches parameters with one element (Fixup's scalar biases and multipliers).
inline auto scalars() {
  return [](const std::string&, const Shape& s) { return s.numel() == 1; };
}
/// Matches parameters of rank <= r (rank_at_most(1): biases and normalisation weights).
inline auto rank_at_most(int r) {
  return [r](const std::string&, const Shape& s) { return s.rank() <= r; };
}
/// Matches parameters whose name contains `part`.
inline auto name_contains(std::string part) {
  return
      [part = std::move(part)](const std::string& name, const Shape&) { return name.find(part) != std::string::npos; };
}

namespace detail {

/// The learning-rate multiplier and weight decay of one parameter.
struct group_settings {
  double lr_scale = 1;
  std::optional<double> weight_decay;  // empty: the optimiser's current options.weight_decay
};

/// Validates `groups` and assigns parameters to them; call assign() per parameter, then done().
class group_resolver {
 public:
  group_resolver(const char* who, const std::vector<param_group>& groups)
      : who_(who), groups_(groups), used_(groups.size(), false) {
    for (const auto& g : groups_) {
      check<value_error>(static_cast<bool>(g.match), who_, ": parameter group '", g.name, "' has no match predicate");
      check<value_error>(g.lr_scale >= 0, who_, ": parameter group '", g.name, "' has lr_scale ", g.lr_scale,
                         ", expected >= 0");
      check<value_error>(!g.weight_decay || *g.weight_decay >= 0, who_, ": parameter group '", g.name,
                         "' has weight_decay ", g.weight_decay.value_or(0), ", expected >= 0");
    }
  }
  group_settings assign(const std::string& name, const Shape& shape) {
    for (std::size_t i = 0; i < groups_.size(); ++i)
      if (groups_[i].match(name, shape)) {
        used_[i] = true;
        return {groups_[i].lr_scale, groups_[i].weight_decay};
      }
    return {};
  }
  void done() const {
    for (std::size_t i = 0; i < groups_.size(); ++i)
      check<value_error>(used_[i], who_, ": parameter group '", groups_[i].name, "' matches no parameter");
  }

 private:
  const char* who_;
  const std::vector<param_group>& groups_;
  std::vector<bool> used_;
};

}  // namespace detail

}  // namespace rev::train
