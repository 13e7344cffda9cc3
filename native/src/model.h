// Model description, weights and per-sequence recurrent state: plain data, no kernels, so that a
// CPU and a CUDA backend can both consume them (the backend seam is backend.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safetensors.h"

namespace based {

enum class MixerKind { BaseConv, LinearAttention, PrefixLinearAttention, SlidingWindow };

struct LayerConfig {
  MixerKind kind;
  // linear attention (Taylor feature map)
  int laHeads = 0, laFeatureDim = 0, laHeadDim = 0, laScaleDim = 0;
  float laEps = 1e-12f;
  int encLength = 0;  // JRT prefix length (PrefixLinearAttention only)
  // sliding window
  int swHeads = 0, swHeadDim = 0, windowLeft = 0, rotaryDim = 0;
  float rotaryBase = 10000.f, softmaxScale = 1.f;
  // BaseConv
  int convInner = 0, convKernel = 3;
};

struct ModelConfig {
  int dModel = 0, nLayer = 0, vocab = 0, vocabPadded = 0, mlpHidden = 0;
  float normEps = 1e-5f;
  std::vector<LayerConfig> layers;
};

// Parses the checkpoint's own config.json (HazyResearch GPT2MixerConfig keys).
ModelConfig parseConfig(const std::string& jsonText);

struct Linear {
  const float* w = nullptr;  // [out, in], row-major
  const float* b = nullptr;  // [out] or null
  int out = 0, in = 0;
};

struct LayerWeights {
  const float* norm1 = nullptr;
  const float* norm2 = nullptr;
  Linear fc1, fc2;
  // BaseConv
  Linear inProj, outProj;
  const float* convW = nullptr;  // [inner, kernel]
  const float* convB = nullptr;
  // linear attention / JRT
  Linear projQ, projK, projV, projKEnc, projVEnc;
  // sliding window
  Linear wqkv;
};

struct Model {
  ModelConfig cfg;
  const float* embed = nullptr;   // [vocabPadded, dModel]
  const float* lmHead = nullptr;  // tied to embed unless the checkpoint has its own
  const float* normF = nullptr;
  std::vector<LayerWeights> layers;
  // Owned fp32 copies (half-precision checkpoints, or random weights); fp32 checkpoints are read in place.
  std::vector<std::unique_ptr<float[]>> owned;
  std::unique_ptr<SafetensorsDir> files;
  size_t weightBytes = 0;  // bytes a forward pass reads, for the bandwidth bound
};

// Loads config.json + *.safetensors from a directory; throws EngineError (missing_tensor, shape_mismatch, ...).
std::unique_ptr<Model> loadModel(const std::string& dir);
// Random weights at a given config (benchmarks, tests): uniform with standard deviation std, unit norms.
std::unique_ptr<Model> randomModel(const ModelConfig& cfg, uint64_t seed, float std = 0.02f);

// Size of the Taylor feature map in its compact (symmetric) form: 1 + f + f(f+1)/2.
inline int taylorDim(int f) { return 1 + f + f * (f + 1) / 2; }

// Fixed-size recurrent state of one sequence.
struct LayerState {
  std::vector<float> kv;    // linear attention: [heads, taylorDim, headDim]
  std::vector<float> ksum;  // [heads, taylorDim]
  std::vector<float> conv;  // BaseConv: last (kernel-1) inputs, [kernel-1, inner]
  std::vector<float> keys, values;  // sliding window ring buffer: [windowLeft+1, heads*headDim]
};

inline uint64_t nextStateUid() {
  static std::atomic<uint64_t> n{0};
  return ++n;
}

struct SequenceState {
  int64_t pos = 0;  // tokens consumed so far
  std::vector<LayerState> layers;
  // Distinct for every state object made (copies included), so a backend that keeps states by address never
  // takes a new state for a released one that lived at the same address.
  uint64_t uid = nextStateUid();
  SequenceState() = default;
  SequenceState(const SequenceState& o) : pos(o.pos), layers(o.layers) {}
  SequenceState& operator=(const SequenceState& o) {
    pos = o.pos, layers = o.layers;
    return *this;
  }
};

std::unique_ptr<SequenceState> newState(const ModelConfig& cfg);
size_t stateBytes(const ModelConfig& cfg);
std::vector<uint8_t> serializeState(const ModelConfig& cfg, const SequenceState& s);
std::unique_ptr<SequenceState> deserializeState(const ModelConfig& cfg, const uint8_t* data, size_t n);

}  // namespace based
