// Entry header: RevCol's multi-level reversible unit and Chain/Repeat execution.
#pragma once

#include "rev/coupling/column.hpp"
#include "rev/graph/chain.hpp"
#include "rev/testing/check_invertible.hpp"
