// A counter-based random number generator (Philox-4x32-10, Salmon et al., SC'11).
//
// Random number i of a stream is a pure function of (seed, offset + i), so a draw is
// described completely by the few bytes of an rng_state. Reversible recomputation keeps that
// state, not the mask it produced, and replays the identical draw in backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "rev/core/host_device.hpp"

namespace rev {

/// Where a stream of random numbers starts: the key and the index of its first number.
struct rng_state {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
  friend bool operator==(const rng_state&, const rng_state&) = default;
};

namespace philox {

/// The four 32-bit numbers of one Philox block (a plain array: std::array's operator[] is not
/// callable in CUDA device code).
struct numbers4 {
  std::uint32_t v[4];
  REV_HOST_DEVICE std::uint32_t operator[](std::size_t i) const { return v[i]; }
};

REV_HOST_DEVICE inline numbers4 block(std::uint64_t seed, std::uint64_t counter) {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter), c1 = static_cast<std::uint32_t>(counter >> 32);
  std::uint32_t c2 = 0, c3 = 0;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{m0} * c0, p1 = std::uint64_t{m1} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += w0;
    k1 += w1;
  }
  return {{c0, c1, c2, c3}};
}

/// The 32 random bits number i of the stream starting at s.
REV_HOST_DEVICE inline std::uint32_t bits(const rng_state& s, std::uint64_t i) {
  const std::uint64_t n = s.offset + i;
  return block(s.seed, n >> 2)[n & 3];
}

/// Uniform in [0, 1) with 24 bits of resolution (exactly representable in float and double).
REV_HOST_DEVICE inline double uniform(const rng_state& s, std::uint64_t i) {
  return (bits(s, i) >> 8) * (1.0 / 16777216.0);
}

}  // namespace philox

/// A stream of random numbers. draw(n) hands out the state of the next n numbers and advances.
/// Thread-safe: threads drawing from one generator get disjoint numbers (in the order they draw).
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0x5eed) : state_{seed, 0} {}
  Generator(const Generator& other) : state_(other.state()) {}
  Generator& operator=(const Generator& other) {
    set_state(other.state());
    return *this;
  }

  /// Reserves n numbers; the returned state regenerates exactly them.
  rng_state draw(std::uint64_t n) {
    std::lock_guard lock(mutex_);
    rng_state s = state_;
    state_.offset += (n + 3) & ~std::uint64_t{3};  // whole Philox blocks
    return s;
  }
  rng_state state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }
  void set_state(const rng_state& s) {
    std::lock_guard lock(mutex_);
    state_ = s;
  }
  void seed(std::uint64_t seed) { set_state({seed, 0}); }

 private:
  mutable std::mutex mutex_;
  rng_state state_;
};

/// The generator used when none is given: one for the process, shared by every thread and
/// context (thread-safe; which thread draws first decides who gets which numbers).
inline Generator& default_generator() {
  static Generator g;
  return g;
}

inline void manual_seed(std::uint64_t seed) { default_generator().seed(seed); }

}  // namespace rev
