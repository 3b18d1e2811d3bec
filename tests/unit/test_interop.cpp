#include <cstdio>
#include <fstream>

#include "helpers.hpp"
#include "rev/interop/xtensor.hpp"

using namespace rev;

TEST_CASE("xtensor view shares the rev tensor's buffer") {
  auto t = Tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  auto v = interop::as_xtensor(t);
  CHECK(v.dimension() == 2);
  CHECK(v(1, 2) == 6);
  v(0, 1) = 20;
  CHECK(t(0, 1) == 20);
  auto back = interop::from_xtensor<double>(v * 2.0);
  CHECK(back.shape() == Shape{2, 3});
  CHECK(back(0, 1) == 40);
}

TEST_CASE(".npy round trip, and bad files raise io_error") {
  const std::string path = "rev_test_interop.npy";
  auto t = test::random({2, 3, 4}, 3);
  interop::save_npy(path, t);
  auto u = interop::load_npy<double>(path);
  CHECK(u.shape() == t.shape());
  CHECK(test::max_abs_error(u, t) == 0);
  CHECK_THROWS_AS(interop::load_npy<float>(path), io_error);  // stored as float64
  { std::ofstream(path, std::ios::trunc) << "not an npy file"; }
  CHECK_THROWS_AS(interop::load_npy<double>(path), io_error);
  std::remove(path.c_str());
  CHECK_THROWS_AS(interop::load_npy<double>("does/not/exist.npy"), io_error);
}
