// rev::FixedPointResidual<G> with a g that changes the channel count (y = x + g(x) needs C -> C).
#include <rev/fixed_point.hpp>

#ifdef REV_KO
using G = rev::nn::SNConv2d<4, 8, rev::nn::conv_opts{.kernel = 3}>;
#else
using G = rev::nn::SNConv2d<4, 4, rev::nn::conv_opts{.kernel = 3}>;
#endif
rev::FixedPointResidual<G> block;
int main() {}
