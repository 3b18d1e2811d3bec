// rev::Additive<F,G> with a G whose input is not F's output.
#include <rev/additive.hpp>
#include <rev/nn/conv2d.hpp>

using F = rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;
#ifdef REV_KO
using G = rev::nn::Conv2d<6, 4, rev::nn::conv_opts{.kernel = 3}>;
#else
using G = rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;
#endif
rev::Additive<F, G> block;
int main() {}
