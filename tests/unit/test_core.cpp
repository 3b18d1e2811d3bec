#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>

#include "helpers.hpp"
#include "rev/rev.hpp"

using namespace rev;

TEST_CASE("tensor: extents, zero fill, element access, clone and reshape") {
  Tensor<float> t({2, 3, 4, 5});
  CHECK(t.rank() == 4);
  CHECK(t.numel() == 120);
  CHECK(t.size(1) == 3);
  CHECK(t.size(-1) == 5);
  CHECK(std::all_of(t.begin(), t.end(), [](float v) { return v == 0; }));
  t(1, 2, 3, 4) = 7;
  CHECK(t.data()[119] == 7);
  t(0, 1, 0, 0) = 3;
  CHECK(t.data()[20] == 3);

  Tensor<float> shared = t;
  CHECK(shared.shares_buffer_with(t));
  CHECK_FALSE(t.unique());
  Tensor<float> deep = t.clone();
  CHECK_FALSE(deep.shares_buffer_with(t));
  deep(0, 0, 0, 0) = 1;
  CHECK(t(0, 0, 0, 0) == 0);

  Tensor<float> r = t.reshape({6, 20});
  CHECK(r.shares_buffer_with(t));
  CHECK(r(5, 19) == 7);
  CHECK_THROWS_AS(t.reshape({7, 20}), shape_error);
}

TEST_CASE("tensor: from() checks the value count") {
  auto t = Tensor<double>::from({2, 2}, {1, 2, 3, 4});
  CHECK(t(1, 0) == 3);
  CHECK_THROWS_AS(Tensor<double>::from({2, 2}, {1, 2, 3}), shape_error);
  CHECK_THROWS_AS(Tensor<double>({2, -1}), shape_error);
}

TEST_CASE("memory accounting counts live buffers and tracks the peak") {
  const std::size_t base = memory<cpu>::current();
  memory<cpu>::reset_peak();
  {
    Tensor<float> a({1024});
    CHECK(memory<cpu>::current() == base + 4096);
    {
      Tensor<double> b({1024});
      CHECK(memory<cpu>::current() == base + 4096 + 8192);
    }
    CHECK(memory<cpu>::current() == base + 4096);
    Tensor<float> view = a.reshape({32, 32});  // a handle, not a buffer
    CHECK(memory<cpu>::current() == base + 4096);
  }
  CHECK(memory<cpu>::current() == base);
  CHECK(memory<cpu>::peak() == base + 4096 + 8192);
  memory<cpu>::reset_peak();
  CHECK(memory<cpu>::peak() == base);

  peak_scope<cpu> scope;
  { Tensor<float> c({256}); }
  CHECK(scope.peak_above_start() == 1024);
}

TEST_CASE("philox matches the Random123 known-answer vectors") {
  // philox4x32-10 with counter 0 and key 0.
  auto r = philox::block(0, 0);
  CHECK(r[0] == 0x6627e8d5u);
  CHECK(r[1] == 0xe169c58du);
  CHECK(r[2] == 0xbc57ac4cu);
  CHECK(r[3] == 0x9b00dbd8u);
}

TEST_CASE("generator: a captured state replays the same numbers") {
  Generator g(42);
  rng_state a = g.draw(10);
  rng_state b = g.draw(10);
  CHECK_FALSE(a == b);
  CHECK(b.offset == 12);  // whole Philox blocks
  std::vector<double> first, again;
  for (int i = 0; i < 10; ++i) first.push_back(philox::uniform(a, i));
  for (int i = 0; i < 10; ++i) again.push_back(philox::uniform(a, i));
  CHECK(first == again);
  double mean = 0;
  for (int i = 0; i < 100000; ++i) mean += philox::uniform(b, i);
  CHECK(std::abs(mean / 100000 - 0.5) < 0.01);
}

TEST_CASE("parallel_for covers the range exactly once, also when nested") {
  std::vector<int> hits(10007, 0);
  parallel_for(10007, 10, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) {
      ++hits[static_cast<std::size_t>(i)];
      parallel_for(4, 1, [](index_t, index_t) {});
    }
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  const int before = num_threads();
  set_num_threads(3);
  CHECK(num_threads() == 3);
  std::atomic<index_t> total{0};
  parallel_for(1000, 1, [&](index_t b, index_t e) { total += e - b; });
  CHECK(total == 1000);
  set_num_threads(before);
}

TEST_CASE("parallel_for: an exception in a task reaches the caller after every worker is done") {
  const int before = num_threads();
  set_num_threads(2);
  using namespace std::chrono_literals;
  // One chunk throws while others are still running (they sleep): parallel_for returns only when
  // none is running any more, and throws the task's exception.
  std::atomic<int> running{0}, started{0};
  auto chunk = [&](index_t b, index_t) {
    ++running;
    ++started;
    std::this_thread::sleep_for(5ms);
    --running;
    if (b == 0) throw std::runtime_error("chunk 0 failed");
  };
  CHECK_THROWS_WITH_AS(parallel_for(8, 1, chunk), "chunk 0 failed", std::runtime_error);
  CHECK(running == 0);
  CHECK(started >= 1);

  // Every chunk throws, on the worker too: one exception reaches the caller, nothing terminates.
  CHECK_THROWS_AS(parallel_for(64, 1, [](index_t, index_t) { throw shape_error("every chunk"); }), shape_error);

  // A nested parallel_for (serial inside a task) that throws ends the outer job the same way.
  CHECK_THROWS_WITH_AS(parallel_for(16, 1,
                                    [](index_t b, index_t e) {
                                      parallel_for(4, 1, [&](index_t, index_t) {
                                        if (b <= 3 && 3 < e) throw value_error("inner");
                                      });
                                    }),
                       "inner", value_error);

  // The pool keeps working, on both threads (the caller is not left marked as inside a task).
  std::vector<int> hits(1000, 0);
  std::mutex ids_mutex;
  std::set<std::thread::id> ids;
  parallel_for(1000, 1, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
    std::this_thread::sleep_for(2ms);
    std::lock_guard lock(ids_mutex);
    ids.insert(std::this_thread::get_id());
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  CHECK(ids.size() == 2);
  set_num_threads(before);
}

TEST_CASE("generator: threads drawing from one generator get disjoint numbers") {
  Generator g(7);
  constexpr int threads = 4, draws = 1000;
  std::vector<std::vector<std::uint64_t>> offsets(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < draws; ++i) offsets[static_cast<std::size_t>(t)].push_back(g.draw(4).offset);
    });
  for (auto& th : pool) th.join();
  std::set<std::uint64_t> all;
  for (const auto& o : offsets) all.insert(o.begin(), o.end());
  CHECK(all.size() == std::size_t{threads} * draws);
  CHECK(*all.rbegin() == std::uint64_t{4} * (threads * draws - 1));
  CHECK(g.state().offset == std::uint64_t{4} * threads * draws);
  Generator copy = g;
  CHECK(copy.draw(4) == g.draw(4));
}

TEST_CASE("shape: an extent index outside [-rank, rank) throws") {
  Shape s{2, 3, 4};
  CHECK(s[-3] == 2);
  CHECK(s[2] == 4);
  CHECK_THROWS_WITH_AS(s[3], "rev::Shape: extent 3 of the rank-3 extents [2, 3, 4] (valid: -3 to 2)", shape_error);
  CHECK_THROWS_WITH_AS(s[-4], "rev::Shape: extent -4 of the rank-3 extents [2, 3, 4] (valid: -3 to 2)", shape_error);
  CHECK_THROWS_AS(Shape{}[0], shape_error);
  CHECK_THROWS_AS(Tensor<float>({2, 3}).size(-3), shape_error);
}

#ifndef NDEBUG
TEST_CASE("tensor: element access checks the index count and range in debug builds") {
  Tensor<float> t({2, 3});
  t(1, 2) = 5;
  CHECK(t.data()[5] == 5);
  CHECK_THROWS_WITH_AS(t(1), "rev::Tensor: 1 indices into a tensor of extents [2, 3]", shape_error);
  CHECK_THROWS_WITH_AS(t(0, 1, 0), "rev::Tensor: 3 indices into a tensor of extents [2, 3]", shape_error);
  CHECK_THROWS_WITH_AS(t(0, 3), "rev::Tensor: index 3 of dimension 1 is out of range for extents [2, 3]", shape_error);
  CHECK_THROWS_WITH_AS(t(-1, 0), "rev::Tensor: index -1 of dimension 0 is out of range for extents [2, 3]",
                       shape_error);
  const Tensor<float>& c = t;
  CHECK_THROWS_AS(c(2, 0), shape_error);
}
#endif

TEST_CASE("errors derive from rev::error and carry their message") {
  try {
    check<shape_error>(false, "rev::test: expected ", Shape{1, 2}, ", got ", Shape{3});
    FAIL("no throw");
  } catch (const error& e) {
    CHECK(std::string(e.what()) == "rev::test: expected [1, 2], got [3]");
  }
}

TEST_CASE("Shape::numel: a product that overflows 64 bits is a shape_error, an empty shape is 0") {
  CHECK_THROWS_WITH_AS(Tensor<float>({1, 1, index_t{1} << 32, index_t{1} << 32}),
                       "rev::Shape: the element count of the extents [1, 1, 4294967296, 4294967296] overflows a 64-bit "
                       "integer",
                       shape_error);
  CHECK(Shape{index_t{1} << 62, 4, 0}.numel() == 0);
  CHECK(Shape{index_t{1} << 31, index_t{1} << 31}.numel() == index_t{1} << 62);
}
