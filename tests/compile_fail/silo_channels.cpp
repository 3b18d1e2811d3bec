// rev::Silo whose down transform F<i,j> does not produce level j's channels.
#include <rev/nn/conv2d.hpp>
#include <rev/silo.hpp>

using L = rev::levels<4, 8>;
template <int I, int J>
#ifdef REV_KO
using F = rev::nn::Conv2d<L::channels[I], 5, rev::nn::conv_opts{.kernel = 3, .stride = 2}>;
#else
using F = rev::nn::Conv2d<L::channels[I], L::channels[J], rev::nn::conv_opts{.kernel = 3, .stride = 2}>;
#endif
template <int I, int J>
using G = rev::nn::Conv2d<L::channels[I], L::channels[J]>;
rev::Silo<L, F, G> silo;
int main() {}
