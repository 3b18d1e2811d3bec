// Streams. Every rev op on rev::cuda runs asynchronously on the calling thread's current
// stream: cudaStreamPerThread unless a rev::gpu::stream_guard names another. Device memory a
// tensor frees is reused by later work on any thread or stream only after the work queued on
// the freeing stream is done (an event, allocator.hpp).
#pragma once

#include <cuda_runtime.h>

#include "rev/cuda/error.hpp"

namespace rev::gpu {

namespace detail {
inline cudaStream_t& current_stream_slot() {
  thread_local cudaStream_t s = cudaStreamPerThread;
  return s;
}
}  // namespace detail

/// The stream rev's CUDA ops of this thread run on.
inline cudaStream_t current_stream() { return detail::current_stream_slot(); }

/// Waits until all work on the current stream is done; raises an asynchronous error of it.
inline void synchronize() { REV_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

/// An owned, non-blocking CUDA stream.
class stream {
 public:
  stream() { REV_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() { cudaStreamDestroy(s_); }
  cudaStream_t get() const { return s_; }
  void synchronize() const { REV_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_{};
};

/// Makes `s` the current stream of this thread for the guard's lifetime.
class stream_guard {
 public:
  explicit stream_guard(cudaStream_t s) : previous_(detail::current_stream_slot()) {
    detail::current_stream_slot() = s;
  }
  explicit stream_guard(const stream& s) : stream_guard(s.get()) {}
  stream_guard(const stream_guard&) = delete;
  stream_guard& operator=(const stream_guard&) = delete;
  ~stream_guard() { detail::current_stream_slot() = previous_; }

 private:
  cudaStream_t previous_;
};

/// Whether a CUDA device is present (false, not an error, on a machine without one).
inline bool device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace rev::gpu
