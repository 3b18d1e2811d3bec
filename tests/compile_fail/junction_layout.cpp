// A Linear (features in the last extent) straight after a Conv2d (an NCHW map): the widths agree,
// the layouts do not. The Chain names junction 0 and both signatures.
#include <rev/graph/chain.hpp>
#include <rev/nn/conv2d.hpp>
#include <rev/nn/flatten.hpp>
#include <rev/nn/linear.hpp>
#include <rev/nn/pool.hpp>

#ifdef REV_KO
rev::Chain<rev::nn::Conv2d<3, 8>, rev::nn::Linear<8, 10>> net;
#else
rev::Chain<rev::nn::Conv2d<3, 8>, rev::nn::GlobalAvgPool<float>, rev::nn::Flatten<float>, rev::nn::Linear<8, 10>> net;
#endif
int main() {}
