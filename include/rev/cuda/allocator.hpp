// The CUDA backend's caching allocator. cudaMalloc and cudaFree synchronise the device and cost
// tens of microseconds; a training step allocates and frees thousands of buffers of a few dozen
// sizes. So freed blocks are kept in bins keyed by their rounded size and handed out again to
// later requests of that size, from any thread and stream.
//
// Reuse is safe without host synchronisation: when a block is freed, an event is recorded on the
// freeing thread's current stream (the last work that may use it: a tensor used on several
// streams is synchronised by its user before it changes streams, as in CUDA generally), and the
// next owner's stream waits for that event before its first kernel. A stream handle alone would
// not do: cudaStreamPerThread is one handle value for every thread, but a different stream in
// each. Blocks go back to the driver only when an allocation fails (then it retries once) or on
// rev::gpu::empty_cache().
//
// Accounting: rev::memory<rev::cuda> counts the bytes tensors hold, exactly as rev::memory<cpu>
// does (the figures Stored vs Reversible comparisons use). reserved_bytes() is what the
// allocator holds from the driver (in use + cached); cudaMemGetInfo sees that plus the
// context, cuBLAS and cuDNN.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "rev/core/device.hpp"
#include "rev/cuda/error.hpp"
#include "rev/cuda/stream.hpp"

namespace rev::gpu {

/// What the allocator holds from the driver.
struct allocator_stats {
  std::size_t reserved = 0;        // bytes of all blocks obtained by cudaMalloc and not yet freed
  std::size_t cached = 0;          // of those, bytes in free blocks waiting for reuse
  std::size_t peak_reserved = 0;   // the largest `reserved` so far
  std::size_t device_mallocs = 0;  // number of cudaMalloc calls
};

/// Free and total device memory as the driver reports them (cudaMemGetInfo).
struct device_memory {
  std::size_t free = 0, total = 0;
};
inline device_memory device_memory_info() {
  device_memory m;
  REV_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
  return m;
}

class caching_allocator {
 public:
  /// The process-wide allocator. Never destroyed: tensors with static storage may outlive any
  /// destruction order.
  static caching_allocator& instance() {
    static caching_allocator* a = new caching_allocator;
    return *a;
  }

  /// Sizes are rounded to 512 bytes, and above 1 MiB to 2 MiB, so that the few dozen sizes of a
  /// training step share bins.
  static std::size_t round_size(std::size_t bytes) {
    constexpr std::size_t small = 512, large = std::size_t{2} << 20;
    if (bytes <= (std::size_t{1} << 20)) return (bytes + small - 1) / small * small;
    return (bytes + large - 1) / large * large;
  }

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const std::size_t size = round_size(bytes);
    std::lock_guard lock(mutex_);
    auto& bin = free_[size];
    if (!bin.empty()) {
      const cached_block b = bin.back();
      bin.pop_back();
      stats_.cached -= size;
      // The previous owner's work, ordered before this stream's next kernels.
      if (cudaStreamWaitEvent(current_stream(), b.freed, 0) != cudaSuccess) {
        cudaGetLastError();
        cudaEventSynchronize(b.freed);
      }
      events_.push_back(b.freed);
      live_[b.ptr] = size;
      return b.ptr;
    }
    void* p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();
      release_cached();
      if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        const device_memory m = device_memory_info();
        throw cuda_out_of_memory(rev::detail::concat(
            "rev::cuda: out of device memory allocating ", bytes, " bytes (", size, " rounded); rev holds ",
            stats_.reserved, " bytes, the device has ", m.free, " of ", m.total, " bytes free"));
      }
    }
    ++stats_.device_mallocs;
    stats_.reserved += size;
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
    live_[p] = size;
    return p;
  }

  void deallocate(void* p) noexcept {
    if (p == nullptr) return;
    std::lock_guard lock(mutex_);
    const auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing sensible to do in a noexcept path
    const std::size_t size = it->second;
    live_.erase(it);
    cudaEvent_t freed = take_event();
    if (freed == nullptr || cudaEventRecord(freed, current_stream()) != cudaSuccess) {
      // No event to order a reuse by (the device is failing): wait here, then the block is idle.
      cudaGetLastError();
      if (freed != nullptr) events_.push_back(freed);
      cudaDeviceSynchronize();
      cudaFree(p);
      stats_.reserved -= size;
      return;
    }
    free_[size].push_back(cached_block{p, freed});
    stats_.cached += size;
  }

  /// Returns every cached block to the driver (after the device finished all work).
  void empty_cache() {
    std::lock_guard lock(mutex_);
    release_cached();
  }

  allocator_stats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  struct cached_block {
    void* ptr;
    cudaEvent_t freed;  // recorded on the freeing thread's stream when the block was freed
  };

  caching_allocator() = default;

  // An event from the pool (timing off: recording and waiting are then cheapest); nullptr if the
  // driver cannot create one.
  cudaEvent_t take_event() noexcept {
    if (!events_.empty()) {
      cudaEvent_t e = events_.back();
      events_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return e;
  }

  void release_cached() {
    cudaDeviceSynchronize();
    for (auto& [size, blocks] : free_) {
      for (const cached_block& b : blocks) {
        cudaFree(b.ptr);
        events_.push_back(b.freed);
      }
      stats_.reserved -= size * blocks.size();
      stats_.cached -= size * blocks.size();
    }
    free_.clear();
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<cached_block>> free_;  // by rounded size
  std::unordered_map<void*, std::size_t> live_;                      // rounded size of each live block
  std::vector<cudaEvent_t> events_;                                  // idle events for reuse
  allocator_stats stats_;
};

/// The allocator's figures (reserved, cached, peak reserved, cudaMalloc count).
inline allocator_stats allocator_statistics() { return caching_allocator::instance().stats(); }

/// Returns cached blocks to the driver, e.g. before measuring with cudaMemGetInfo.
inline void empty_cache() { caching_allocator::instance().empty_cache(); }

}  // namespace rev::gpu

namespace rev {

template <>
struct allocator<cuda> {
  static void* allocate(std::size_t bytes) { return gpu::caching_allocator::instance().allocate(bytes); }
  static void deallocate(void* p, std::size_t) noexcept { gpu::caching_allocator::instance().deallocate(p); }
};

}  // namespace rev
