// Entry header: the affine coupling (RealNVP / Glow, with log-determinant) and the Chain/Repeat
// execution it runs in.
#pragma once

#include "rev/coupling/affine.hpp"
#include "rev/graph/chain.hpp"
