// rev::nn::Conv2d<In,Out,opts> whose groups do not divide the input channels.
#include <rev/nn/conv2d.hpp>

#ifdef REV_KO
rev::nn::Conv2d<6, 8, rev::nn::conv_opts{.kernel = 3, .groups = 4}> conv;
#else
rev::nn::Conv2d<8, 8, rev::nn::conv_opts{.kernel = 3, .groups = 4}> conv;
#endif
int main() {}
