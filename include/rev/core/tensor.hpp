// rev::Tensor<T, B>: a dense row-major (NCHW for images) tensor with runtime extents on
// backend B, and rev::TensorView<T>: a non-owning view of the same layout.
//
// Copying a Tensor copies a handle: both handles share one buffer (like torch::Tensor).
// Use clone() for a deep copy. Buffers are counted by rev::memory<B> while they live. Element
// access t(n, c, h, w) checks its indices in debug builds (!NDEBUG) only.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <type_traits>

#include "rev/core/device.hpp"
#include "rev/core/errors.hpp"
#include "rev/core/memory.hpp"
#include "rev/core/shape.hpp"

namespace rev {

/// The element types rev computes in.
template <class T>
concept Scalar = std::same_as<T, float> || std::same_as<T, double>;

namespace detail {

// One allocation, counted by rev::memory<B> from construction to destruction.
template <class B>
class buffer {
 public:
  explicit buffer(std::size_t bytes) : bytes_(bytes), ptr_(allocator<B>::allocate(bytes)) {
    memory<B>::on_allocate(bytes_);
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() {
    allocator<B>::deallocate(ptr_, bytes_);
    memory<B>::on_free(bytes_);
  }
  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace detail

template <Scalar T, class B = cpu>
class Tensor {
 public:
  using value_type = T;
  using backend = B;
  static_assert(sizeof(allocator<B>) > 0);  // names the missing backend header, see device.hpp

  /// An empty tensor (rank 0, no buffer).
  Tensor() = default;
  /// A tensor of the given extents, zero-filled.
  explicit Tensor(const Shape& shape) : Tensor(uninitialized(shape)) { fill(T(0)); }

  /// A tensor whose elements are left uninitialised (for outputs that are fully written).
  static Tensor uninitialized(const Shape& shape) {
    for (index_t d : shape)
      if (d < 0) throw shape_error(detail::concat("rev::Tensor: negative extent in ", shape));
    const index_t n = shape.numel();
    if (n < 0 || static_cast<std::size_t>(n) > (std::size_t{1} << 56) / sizeof(T))
      throw shape_error(detail::concat("rev::Tensor: extents ", shape, " are too large"));
    Tensor t;
    t.shape_ = shape;
    t.buffer_ = std::make_shared<detail::buffer<B>>(static_cast<std::size_t>(n) * sizeof(T));
    t.data_ = static_cast<T*>(t.buffer_->data());
    return t;
  }
  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = uninitialized(shape);
    t.fill(value);
    return t;
  }
  /// A CPU tensor holding `values` (row-major).
  static Tensor from(const Shape& shape, std::initializer_list<T> values) requires std::same_as<B, cpu> {
    check<shape_error>(static_cast<index_t>(values.size()) == shape.numel(), "rev::Tensor::from: ", values.size(),
                       " values for extents ", shape, " (", shape.numel(), " elements)");
    Tensor t = uninitialized(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  index_t size(int i) const { return shape_[i]; }
  index_t numel() const { return shape_.numel(); }
  bool empty() const { return buffer_ == nullptr; }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }

  T* data() { return data_; }
  const T* data() const { return data_; }

  /// Host element access (CPU only), e.g. x(n, c, h, w).
  template <std::integral... I>
  T& operator()(I... idx) requires std::same_as<B, cpu> {
    return data_[offset(idx...)];
  }
  template <std::integral... I>
  const T& operator()(I... idx) const requires std::same_as<B, cpu> {
    return data_[offset(idx...)];
  }
  T* begin() requires std::same_as<B, cpu> { return data_; }
  T* end() requires std::same_as<B, cpu> { return data_ + numel(); }
  const T* begin() const requires std::same_as<B, cpu> { return data_; }
  const T* end() const requires std::same_as<B, cpu> { return data_ + numel(); }

  /// Sets every element to `value` (on a device backend: asynchronously, on its current stream).
  void fill(T value) {
    if constexpr (std::same_as<B, cpu>) std::fill(data_, data_ + numel(), value);
    else kernels<B>::fill(data_, numel(), value);
  }

  /// A deep copy with its own buffer.
  Tensor clone() const {
    Tensor t = uninitialized(shape_);
    if constexpr (std::same_as<B, cpu>) {
      if (numel() > 0) std::memcpy(t.data_, data_, bytes());
    } else {
      kernels<B>::copy(t.data_, data_, bytes());
    }
    return t;
  }

  /// The same buffer seen with other extents of the same element count.
  Tensor reshape(const Shape& shape) const {
    check<shape_error>(shape.numel() == numel(), "rev::Tensor::reshape: cannot view ", shape_, " as ", shape);
    Tensor t = *this;
    t.shape_ = shape;
    return t;
  }

  /// Whether this handle is the only one holding its buffer (safe to overwrite in place).
  bool unique() const { return buffer_.use_count() == 1; }
  bool shares_buffer_with(const Tensor& other) const { return buffer_ && buffer_ == other.buffer_; }

 private:
  // Debug builds (!NDEBUG) check the number of indices and each index's range.
  template <class... I>
  index_t offset(I... idx) const {
    static_assert(sizeof...(I) <= Shape::max_rank);
    const index_t ids[] = {static_cast<index_t>(idx)...};
    constexpr int count = static_cast<int>(sizeof...(I));
#ifndef NDEBUG
    check<shape_error>(count == shape_.rank(), "rev::Tensor: ", count, " indices into a tensor of extents ", shape_);
    for (int i = 0; i < count; ++i)
      check<shape_error>(ids[i] >= 0 && ids[i] < shape_[i], "rev::Tensor: index ", ids[i], " of dimension ", i,
                         " is out of range for extents ", shape_);
#endif
    index_t off = 0;
    for (int i = 0; i < count; ++i) off = off * shape_[i] + ids[i];
    return off;
  }

  std::shared_ptr<detail::buffer<B>> buffer_;
  T* data_ = nullptr;
  Shape shape_;
};

/// Throws rev::shape_error naming `who` unless x has the given extents.
template <class T, class B>
void expect_shape(const Tensor<T, B>& x, const Shape& expected, const char* who, const char* what = "input") {
  check<shape_error>(x.shape() == expected, who, ": ", what, " has extents ", x.shape(), ", expected ", expected);
}

/// Throws rev::shape_error naming `who` unless x has the given rank.
template <class T, class B>
void expect_rank(const Tensor<T, B>& x, int rank, const char* who, const char* what = "input") {
  check<shape_error>(x.rank() == rank, who, ": ", what, " has rank ", x.rank(), " (extents ", x.shape(),
                     "), expected rank ", rank);
}

/// Copies src into dst of the same extents, within or across backends (waits for a device when
/// the destination is on the host).
template <Scalar T, class To, class From>
void copy_into(Tensor<T, To>& dst, const Tensor<T, From>& src, const char* who = "rev::copy_into") {
  check<shape_error>(dst.shape() == src.shape(), who, ": destination has extents ", dst.shape(), ", source ",
                     src.shape());
  if (src.numel() == 0) return;
  if constexpr (std::same_as<To, cpu> && std::same_as<From, cpu>) std::memcpy(dst.data(), src.data(), src.bytes());
  else if constexpr (std::same_as<From, cpu>) kernels<To>::upload(dst.data(), src.data(), src.bytes());
  else if constexpr (std::same_as<To, cpu>) kernels<From>::download(dst.data(), src.data(), src.bytes());
  else if constexpr (std::same_as<To, From>) kernels<To>::copy(dst.data(), src.data(), src.bytes());
  else static_assert(detail::dependent_false<To>, "rev::copy_into: copies between two device backends go via rev::cpu");
}

/// x on backend To: the same handle when it is there already, else a copy, e.g.
/// rev::to<rev::cuda>(host_tensor), rev::to<rev::cpu>(device_tensor).
template <class To, Scalar T, class From>
Tensor<T, To> to(const Tensor<T, From>& x) {
  if constexpr (std::same_as<To, From>) {
    return x;
  } else {
    Tensor<T, To> y = Tensor<T, To>::uninitialized(x.shape());
    copy_into(y, x, "rev::to");
    return y;
  }
}

}  // namespace rev

// The ops of other backends, declared once Tensor is complete.
