// Memory accounting: the bytes held by rev tensors, per backend. Every memory figure rev
// reports (benchmarks, the Stored-vs-Reversible comparisons) is read from here.
#pragma once

#include <atomic>
#include <cstddef>

#include "rev/core/device.hpp"

namespace rev {

/// Current and peak bytes held by rev tensors on backend B. Thread-safe.
template <class B>
class memory {
 public:
  static std::size_t current() { return current_.load(std::memory_order_relaxed); }
  static std::size_t peak() { return peak_.load(std::memory_order_relaxed); }
  /// Restarts peak tracking from the bytes held now.
  static void reset_peak() { peak_.store(current(), std::memory_order_relaxed); }

  static void on_allocate(std::size_t bytes) {
    std::size_t now = current_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::size_t old = peak_.load(std::memory_order_relaxed);
    while (now > old && !peak_.compare_exchange_weak(old, now, std::memory_order_relaxed)) {}
  }
  static void on_free(std::size_t bytes) { current_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  inline static std::atomic<std::size_t> current_{0};
  inline static std::atomic<std::size_t> peak_{0};
};

/// Measures the peak bytes allocated above what was held when the scope began:
///   rev::peak_scope<rev::cpu> s; run_step(); auto bytes = s.peak_above_start();
template <class B>
class peak_scope {
 public:
  peak_scope() : start_(memory<B>::current()) { memory<B>::reset_peak(); }
  std::size_t start() const { return start_; }
  std::size_t peak_above_start() const {
    std::size_t p = memory<B>::peak();
    return p > start_ ? p - start_ : 0;
  }

 private:
  std::size_t start_;
};

}  // namespace rev
