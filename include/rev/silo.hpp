// Entry header: the RevSilo coupling, the additive coupling, and Chain/Repeat execution.
#pragma once

#include "rev/coupling/additive.hpp"
#include "rev/coupling/silo.hpp"
#include "rev/graph/chain.hpp"
#include "rev/testing/check_invertible.hpp"
