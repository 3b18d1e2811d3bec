// rev: reversible neural networks in header-only C++20. Umbrella header for CPU users; it never
// includes anything of the CUDA backend.
#pragma once

#include "rev/core/errors.hpp"
#include "rev/core/layer.hpp"
#include "rev/core/memory.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/rng.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/activation.hpp"
#include "rev/cpu/elementwise.hpp"
#include "rev/io/safetensors.hpp"
#include "rev/nn/activation.hpp"
#include "rev/testing/check_gradients.hpp"
