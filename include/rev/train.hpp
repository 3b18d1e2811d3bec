// Training utilities: optimisers (SGD, AdamW) with parameter groups, the cosine schedule with
// warm-up, gradient-norm clipping, the weight EMA, the NaN guard and checkpoints. The
// Fashion-MNIST loader is separate (<rev/data/fashion_mnist.hpp>, which needs zlib);
// cross-entropy with label smoothing is rev::ops::cross_entropy (<rev/ops/loss.hpp>).
#pragma once

#include "rev/cpu.hpp"
#include "rev/ops/loss.hpp"
#include "rev/train/adamw.hpp"
#include "rev/train/checkpoint.hpp"
#include "rev/train/clip.hpp"
#include "rev/train/ema.hpp"
#include "rev/train/guard.hpp"
#include "rev/train/param_groups.hpp"
#include "rev/train/schedule.hpp"
#include "rev/train/sgd.hpp"
#include "rev/train/state.hpp"
