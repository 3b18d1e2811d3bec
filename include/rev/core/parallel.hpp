// Intra-op parallelism: a persistent pool of worker threads and parallel_for.
//
// Thread count: REV_NUM_THREADS if set, else OMP_NUM_THREADS if set, else
// std::thread::hardware_concurrency(). rev::set_num_threads(n) changes it at run time
// (n = 1 runs everything on the calling thread). A parallel_for called from inside another
// runs serially, so ops may nest freely. An exception thrown by a task stops the job: no further
// task starts, every worker finishes the task it is in, and the first exception is rethrown to
// the caller of parallel_for; the pool stays usable.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "rev/core/shape.hpp"

namespace rev {

namespace detail {

inline int default_num_threads() {
  for (const char* var : {"REV_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(var)) {
      int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

class thread_pool {
 public:
  static thread_pool& instance() {
    static thread_pool pool;
    return pool;
  }

  int size() const { return num_threads_; }

  void resize(int n) {
    std::lock_guard run_lock(run_mutex_);
    stop_workers();
    num_threads_ = std::max(1, n);
    start_workers();
  }

  // Runs task(i) for i in [0, tasks) on the pool; the calling thread takes part. Returns (or
  // rethrows the first exception of a task) once every worker is done with this job.
  void run(index_t tasks, const std::function<void(index_t)>& task) {
    std::lock_guard run_lock(run_mutex_);
    {
      std::lock_guard lock(mutex_);
      task_ = &task;
      tasks_ = tasks;
      next_.store(0);
      error_ = nullptr;
      pending_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::exception_ptr error;
    {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return pending_ == 0; });
      task_ = nullptr;
      error = std::exchange(error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

  ~thread_pool() { stop_workers(); }

 private:
  thread_pool() : num_threads_(default_num_threads()) { start_workers(); }

  void start_workers() {
    stop_ = false;
    for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { loop(); });
  }
  void stop_workers() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  // Takes tasks until none is left; a task's exception is kept (the first one) and ends the job.
  void work() {
    in_parallel() = true;
    try {
      for (index_t i; (i = next_.fetch_add(1)) < tasks_;) (*task_)(i);
    } catch (...) {
      next_.store(tasks_);
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    in_parallel() = false;
  }

  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work();
      {
        std::lock_guard lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

 public:
  static bool& in_parallel() {
    thread_local bool flag = false;
    return flag;
  }

 private:
  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(index_t)>* task_ = nullptr;
  index_t tasks_ = 0;
  std::atomic<index_t> next_{0};
  std::exception_ptr error_;
  int pending_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace detail

/// The number of threads rev's CPU ops use.
inline int num_threads() { return detail::thread_pool::instance().size(); }

/// Sets the number of threads rev's CPU ops use (1 = serial).
inline void set_num_threads(int n) { detail::thread_pool::instance().resize(n); }

/// Calls f(begin, end) on disjoint sub-ranges covering [0, n), in parallel when that pays.
/// `grain` is the smallest range worth a task (about 10-100 µs of work).
template <class F>
void parallel_for(index_t n, index_t grain, F&& f) {
  if (n <= 0) return;
  auto& pool = detail::thread_pool::instance();
  const int threads = pool.size();
  grain = std::max<index_t>(grain, 1);
  if (threads == 1 || n <= grain || detail::thread_pool::in_parallel()) {
    f(index_t{0}, n);
    return;
  }
  // A few tasks per thread balance uneven work without much scheduling overhead.
  const index_t tasks = std::min<index_t>((n + grain - 1) / grain, index_t{threads} * 4);
  const index_t chunk = (n + tasks - 1) / tasks;
  std::function<void(index_t)> task = [&](index_t t) {
    const index_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) f(b, e);
  };
  pool.run(tasks, task);
}

}  // namespace rev
