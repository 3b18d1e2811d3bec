// rev's CPU backend: every op of rev::ops (rev/ops/) on host memory, with Eigen's GEMM, rev's own
// kernels and the thread pool of rev/core/parallel.hpp. It is the default backend (B = rev::cpu)
// of every layer, coupling and model, whose headers include it; a program that includes only
// rev/ops/ headers includes it to run the ops on CPU tensors.
#pragma once

#include "rev/cpu/kernels.hpp"
