// Decode-step GEMMs (M = 128 tokens, bf16 in, fp32 accumulate) timed inside CUDA graphs: cublasGemmEx as the engine
// calls it, and every algorithm cuBLASLt's heuristic offers, so we know how far the skinny projections are from the
// memory bound before choosing how to speed them up. Weights rotate over enough copies to miss the L2.
//   nvcc -O2 -std=c++17 -arch=sm_90 bench/gpu/gemm_probe.cu -lcublas -lcublasLt -o /tmp/gemm_probe && /tmp/gemm_probe
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#define CK(x)                                                                \
  do {                                                                       \
    auto e = (x);                                                            \
    if (int(e) != 0) {                                                       \
      std::printf("error %d at %s:%d\n", int(e), __FILE__, __LINE__);        \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

struct Shape {
  const char* model;
  const char* what;
  int n, k, perStep;
  bool f32Out;
};

int main() {
  const int M = 128;
  std::vector<Shape> shapes = {
      {"360m", "conv in", 4096, 1024, 17, false}, {"360m", "conv out", 1024, 2048, 17, true}, {"360m", "la in", 1536, 1024, 5, false},
      {"360m", "sw in", 3072, 1024, 5, false},    {"360m", "attn out", 1024, 1024, 10, true}, {"360m", "fc1", 4096, 1024, 27, false},
      {"360m", "fc2", 1024, 2048, 27, true},      {"360m", "head", 50264, 1024, 1, true},     {"1b", "conv in", 8192, 2048, 22, false},
      {"1b", "conv out", 2048, 4096, 22, true},   {"1b", "la in", 2560, 2048, 7, false},      {"1b", "sw in", 6144, 2048, 7, false},
      {"1b", "attn out", 2048, 2048, 14, true},   {"1b", "fc1", 16384, 2048, 36, false},      {"1b", "fc2", 2048, 8192, 36, true},
      {"1b", "head", 50264, 2048, 1, true},
  };
  cublasHandle_t blas;
  cublasLtHandle_t lt;
  CK(cublasCreate(&blas));
  CK(cublasLtCreate(&lt));
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  CK(cublasSetStream(blas, stream));
  const size_t wsBytes = 64 << 20;
  void* ws;
  CK(cudaMalloc(&ws, wsBytes));
  CK(cublasSetWorkspace(blas, ws, wsBytes));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  double totalDefault[2] = {0, 0}, totalBest[2] = {0, 0};
  for (const Shape& s : shapes) {
    const size_t wElems = size_t(s.n) * s.k;
    const int copies = int(std::max<size_t>(2, (512u << 20) / (wElems * 2)));
    std::vector<__nv_bfloat16*> W(copies);
    for (auto& w : W) {
      CK(cudaMalloc(&w, wElems * 2));
      CK(cudaMemset(w, 0, wElems * 2));
    }
    __nv_bfloat16* X;
    void* C;
    CK(cudaMalloc(&X, size_t(M) * s.k * 2));
    CK(cudaMemset(X, 0, size_t(M) * s.k * 2));
    CK(cudaMalloc(&C, size_t(M) * s.n * 4));
    const float alpha = 1.f, beta = s.f32Out ? 1.f : 0.f;
    const cudaDataType_t ct = s.f32Out ? CUDA_R_32F : CUDA_R_16BF;
    const int reps = 3 * copies;
    // Captured in a CUDA graph, as the engine's decode step runs them: GPU time, not the host's launch rate.
    auto time = [&](auto&& call) {
      for (int i = 0; i < copies; ++i) call(i);
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      for (int i = 0; i < reps; ++i) call(i % copies);
      CK(cudaStreamEndCapture(stream, &graph));
      CK(cudaGraphInstantiate(&exec, graph, 0));
      CK(cudaGraphLaunch(exec, stream));
      CK(cudaEventRecord(a, stream));
      CK(cudaGraphLaunch(exec, stream));
      CK(cudaEventRecord(b, stream));
      CK(cudaEventSynchronize(b));
      float ms;
      CK(cudaEventElapsedTime(&ms, a, b));
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(graph));
      return 1e3 * ms / reps;  // us per call
    };
    const double usDefault = time([&](int i) {
      CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, s.n, M, s.k, &alpha, W[i], CUDA_R_16BF, s.k, X, CUDA_R_16BF, s.k, &beta, C, ct, s.n,
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    cublasLtMatmulDesc_t op;
    CK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    cublasLtMatrixLayout_t la, lb, lc;
    CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.k, s.n, s.k));
    CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.k, M, s.k));
    CK(cublasLtMatrixLayoutCreate(&lc, ct, s.n, M, s.n));
    cublasLtMatmulPreference_t pref;
    CK(cublasLtMatmulPreferenceCreate(&pref));
    CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsBytes, sizeof(wsBytes)));
    cublasLtMatmulHeuristicResult_t res[32];
    int found = 0;
    CK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 32, res, &found));
    double best = 1e30;
    int bestIdx = -1;
    for (int h = 0; h < found; ++h) {
      const double us = time([&](int i) {
        CK(cublasLtMatmul(lt, op, &alpha, W[i], la, X, lb, &beta, C, lc, C, lc, &res[h].algo, ws, wsBytes, stream));
      });
      if (us < best) best = us, bestIdx = h;
    }
    const double mb = wElems * 2 / 1e6;
    std::printf("%-5s %-9s n=%5d k=%5d x%2d  %6.1f MB  gemmEx %7.1f us (%5.0f GB/s)  lt best of %2d %7.1f us (%5.0f GB/s, #%d)\n", s.model, s.what, s.n,
                s.k, s.perStep, mb, usDefault, mb * 1e3 / usDefault, found, best, mb * 1e3 / best, bestIdx);
    const int m = s.model[0] == '1' ? 1 : 0;
    totalDefault[m] += usDefault * s.perStep;
    totalBest[m] += best * s.perStep;
    for (auto& w : W) cudaFree(w);
    cudaFree(X);
    cudaFree(C);
  }
  std::printf("per decode step: 360m gemmEx %.0f us, lt best %.0f us; 1b gemmEx %.0f us, lt best %.0f us\n", totalDefault[0], totalBest[0], totalDefault[1], totalBest[1]);
  return 0;
}
