// REV_HOST_DEVICE marks pure functions that the CUDA backend also calls in device code (the
// activations' formulas, the Philox generator): __host__ __device__ when compiled by nvcc,
// nothing for a plain C++ compiler.
#pragma once

#if defined(__CUDACC__)
#define REV_HOST_DEVICE __host__ __device__
#else
#define REV_HOST_DEVICE
#endif
