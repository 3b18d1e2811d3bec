// rev::Chain whose second block does not take the first block's output channels.
#include <rev/graph/chain.hpp>
#include <rev/nn/conv2d.hpp>

#ifdef REV_KO
rev::Chain<rev::nn::Conv2d<3, 8>, rev::nn::Conv2d<6, 6>> net;
#else
rev::Chain<rev::nn::Conv2d<3, 8>, rev::nn::Conv2d<8, 6>> net;
#endif
int main() {}
