// The CUDA backend's caching allocator. cudaMalloc and cudaFree synchronise the device and cost
// tens of microseconds; a training step allocates and frees thousands of buffers of a few dozen
// sizes. So freed blocks are kept in bins keyed by (rounded size, stream) and handed out again
// to later requests of the same size on the same stream; stream order then guarantees the
// previous user's kernels are done. Blocks go back to the driver only when an allocation fails
// (then it retries once) or on rev::gpu::empty_cache().
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
    const cudaStream_t s = current_stream();
    std::lock_guard lock(mutex_);
    auto& bin = free_[key{size, s}];
    if (!bin.empty()) {
      void* p = bin.back();
      bin.pop_back();
      stats_.cached -= size;
      live_[p] = block{size, s};
      return p;
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
    live_[p] = block{size, s};
    return p;
  }

  void deallocate(void* p) noexcept {
    if (p == nullptr) return;
    std::lock_guard lock(mutex_);
    const auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing sensible to do in a noexcept path
    const block b = it->second;
    live_.erase(it);
    free_[key{b.size, b.stream}].push_back(p);
    stats_.cached += b.size;
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
  struct key {
    std::size_t size;
    cudaStream_t stream;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept {
      return std::hash<std::size_t>{}(k.size) ^ (std::hash<const void*>{}(k.stream) << 1);
    }
  };
  struct block {
    std::size_t size;
    cudaStream_t stream;
  };

  caching_allocator() = default;

  void release_cached() {
    cudaDeviceSynchronize();
    for (auto& [k, ptrs] : free_) {
      for (void* p : ptrs) cudaFree(p);
      stats_.reserved -= k.size * ptrs.size();
      stats_.cached -= k.size * ptrs.size();
    }
    free_.clear();
  }

  mutable std::mutex mutex_;
  std::unordered_map<key, std::vector<void*>, key_hash> free_;
  std::unordered_map<void*, block> live_;
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
