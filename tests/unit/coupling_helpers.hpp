// Inner functions and counters shared by the coupling tests.
#pragma once

#include "helpers.hpp"
#include "rev/core/layer.hpp"
#include "rev/nn/activation.hpp"
#include "rev/nn/batchnorm.hpp"
#include "rev/nn/conv2d.hpp"
#include "rev/nn/sequential.hpp"
#include "rev/testing/check_invertible.hpp"

namespace rev::test {

/// An MBConv-like inner function: conv kxk -> BatchNorm -> hard-swish -> conv 1x1.
template <int In, int Out, typename T, int K = 3, int Stride = 1>
using ConvBlock = nn::Sequential<nn::Conv2d<In, Out, nn::conv_opts{.kernel = K, .stride = Stride}, T>,
                                 nn::BatchNorm2d<Out, nn::bn_opts{}, T>, nn::HardSwish<T>,
                                 nn::Conv2d<Out, Out, nn::conv_opts{.kernel = 1}, T>>;

/// Counts the evaluations of a layer's forward (with or without cache).
template <class L>
struct Counted : L {
  inline static int evaluations = 0;
  template <class... A>
  auto forward(A&&... a) {
    ++evaluations;
    return L::forward(std::forward<A>(a)...);
  }
};

/// Like Counted, but all instantiations add to one shared count (for blocks with many transforms).
inline int total_evaluations = 0;
template <class L>
struct CountedTotal : L {
  template <class... A>
  auto forward(A&&... a) {
    ++total_evaluations;
    return L::forward(std::forward<A>(a)...);
  }
};

/// Stores a state's tensors as fresh copies (so in-place updates elsewhere cannot alias them).
template <class S>
S clone_state(const S& s) {
  if constexpr (requires { s.clone(); }) return s.clone();
  else {
    S out;
    for (std::size_t i = 0; i < s.size(); ++i) out[i] = s[i].clone();
    return out;
  }
}

}  // namespace rev::test
