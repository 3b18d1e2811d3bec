// rev::nn::Sequential of layers whose channels do not chain.
#include <rev/nn/activation.hpp>
#include <rev/nn/conv2d.hpp>
#include <rev/nn/sequential.hpp>

#ifdef REV_KO
rev::nn::Sequential<rev::nn::Conv2d<3, 8>, rev::nn::ReLU<float>, rev::nn::Conv2d<4, 4>> f;
#else
rev::nn::Sequential<rev::nn::Conv2d<3, 8>, rev::nn::ReLU<float>, rev::nn::Conv2d<8, 4>> f;
#endif
int main() {}
