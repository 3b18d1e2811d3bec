// Naming a CUDA tensor in a CPU-only translation unit.
#include <rev/core/tensor.hpp>

#ifdef REV_KO
rev::Tensor<float, rev::cuda> t;
#else
rev::Tensor<float, rev::cpu> t;
#endif
int main() {}
