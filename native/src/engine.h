// What both front ends (the N-API addon and the standalone driver) share: load or build a model, pick a
// backend, run batches, measure memory bandwidth.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "backend.h"
#include "model.h"

namespace based {

struct Engine {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
  std::mutex mu;  // one forward at a time: the backend's thread pool is not reentrant
};

std::unique_ptr<Engine> openEngine(const std::string& dir, int threads);
std::unique_ptr<Engine> randomEngine(const std::string& configJson, uint64_t seed, int threads);
int defaultThreads();

// STREAM-like copy over `bytes` per buffer with `threads` threads; returns GB/s counting read + write.
double measureCopyBandwidth(size_t bytes, int threads, int reps);

}  // namespace based
