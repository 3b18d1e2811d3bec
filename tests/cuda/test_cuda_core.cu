// The CUDA backend's core: the caching allocator's accounting, fill, clone, host <-> device copies.
#include <doctest/doctest.h>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

TEST_CASE("cuda: device tensors count their bytes like host tensors, and the allocator reuses blocks") {
  const std::size_t before = rev::memory<rev::cuda>::current();
  {
    rev::Tensor<float, rev::cuda> a({3, 5, 7});
    CHECK(rev::memory<rev::cuda>::current() == before + 3 * 5 * 7 * sizeof(float));
  }
  CHECK(rev::memory<rev::cuda>::current() == before);
  const auto mallocs = rev::gpu::allocator_statistics().device_mallocs;
  { rev::Tensor<float, rev::cuda> b({3, 5, 7}); }
  CHECK(rev::gpu::allocator_statistics().device_mallocs == mallocs);  // served from the cache
}

TEST_CASE("cuda: fill, clone and the round trip host -> device -> host are exact") {
  rev::Tensor<double> h({2, 3, 4});
  for (rev::index_t i = 0; i < h.numel(); ++i) h.data()[i] = 0.5 * static_cast<double>(i) - 3.0;
  const rev::Tensor<double, rev::cuda> d = rev::to_device(h);
  const rev::Tensor<double> back = rev::to_host(d.clone());
  for (rev::index_t i = 0; i < h.numel(); ++i) CHECK(back.data()[i] == h.data()[i]);
  rev::Tensor<double, rev::cuda> f({4, 4});
  f.fill(2.5);
  for (double v : rev::to_host(f)) CHECK(v == 2.5);
  rev::Tensor<double, rev::cuda> z({4, 4});
  for (double v : rev::to_host(z)) CHECK(v == 0.0);
}

TEST_CASE("cuda: copy_into checks extents and names itself") {
  rev::Tensor<float, rev::cuda> d({2, 2});
  const rev::Tensor<float> h({3});
  CHECK_THROWS_WITH_AS(rev::copy_into(d, h), doctest::Contains("rev::copy_into: destination has extents"),
                       rev::shape_error);
}
