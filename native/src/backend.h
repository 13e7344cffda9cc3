// The seam between the model (model.h: config, weights, state) and the code that runs it. The CPU
// backend lives in cpu_backend.cpp; a CUDA backend implements the same interface over device copies.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model.h"

namespace based {

struct SeqRequest {
  SequenceState* state;     // advanced in place by the tokens consumed
  const int32_t* tokens;
  int n;
  // JRT-RNN only, first call on a fresh state: how many leading tokens form the non-causal prefix
  // (-1: min(enc_length, n), as in the reference prefill).
  int prefixLen = -1;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Runs all sequences together (token-parallel projections, per-sequence mixing). Writes logits over the
  // padded vocabulary: for every token when allLogits, else for the last token of each sequence.
  virtual void forward(const Model& model, std::vector<SeqRequest>& batch, bool allLogits, std::vector<float>& logits) = 0;
  // A backend that keeps states where it runs (the GPU) and leaves the host copy stale after a forward (all but
  // `pos`, which stays current) brings it up to date here before the host reads it (save, clone); release: the
  // state is gone. Both are safe to call while a forward runs on another thread.
  virtual void syncToHost(SequenceState&) {}
  virtual void release(const SequenceState*) {}
};

std::unique_ptr<Backend> makeCpuBackend(int threads);

// Bumped whenever Backend, Model or SequenceState change shape: the CUDA backend is a separate library
// (libbased_cuda.so) and one built from other sources must not be loaded.
constexpr int kBackendAbi = 1;

// The backend chosen at run time: CUDA when libbased_cuda.so loads and finds a GPU, the CPU otherwise.
// EVAPORATE_LOCAL_DEVICE=cpu|cuda|auto (default auto); cuda fails (cuda_unavailable) rather than fall back.
// EVAPORATE_CUDA_LIB names the library where it is not in its usual places.
std::unique_ptr<Backend> makeBackend(int threads);

}  // namespace based
