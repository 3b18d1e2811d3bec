// An op that a backend's op set lacks is a compile error naming the op and the backend, never a
// silent fallback. fake_device's op set has add but not mul.
#include <rev/ops/elementwise.hpp>

struct fake_device {
  static constexpr const char* name = "fake_device";
};
template <>
struct rev::allocator<fake_device> : rev::allocator<rev::cpu> {};
template <>
struct rev::kernels<fake_device> {
  template <rev::Scalar T>
  static rev::Tensor<T, fake_device> add(const rev::Tensor<T, fake_device>& a, const rev::Tensor<T, fake_device>&) {
    return a;
  }
};

int main() {
  const auto a = rev::Tensor<float, fake_device>::uninitialized({2}), b = a;
#ifdef REV_KO
  rev::ops::mul(a, b);
#else
  rev::ops::add(a, b);
#endif
}
