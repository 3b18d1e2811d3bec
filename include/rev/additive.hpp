// Entry header: the additive coupling and the Chain/Repeat execution it runs in.
#pragma once

#include "rev/coupling/additive.hpp"
#include "rev/graph/chain.hpp"
#include "rev/testing/check_invertible.hpp"
