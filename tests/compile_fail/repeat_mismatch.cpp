// rev::Repeat of a block that changes the channel count.
#include <rev/graph/chain.hpp>
#include <rev/nn/conv2d.hpp>

#ifdef REV_KO
rev::Repeat<4, rev::nn::Conv2d<3, 8>> net;
#else
rev::Repeat<4, rev::nn::Conv2d<8, 8>> net;
#endif
int main() {}
