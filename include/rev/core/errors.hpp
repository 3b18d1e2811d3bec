// Error types of rev. Every failure a user can cause (bad shapes, bad files, non-finite
// losses) is reported as an exception derived from rev::error, with a message that names the
// layer, op or key and the expected vs. actual values.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace rev {

/// Base class of every exception rev throws.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A tensor's extents do not fit the op or block it is given to.
struct shape_error : error {
  using error::error;
};

/// A file cannot be read or written, or its contents do not match what is expected.
struct io_error : error {
  using error::error;
};

/// A value is out of its domain: a bad option, or a non-finite loss.
struct value_error : error {
  using error::error;
};

namespace detail {

template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace detail

/// Throws E with the streamed arguments as message when `cond` is false.
template <class E = error, class... Args>
void check(bool cond, Args&&... args) {
  if (!cond) throw E(detail::concat(std::forward<Args>(args)...));
}

}  // namespace rev
