// Eigen's core, as every CPU kernel includes it.
//
// GCC raises two false -Wmaybe-uninitialized warnings in code that Eigen inlines. They are
// silenced for this one include, and only where they occur; everything else keeps the warning:
// - GCC 12 with AVX-512: '__Y' in GCC's own intrinsics (avx512fintrin.h's _mm512_undefined_ps
//   and friends are self-initialised on purpose) once Eigen's matrix-product kernel or its
//   transposes are inlined: GCC bug 105593, fixed in GCC 13. At -O1/-O2 GCC calls the same
//   warning -Wuninitialized, so both are silenced there.
// - Eigen 5 (the first with an <Eigen/Version> header): inner_product_impl::run (InnerProduct.h)
//   sets its partial sums presult1..3 only when there are enough packets to use them, which GCC's
//   flow analysis does not follow (GCC's false-positive meta-bug 24639).
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && ((__GNUC__ == 12 && defined(__AVX512F__)) || __has_include(<Eigen/Version>))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#if __GNUC__ == 12 && defined(__AVX512F__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
