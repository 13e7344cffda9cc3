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
};

std::unique_ptr<Backend> makeCpuBackend(int threads);

}  // namespace based
