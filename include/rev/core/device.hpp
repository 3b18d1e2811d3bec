// Backend tags. A backend is a template parameter of tensors and layers; every op of rev::ops
// (rev/ops/) calls the backend's op set kernels<B>. rev::cpu is always available. rev::cuda is declared in every build
// so that code can name it, but it is usable only where <rev/cuda.hpp> is included from a translation unit compiled as
// CUDA (DESIGN.md invariant 2).
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>

namespace rev {

struct cpu {
  static constexpr const char* name = "cpu";
};
struct cuda {
  static constexpr const char* name = "cuda";
};

namespace detail {
template <class>
inline constexpr bool dependent_false = false;
}  // namespace detail

/// How a backend allocates raw memory. Specialised per backend; the primary template is what
/// a program sees when it names a backend whose header is not included.
template <class B>
struct allocator {
  static_assert(detail::dependent_false<B>,
                "rev::cuda: the CUDA backend needs <rev/cuda.hpp>, included from a translation unit "
                "compiled as CUDA (nvcc); CPU-only programs use rev::cpu");
};

/// The op set of a backend: a class whose static member functions are the kernels of the ops of
/// rev::ops under the same names (rev/cpu/kernels.hpp defines it for rev::cpu, rev/cuda/kernels.hpp
/// for rev::cuda). rev::ops::name(x, ...) with x a Tensor<T, B> calls kernels<B>::name(x, ...),
/// looked up when the op is instantiated: an op a backend lacks is the compile error
/// "'name' is not a member of 'rev::kernels<B>'" (GCC; Clang: "no member named 'name' in ...").
template <class B>
struct kernels {
  static_assert(!std::is_same_v<B, cuda>,
                "rev::cuda: the CUDA backend needs <rev/cuda.hpp>, included from a translation unit "
                "compiled as CUDA (nvcc); CPU-only programs use rev::cpu");
  static_assert(!std::is_same_v<B, cpu>,
                "rev::cpu: the CPU kernels are in <rev/cpu.hpp> (every layer, coupling and model header, "
                "and <rev/rev.hpp>, include it; a program that uses only rev/ops/ headers includes it)");
};

template <>
struct allocator<cpu> {
  static constexpr std::size_t alignment = 64;  // one cache line; enough for AVX-512 loads
  static void* allocate(std::size_t bytes) {
    return ::operator new (bytes == 0 ? alignment : bytes, std::align_val_t{alignment});
  }
  static void deallocate(void* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{alignment}); }
};

}  // namespace rev
