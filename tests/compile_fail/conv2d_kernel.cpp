// rev::nn::Conv2d<In,Out,opts> with an empty kernel.
#include <rev/nn/conv2d.hpp>

#ifdef REV_KO
rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 0}> conv;
#else
rev::nn::Conv2d<4, 4, rev::nn::conv_opts{.kernel = 1}> conv;
#endif
int main() {}
