// rev::Cascade whose second block does not take what the first returns.
#include <rev/graph/cascade.hpp>
#include <rev/nn/conv2d.hpp>

using Down = rev::nn::Conv2d<4, 8, rev::nn::conv_opts{.kernel = 3, .stride = 2}>;
#ifdef REV_KO
rev::Cascade<Down, rev::nn::Conv2d<6, 16, rev::nn::conv_opts{.kernel = 3, .stride = 2}>> head;
#else
rev::Cascade<Down, rev::nn::Conv2d<8, 16, rev::nn::conv_opts{.kernel = 3, .stride = 2}>> head;
#endif
int main() {}
