// The caching allocator across host threads: a block that one thread frees while its kernels
// still run is reused by another thread's stream only after them (allocator.hpp: an event at free).
#include <doctest/doctest.h>

#include <cstdint>
#include <future>
#include <thread>
#include <vector>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

namespace {

// Spins for about `cycles` clock cycles, then writes `value` to every element.
__global__ void slow_fill(float* p, rev::index_t n, float value, long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {}
  for (rev::index_t i = threadIdx.x; i < n; i += blockDim.x) p[i] = value;
}

}  // namespace

TEST_CASE("cuda allocator: a block freed by one thread is reused by another only after its kernels") {
  constexpr rev::index_t n = 1 << 16;
  rev::gpu::empty_cache();
  std::promise<const void*> freed;
  std::promise<void> reused;
  // Thread A: a kernel that writes 1 after ~0.2 s (at 1-2 GHz), and the block freed at once.
  std::thread a([&] {
    auto t = rev::Tensor<float, rev::cuda>::uninitialized({n});
    slow_fill<<<1, 256, 0, rev::gpu::current_stream()>>>(t.data(), n, 1.0f, 300'000'000LL);
    REV_CUDA_CHECK(cudaGetLastError());
    const void* p = t.data();
    t = rev::Tensor<float, rev::cuda>();
    freed.set_value(p);
    reused.get_future().wait();  // keep this thread's stream alive until B has queued its work
    rev::gpu::synchronize();
  });
  // Thread B: the same size, so the same block; it writes 2. Its stream must wait for A's kernel,
  // so once the device is idle the block holds 2 (without the wait, A's late 1s overwrite it).
  const void* p = freed.get_future().get();
  std::vector<float> host(static_cast<std::size_t>(n));
  std::thread b([&] {
    rev::Tensor<float, rev::cuda> t = rev::Tensor<float, rev::cuda>::full({n}, 2.0f);
    CHECK(static_cast<const void*>(t.data()) == p);  // the test needs the reuse it checks
    reused.set_value();
    REV_CUDA_CHECK(cudaDeviceSynchronize());
    REV_CUDA_CHECK(cudaMemcpy(host.data(), t.data(), n * sizeof(float), cudaMemcpyDeviceToHost));
  });
  b.join();
  a.join();
  rev::index_t wrong = 0;
  for (float v : host) wrong += v != 2.0f;
  CHECK(wrong == 0);
}

TEST_CASE("cuda allocator: many threads allocating and freeing keep their data") {
  constexpr int threads = 4, rounds = 200;
  std::vector<int> errors(threads, 0);
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k)
    pool.emplace_back([&, k] {
      for (int r = 0; r < rounds; ++r) {
        const float value = static_cast<float>(k * rounds + r);
        auto t = rev::Tensor<float, rev::cuda>::full({1024 + 512 * (r % 3)}, value);
        const rev::Tensor<float> h = rev::to<rev::cpu>(t);
        for (float v : h) errors[static_cast<std::size_t>(k)] += v != value;
      }
    });
  for (std::thread& t : pool) t.join();
  for (int e : errors) CHECK(e == 0);
}
