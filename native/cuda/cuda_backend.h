// CUDA path of the engine: weights in bf16 on the device, recurrent state and residual stream in fp32.
// GpuEngine keeps the state of up to maxBatch sequences on the device (slots), so decoding never copies
// state to the host; CudaBackend adapts it to the host-state Backend interface (backend.h) for parity
// with the CPU path and for the N-API addon.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../src/backend.h"

namespace based {

struct GpuEngineImpl;

class GpuEngine {
 public:
  GpuEngine(const Model& model, int maxBatch, int64_t maxTokens);
  ~GpuEngine();
  const ModelConfig& config() const;

  // Host <-> device state of one slot (the SequenceState layout of model.h).
  void uploadState(int slot, const SequenceState& s);
  void downloadState(int slot, SequenceState& s) const;
  void resetSlots(int count);  // fresh states (pos 0) in slots [0, count)
  void copySlot(int from, int to);  // device to device, every state array and the position

  // Runs B slots, each consuming L tokens (tokens is host memory, [B*L]); prefixLen per slot applies to
  // JRT layers on fresh states (-1: the layer's enc_length). Logits (fp32, padded vocab) for every token
  // when allLogits, else the last token of each slot, copied to the host.
  void forward(const int32_t* tokens, int B, int L, const int* prefixLen, bool allLogits, std::vector<float>* logits);

  // Greedy generation for slots [0, B) after a prefill: `steps` decode steps, each feeding back its argmax,
  // replayed from one captured CUDA graph when useGraph. Returns the generated tokens [steps, B].
  std::vector<int32_t> generate(int B, const int32_t* firstTokens, int steps, bool useGraph);

  // Device bytes one decode step must move for B slots (weights once, plus state read and written).
  double decodeStepBytes(int B) const;
  // Measured device-to-device copy bandwidth, GB/s counting read + write.
  static double copyBandwidth();
  // Measured rate of a plain cuBLAS bf16 n^3 GEMM, TFLOP/s (0 where the build has no cuBLAS).
  static double gemmPeakTflops(int n = 8192);
  void synchronize() const;
  // Our decode GEMM (skinny_gemm.cuh, on when EVAPORATE_GPU_SKINNY=1) against cuBLAS at every packed shape, then
  // timed beside it; prints a line each, returns the worst relative error (-1 where the engine does not use it).
  double checkSkinnyGemm();
  // Milliseconds per kernel category summed over profiled (EVAPORATE_GPU_PROFILE=1) generate() steps and
  // forwards; "gflop <category>" entries hold the GEMM operations (1e9) filed under that category.
  std::map<std::string, double> profileMs() const;
  // The decode GEMM shapes tuned so far (cuBLASLt builds): "shape, cublasGemmEx time -> choice, its error" -> us.
  std::map<std::string, double> gemmChoices() const;

 private:
  std::unique_ptr<GpuEngineImpl> impl_;
};

// Backend over GpuEngine. States stay on the device between forwards (maxBatch slots, least recently used ones
// written back to the host when room is needed); the host copy is refreshed on syncToHost.
std::unique_ptr<Backend> makeCudaBackend(int maxBatch = 64, int64_t maxTokens = 1 << 16);
bool cudaDeviceAvailable();
// Which GEMM the engine uses: "cublas" or "wmma" (our tensor-core kernel).
const char* gpuGemmName();

}  // namespace based
