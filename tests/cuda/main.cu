// The doctest main of the CUDA tests: exits 77 (CTest's "skipped") when no CUDA device is
// present, so the tests compile and register on any machine with nvcc and run where a GPU is.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "rev/cuda/stream.hpp"

int main(int argc, char** argv) {
  if (!rev::gpu::device_available()) {
    std::printf("skipped: no CUDA device on this machine\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
