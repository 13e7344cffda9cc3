#include "threadpool.h"

#include <algorithm>

namespace based {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this] { run(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work() {
  while (true) {
    int64_t i = next_.fetch_add(grain_);
    if (i >= n_) break;
    (*fn_)(i, std::min(n_, i + grain_));
  }
}

void ThreadPool::run() {
  uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    work();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (--busy_ == 0) doneCv_.notify_one();
    }
  }
}

void ThreadPool::parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    next_.store(0);
    busy_ = int(workers_.size());
    ++generation_;
  }
  cv_.notify_all();
  work();
  std::unique_lock<std::mutex> l(mu_);
  doneCv_.wait(l, [&] { return busy_ == 0; });
}

}  // namespace based
