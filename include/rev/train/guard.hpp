// The NaN guard of a training loop: stop with a clear error the first time the loss is not a
// finite number, instead of training on NaN weights.
#pragma once

#include <cmath>
#include <cstdint>

#include "rev/core/errors.hpp"

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

}  // namespace rev::train
