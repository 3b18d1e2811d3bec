// rev::Additive with a shortcut whose G does not return F's width (y1 and y2 have one width).
#include <rev/additive.hpp>
#include <rev/nn/conv2d.hpp>

using S = rev::nn::Conv2d<4, 8, rev::nn::conv_opts{.kernel = 1, .stride = 2}>;
using F = rev::nn::Conv2d<4, 8, rev::nn::conv_opts{.kernel = 3, .stride = 2}>;
#ifdef REV_KO
rev::Additive<F, rev::nn::Conv2d<8, 6>, rev::coupling_layout::halves, S> block;
#else
rev::Additive<F, rev::nn::Conv2d<8, 8>, rev::coupling_layout::halves, S> block;
#endif
int main() {}
