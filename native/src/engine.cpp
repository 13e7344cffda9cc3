#include "engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "threadpool.h"

namespace based {

int defaultThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

std::unique_ptr<Engine> openEngine(const std::string& dir, int threads) {
  auto e = std::make_unique<Engine>();
  e->model = loadModel(dir);
  e->backend = makeBackend(threads > 0 ? threads : defaultThreads());
  return e;
}

std::unique_ptr<Engine> randomEngine(const std::string& configJson, uint64_t seed, int threads) {
  auto e = std::make_unique<Engine>();
  e->model = randomModel(parseConfig(configJson), seed);
  e->backend = makeBackend(threads > 0 ? threads : defaultThreads());
  return e;
}

double measureCopyBandwidth(size_t bytes, int threads, int reps) {
  size_t n = bytes / sizeof(float);
  std::vector<float> a(n, 1.f), b(n, 0.f);
  ThreadPool pool(threads > 0 ? threads : defaultThreads());
  auto copy = [&] {
    pool.parallelFor(int64_t(n), int64_t(1) << 16, [&](int64_t i0, int64_t i1) {
      std::memcpy(&b[i0], &a[i0], size_t(i1 - i0) * sizeof(float));
    });
  };
  copy();  // fault the pages in
  double best = 0;
  for (int r = 0; r < std::max(1, reps); ++r) {
    auto t0 = std::chrono::steady_clock::now();
    copy();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * double(n * sizeof(float)) / s / 1e9);
    std::swap(a, b);
  }
  return best;
}

}  // namespace based
