// Gradient-norm clipping, as torch.nn.utils.clip_grad_norm_ (PyTorch 1.13):
//   total = || (||g_1||_p, ..., ||g_k||_p) ||_p   over every parameter gradient g_i
//           (p = infinity: max_i max |g_i|)
//   coef  = max_norm / (total + 1e-6);  if coef < 1, every g_i *= coef
// The norms are accumulated in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "rev/core/layer.hpp"

namespace rev::train {

/// Clips the gradients of every parameter of `model` in place and returns their total p-norm
/// before clipping. norm_type is p > 0 or infinity. With error_if_nonfinite, a NaN or infinite
/// total norm raises rev::value_error instead of scaling the gradients by NaN.
template <class Model>
double clip_grad_norm_(Model& model, double max_norm, double norm_type = 2, bool error_if_nonfinite = false) {
  constexpr const char* who = "rev::train::clip_grad_norm_";
  check<value_error>(max_norm >= 0, who, ": max_norm ", max_norm, " must be non-negative");
  check<value_error>(norm_type > 0, who, ": norm_type ", norm_type, " must be positive (or infinity)");
  const bool inf = std::isinf(norm_type);
  double acc = 0;
  model.for_each_parameter([&](const std::string&, auto& p) {
    static_assert(std::same_as<typename std::remove_cvref_t<decltype(p.grad)>::backend, cpu>,
                  "rev::train::clip_grad_norm_: CPU-only for now (it loops over host memory); the model must run on "
                  "rev::cpu");
    const auto* g = p.grad.data();
    double n = 0;
    for (index_t i = 0; i < p.grad.numel(); ++i) {
      const double a = std::abs(static_cast<double>(g[i]));
      if (inf) n = std::max(n, a);
      else if (norm_type == 2) n += a * a;
      else n += std::pow(a, norm_type);
    }
    acc = inf ? std::max(acc, n) : acc + n;  // max_i ||g_i||_inf, or sum_i ||g_i||_p^p
  });
  const double total = inf ? acc : norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1 / norm_type);
  check<value_error>(!error_if_nonfinite || std::isfinite(total), who, ": the total norm of order ", norm_type,
                     " of the gradients is ", total, "; set error_if_nonfinite = false to clip anyway");
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    model.for_each_parameter([&](const std::string&, auto& p) {
      using T = std::remove_reference_t<decltype(*p.grad.data())>;
      const T c = static_cast<T>(coef);
      for (index_t i = 0; i < p.grad.numel(); ++i) p.grad.data()[i] *= c;
    });
  return total;
}

}  // namespace rev::train
