// Runtime extents of a tensor: rank <= 6, row-major (the last extent is contiguous).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>

#include "rev/core/errors.hpp"

namespace rev {

using index_t = std::int64_t;

class Shape {
 public:
  static constexpr int max_rank = 6;

  constexpr Shape() = default;
  constexpr Shape(std::initializer_list<index_t> dims) {
    if (dims.size() > max_rank) throw shape_error("rev::Shape: rank above 6");
    for (index_t d : dims) dims_[rank_++] = d;
  }
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) {
      if (rank_ == max_rank) throw shape_error("rev::Shape: rank above 6");
      dims_[rank_++] = static_cast<index_t>(*first);
    }
  }

  constexpr int rank() const { return rank_; }
  /// Extent i; negative i counts from the back (-1 is the last extent). i outside [-rank, rank)
  /// throws rev::shape_error (always: the check is one comparison).
  constexpr index_t operator[](int i) const { return dims_[slot(i)]; }
  constexpr index_t& operator[](int i) { return dims_[slot(i)]; }
  /// The product of the extents. One that does not fit index_t throws rev::shape_error naming
  /// the extents (it would be undefined behaviour, and a tensor of 0 elements).
  constexpr index_t numel() const {
    if (std::find(begin(), end(), index_t{0}) != end()) return 0;
    index_t n = 1;
    for (index_t d : *this)
      if (__builtin_mul_overflow(n, d, &n)) overflow();
    return n;
  }
  constexpr const index_t* begin() const { return dims_.data(); }
  constexpr const index_t* end() const { return dims_.data() + rank_; }

  friend constexpr bool operator==(const Shape& a, const Shape& b) {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    s += ']';
    return s;
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

 private:
  constexpr std::size_t slot(int i) const {
    if (i < -rank_ || i >= rank_) out_of_range(i);
    return static_cast<std::size_t>(i < 0 ? i + rank_ : i);
  }
  [[noreturn]] void overflow() const {
    throw shape_error("rev::Shape: the element count of the extents " + str() + " overflows a 64-bit integer");
  }
  [[noreturn]] void out_of_range(int i) const {
    throw shape_error("rev::Shape: extent " + std::to_string(i) + " of the rank-" + std::to_string(rank_) +
                      " extents " + str() + " (valid: -" + std::to_string(rank_) + " to " + std::to_string(rank_ - 1) +
                      ")");
  }

  std::array<index_t, max_rank> dims_{};
  int rank_ = 0;
};

}  // namespace rev
