// rev::Affine<S,T> whose shift network T does not map x1's channels to x2's.
#include <rev/affine.hpp>
#include <rev/nn/conv2d.hpp>

using S = rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;
#ifdef REV_KO
using T = rev::nn::Conv2d<4, 6, rev::nn::conv_opts{.kernel = 3}>;
#else
using T = rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;
#endif
rev::Affine<S, T> block;
int main() {}
