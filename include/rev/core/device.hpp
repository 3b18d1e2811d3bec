// Backend tags. A backend is a template parameter of tensors and layers; the ops are
// overloads on it. rev::cpu is always available. rev::cuda is declared in every build so that
// code can name it, but it is usable only where <rev/cuda.hpp> is included from a translation
// unit compiled as CUDA (DESIGN.md invariant 2).
#pragma once

#include <cstddef>
#include <new>

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

/// The op set of a backend other than rev::cpu: a class whose static member functions are the
/// ops of rev::ops under the same names (rev/cuda/kernels.hpp defines it for rev::cuda). The
/// CPU ops are plain overloads; rev::ops forwards a non-CPU tensor to kernels<B> (see
/// rev/core/dispatch.hpp), which is looked up when a layer template is instantiated.
template <class B>
struct kernels {
  static_assert(detail::dependent_false<B>,
                "rev::cuda: the CUDA backend needs <rev/cuda.hpp>, included from a translation unit "
                "compiled as CUDA (nvcc); CPU-only programs use rev::cpu");
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
