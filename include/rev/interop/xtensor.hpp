// Host interop through xtensor: views of rev tensors as xtensor expressions, and .npy files.
// Needs xtensor (Debian: libxtensor-dev); nothing else in rev includes this header.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>

#include "rev/core/tensor.hpp"

namespace rev::interop {

namespace detail {
inline std::vector<std::size_t> extents(const Shape& s) {
  std::vector<std::size_t> e;
  for (index_t d : s) e.push_back(static_cast<std::size_t>(d));
  return e;
}
}  // namespace detail

/// A writable xtensor view of t's buffer (no copy). The view must not outlive t.
template <Scalar T>
auto as_xtensor(Tensor<T>& t) {
  return xt::adapt(t.data(), static_cast<std::size_t>(t.numel()), xt::no_ownership(), detail::extents(t.shape()));
}
template <Scalar T>
auto as_xtensor(const Tensor<T>& t) {
  return xt::adapt(t.data(), static_cast<std::size_t>(t.numel()), xt::no_ownership(), detail::extents(t.shape()));
}

/// A rev tensor holding the values of any xtensor expression (row-major copy).
template <Scalar T, class E>
Tensor<T> from_xtensor(const xt::xexpression<E>& expr) {
  const xt::xarray<T, xt::layout_type::row_major> a = expr.derived_cast();
  Shape shape(a.shape().begin(), a.shape().end());
  Tensor<T> t = Tensor<T>::uninitialized(shape);
  std::copy(a.begin(), a.end(), t.data());
  return t;
}

/// Writes t as a NumPy .npy file.
template <Scalar T>
void save_npy(const std::string& path, const Tensor<T>& t) {
  try {
    xt::dump_npy(path, as_xtensor(t));
  } catch (const std::exception& e) {
    throw io_error("rev::interop::save_npy: '" + path + "': " + e.what());
  }
}

/// Reads a NumPy .npy file of element type T (no conversion: a file of another type is an error).
template <Scalar T>
Tensor<T> load_npy(const std::string& path) {
  try {
    return from_xtensor<T>(xt::load_npy<T>(path));
  } catch (const std::exception& e) {
    throw io_error("rev::interop::load_npy: '" + path + "': " + e.what());
  }
}

}  // namespace rev::interop
