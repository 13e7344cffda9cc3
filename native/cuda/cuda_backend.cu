// CUDA kernels and the device-resident engine. The math mirrors cpu_backend.cpp term for term (same compact
// Taylor features, chunking, ring-buffer layout), so the CPU path is the oracle for this one.
#include "cuda_backend.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>
// cuBLAS where the toolkit has it (the GPU machine); our tensor-core GEMM otherwise (e.g. CI, whose nvcc
// comes without cuBLAS), and on request (EVAPORATE_GPU_GEMM=wmma) so that path is tested on a GPU too.
#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#define BASED_HAVE_CUBLAS 1
// cuBLASLt, where it comes with cuBLAS: the decode step's skinny GEMMs run the algorithm that measured fastest
#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
#define BASED_HAVE_CUBLASLT 1
#endif
#endif

#include <cstdlib>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <mutex>
#include <string>
#include <type_traits>

#include "../src/errors.h"

namespace based {
namespace {

using bf16 = __nv_bfloat16;

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw EngineError("cuda_error", std::string(what) + ": " + cudaGetErrorString(e));
}
#ifdef BASED_HAVE_CUBLAS
void ck(cublasStatus_t e, const char* what) {
  if (e != CUBLAS_STATUS_SUCCESS) throw EngineError("cuda_error", std::string(what) + ": cuBLAS status " + std::to_string(int(e)));
}
#endif
#define CK(x) ck((x), #x)
#define LAUNCHED() ck(cudaGetLastError(), "kernel launch")

template <class T>
T* devAlloc(size_t n) {
  void* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  return static_cast<T*>(p);
}

__device__ inline float silu(float x) { return x / (1.f + __expf(-x)); }

__device__ inline float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}

// The sum of v over the block (blockDim.x a multiple of 32), the same in every thread; once per kernel (one buffer).
__device__ inline float blockSum(float v) {
  __shared__ float part[32];
  v = warpSum(v);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.f;
    t = warpSum(t);
    if (threadIdx.x == 0) part[0] = t;
  }
  __syncthreads();
  return part[0];
}

// 16-byte asynchronous copy global -> shared (zero-filled where !valid; src must still be a mapped address), and
// the wait for all of a thread's copies: the tile loads of the tensor-core kernels are issued together this way,
// not one dependent 2-byte load after another.
__device__ inline void cpAsync16(void* dst, const void* src, bool valid) {
  const unsigned d = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ inline void cpAsyncWaitAll() { asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory"); }
__device__ inline void unpack8(const uint4& u, float* x) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 v = __bfloat1622float2(h[k]);
    x[2 * k] = v.x, x[2 * k + 1] = v.y;
  }
}
__device__ inline uint4 pack8(const float* x) {
  uint4 u;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
  for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(x[2 * k], x[2 * k + 1]);
  return u;
}

// Programmatic dependent launch (sm_90): a kernel launched with the attribute runs its prologue while its
// predecessor finishes and waits here before touching anything its predecessors write; every kernel lets its
// dependents launch early. Both are no-ops where the launch did not ask for it.
__device__ inline void pdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ inline void pdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
// The decode path's own kernels: wait for what the previous kernel wrote, then let the next one launch, so its
// launch and scheduling overlap this kernel's work (the next one waits in turn before it reads anything).
__device__ inline void pdlEnter() {
  pdlWait();
  pdlLaunchDependents();
}

// ---------------------------------------------------------------- elementwise and normalization

__global__ void embedKernel(const int32_t* tok, const bf16* E, float* X, int d) {
  pdlEnter();
  const int64_t t = blockIdx.x;
  const bf16* row = E + int64_t(tok[t]) * d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) X[t * d + i] = __bfloat162float(row[i]);
}

// Adds an optional bias into the fp32 residual row, then writes the RMS-normalized row in bf16: the residual
// add itself happened in the preceding GEMM (beta = 1), so this is the whole "add + norm" in one pass.
__global__ void biasRmsnormKernel(float* X, const int64_t* rows, const float* bias, const float* w, bf16* H, int d, float eps) {
  pdlEnter();
  const int64_t r = rows ? rows[blockIdx.x] : blockIdx.x;
  float* x = X + r * d;
  float ss = 0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    float v = x[i];
    if (bias) x[i] = v = v + bias[i];
    ss += v * v;
  }
  const float inv = rsqrtf(blockSum(ss) / d + eps);
  bf16* h = H + int64_t(blockIdx.x) * d;
  for (int i = threadIdx.x; i < d; i += blockDim.x) h[i] = __float2bfloat16(x[i] * inv * w[i]);
}

// The same for rows of float4 (d % 4 == 0): each thread holds up to V float4 of the row in registers, so the row
// is read once, with all loads in flight together; a decode step runs one per layer half at batch x d, where the
// strided two-pass form above is bound by load latency rather than bandwidth.
template <int V>
__global__ void biasRmsnormVecKernel(float* X, const int64_t* rows, const float* bias, const float* w, bf16* H, int d, float eps) {
  const int n4 = d / 4;
  const float4* w4 = reinterpret_cast<const float4*>(w);
  float4 v[V], g[V];  // the norm's weights: no kernel writes them, so they load while the previous kernel ends
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < n4) g[j] = w4[i];
  }
  pdlEnter();
  const int64_t r = rows ? rows[blockIdx.x] : blockIdx.x;
  float4* x = reinterpret_cast<float4*>(X + r * d);
  float ss = 0;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < n4) v[j] = x[i];
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i >= n4) continue;
    if (bias) {
      const float4 b = reinterpret_cast<const float4*>(bias)[i];
      v[j].x += b.x, v[j].y += b.y, v[j].z += b.z, v[j].w += b.w;
      x[i] = v[j];
    }
    ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
  }
  const float inv = rsqrtf(blockSum(ss) / d + eps);
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(H + int64_t(blockIdx.x) * d);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i >= n4) continue;
    h[2 * i] = __floats2bfloat162_rn(v[j].x * inv * g[j].x, v[j].y * inv * g[j].y);
    h[2 * i + 1] = __floats2bfloat162_rn(v[j].z * inv * g[j].z, v[j].w * inv * g[j].w);
  }
}

__global__ void biasBf16Kernel(bf16* Y, const float* b, int64_t T, int n, int ld) {
  pdlEnter();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * n) return;
  const int64_t t = idx / n;
  const int c = int(idx % n);
  Y[t * ld + c] = __float2bfloat16(__bfloat162float(Y[t * ld + c]) + b[c]);
}

// Eight channels per thread (16-byte loads and stores) where the hidden size allows: the decode step's SwiGLU
// moves a few MB, and one element per thread left it latency bound.
__global__ void swiglu8Kernel(const bf16* G, bf16* A, int64_t T, int hid) {
  pdlEnter();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int per = hid / 8;
  if (idx >= T * per) return;
  const int64_t t = idx / per;
  const int j = int(idx % per) * 8;
  const uint4 yv = *reinterpret_cast<const uint4*>(G + t * 2 * hid + j);
  const uint4 gv = *reinterpret_cast<const uint4*>(G + t * 2 * hid + hid + j);
  const __nv_bfloat162* y2 = reinterpret_cast<const __nv_bfloat162*>(&yv);
  const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
  uint4 out;
  __nv_bfloat162* o2 = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 y = __bfloat1622float2(y2[k]), g = __bfloat1622float2(g2[k]);
    o2[k] = __floats2bfloat162_rn(y.x * silu(g.x), y.y * silu(g.y));
  }
  *reinterpret_cast<uint4*>(A + t * hid + j) = out;
}

__global__ void swigluKernel(const bf16* G, bf16* A, int64_t T, int hid) {
  pdlEnter();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * hid) return;
  const int64_t t = idx / hid;
  const int j = int(idx % hid);
  const float y = __bfloat162float(G[t * 2 * hid + j]), g = __bfloat162float(G[t * 2 * hid + hid + j]);
  A[idx] = __float2bfloat16(y * silu(g));
}

// One block of kArgmaxThreads per row; float4 loads where rows are 16-byte aligned. Ties go to the lowest id.
constexpr int kArgmaxThreads = 1024;
__global__ void argmaxKernel(const float* logits, int vocab, int ld, int32_t* out) {
  const float* row = logits + int64_t(blockIdx.x) * ld;
  float best = -INFINITY;
  int arg = 0;
  int tail = 0;
  if (ld % 4 == 0) {
    const float4* r4 = reinterpret_cast<const float4*>(row);
    for (int i = threadIdx.x; i < vocab / 4; i += blockDim.x) {
      const float4 v = r4[i];
      if (v.x > best) best = v.x, arg = 4 * i;
      if (v.y > best) best = v.y, arg = 4 * i + 1;
      if (v.z > best) best = v.z, arg = 4 * i + 2;
      if (v.w > best) best = v.w, arg = 4 * i + 3;
    }
    tail = vocab / 4 * 4;
  }
  for (int i = tail + threadIdx.x; i < vocab; i += blockDim.x)
    if (row[i] > best) best = row[i], arg = i;
  __shared__ float sv[kArgmaxThreads];
  __shared__ int si[kArgmaxThreads];
  sv[threadIdx.x] = best, si[threadIdx.x] = arg;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float o = sv[threadIdx.x + s];
      const int oi = si[threadIdx.x + s];
      if (o > sv[threadIdx.x] || (o == sv[threadIdx.x] && oi < si[threadIdx.x])) sv[threadIdx.x] = o, si[threadIdx.x] = oi;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = si[0];
}

__global__ void advanceKernel(int64_t* pos, int B, int L) {
  pdlEnter();
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s < B) pos[s] += L;
}

// ---------------------------------------------------------------- BaseConv (short causal conv, gated)

// The kept inputs (tail: [slots][K-1][inner], oldest first) are stored in bf16: they are rows of U, which the
// input projection already wrote in bf16, so the narrower state loses nothing and halves its traffic.

// U: [B*L, 2*inner] (conv input, then gate).
__global__ void convKernel(const bf16* U, const bf16* tail, const float* w, const float* b, bf16* V, int B, int L, int inner, int K) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(B) * L * inner) return;
  const int ch = int(idx % inner);
  const int64_t t = idx / inner;
  const int s = int(t / L), tt = int(t % L);
  float y = b ? b[ch] : 0.f;
  for (int j = 0; j < K; ++j) {
    const int x = tt - (K - 1) + j;
    const bf16 in = x >= 0 ? U[(int64_t(s) * L + x) * 2 * inner + ch] : tail[(int64_t(s) * (K - 1) + (K - 1 + x)) * inner + ch];
    y += w[ch * K + j] * __bfloat162float(in);
  }
  V[t * inner + ch] = __float2bfloat16(silu(y) * __bfloat162float(U[t * 2 * inner + inner + ch]));
}

// Prefill with 8 channels a thread (inner % 8 == 0, K <= kConvMaxK), each thread sliding down kConvTok consecutive
// tokens: the taps' weights are loaded once for them, the K-1 earlier inputs stay in registers, and all the group's
// input and gate rows (16-byte loads) are issued before the first is used. A block per token row (the previous
// version) read every input row K times and spent its time in 64-bit index arithmetic and block launches; a
// version sliding 16 tokens ran at one block per SM (139 registers).
constexpr int kConvMaxK = 4, kConvTok = 4;
template <int K>
__global__ void __launch_bounds__(256) convSlideKernel(const bf16* __restrict__ U, const bf16* __restrict__ tail, const float* __restrict__ wT,
                                                       const float* __restrict__ b, bf16* __restrict__ V, int64_t T, int L, int inner) {
  static_assert(K >= 2 && K <= kConvMaxK, "taps");
  const int per = inner / 8;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t t0 = idx / per * kConvTok;
  if (t0 >= T) return;
  const int ch = int(idx % per) * 8;
  const int64_t ld = 2 * int64_t(inner);
  uint4 xin[kConvTok], gin[kConvTok];
#pragma unroll
  for (int k = 0; k < kConvTok; ++k)
    if (t0 + k < T) xin[k] = *reinterpret_cast<const uint4*>(U + (t0 + k) * ld + ch), gin[k] = *reinterpret_cast<const uint4*>(U + (t0 + k) * ld + inner + ch);
  float w[K][8], y0[8];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    const float4 a = *reinterpret_cast<const float4*>(wT + int64_t(j) * inner + ch), c = *reinterpret_cast<const float4*>(wT + int64_t(j) * inner + ch + 4);
    w[j][0] = a.x, w[j][1] = a.y, w[j][2] = a.z, w[j][3] = a.w, w[j][4] = c.x, w[j][5] = c.y, w[j][6] = c.z, w[j][7] = c.w;
  }
  if (b) {
    const float4 a = *reinterpret_cast<const float4*>(b + ch), c = *reinterpret_cast<const float4*>(b + ch + 4);
    y0[0] = a.x, y0[1] = a.y, y0[2] = a.z, y0[3] = a.w, y0[4] = c.x, y0[5] = c.y, y0[6] = c.z, y0[7] = c.w;
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) y0[e] = 0.f;
  }
  // win[j]: the input K-1-j positions before the current token (row of U, or of the kept tail before position 0)
  float win[K - 1][8];
  int s = int(t0 / L), tt = int(t0 % L);
#pragma unroll
  for (int k = 0; k < kConvTok; ++k) {
    if (t0 + k >= T) continue;  // (not break: the loop must unroll, or xin / gin go to local memory)
    if (k == 0 || tt == 0) {    // the group's first token, or a new sequence starting inside the group
#pragma unroll
      for (int j = 0; j < K - 1; ++j) {
        const int x = tt - (K - 1) + j;
        const bf16* src = x >= 0 ? U + (int64_t(s) * L + x) * ld + ch : tail + (int64_t(s) * (K - 1) + (K - 1 + x)) * inner + ch;
        unpack8(*reinterpret_cast<const uint4*>(src), win[j]);
      }
    }
    float x[8], g[8], y[8];
    unpack8(xin[k], x);
    unpack8(gin[k], g);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      float acc = y0[e] + w[K - 1][e] * x[e];
#pragma unroll
      for (int j = 0; j < K - 1; ++j) acc += w[j][e] * win[j][e];
      y[e] = silu(acc) * g[e];
    }
    *reinterpret_cast<uint4*>(V + (t0 + k) * inner + ch) = pack8(y);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
#pragma unroll
      for (int j = 0; j + 1 < K - 1; ++j) win[j][e] = win[j + 1][e];
      win[K - 2][e] = x[e];
    }
    if (++tt == L) tt = 0, ++s;
  }
}

// Decode (L == 1): the convolution and the shift of the kept inputs in one pass (convKernel + convTailKernel).
__global__ void convDecodeKernel(const bf16* U, bf16* tail, const float* w, const float* b, bf16* V, int B, int inner, int K) {
  pdlEnter();
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(B) * inner) return;
  const int ch = int(idx % inner), s = int(idx / inner);
  bf16* tl = tail + int64_t(s) * (K - 1) * inner;
  const bf16 x = U[int64_t(s) * 2 * inner + ch];
  float y = b ? b[ch] : 0.f;
  for (int j = 0; j < K - 1; ++j) {
    const bf16 kept = tl[int64_t(j) * inner + ch];
    y += w[ch * K + j] * __bfloat162float(kept);
    if (j > 0) tl[int64_t(j - 1) * inner + ch] = kept;
  }
  y += w[ch * K + K - 1] * __bfloat162float(x);
  if (K > 1) tl[int64_t(K - 2) * inner + ch] = x;
  V[int64_t(s) * inner + ch] = __float2bfloat16(silu(y) * __bfloat162float(U[int64_t(s) * 2 * inner + inner + ch]));
}

// The same, 8 channels a thread (inner % 8 == 0, K <= kConvMaxK): every load is 16 bytes and all of a thread's are
// issued before the first use; the one-channel form above made 2-byte loads of the input, gate and tail and
// 4-byte loads of taps strided by K.
template <int K>
__global__ void convDecode8Kernel(const bf16* __restrict__ U, bf16* __restrict__ tail, const float* __restrict__ wT, const float* __restrict__ b,
                                  bf16* __restrict__ V, int B, int inner) {
  static_assert(K >= 2 && K <= kConvMaxK, "taps");
  const int per = inner / 8;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(B) * per) return;
  const int ch = int(idx % per) * 8, s = int(idx / per);
  bf16* tl = tail + int64_t(s) * (K - 1) * inner + ch;
  uint4 in[K];  // the kept inputs, oldest first, then this token's
  // the kept inputs are this kernel's own writes of the step before, so they load while the previous kernel ends
#pragma unroll
  for (int j = 0; j < K - 1; ++j) in[j] = *reinterpret_cast<const uint4*>(tl + int64_t(j) * inner);
  pdlEnter();
  in[K - 1] = *reinterpret_cast<const uint4*>(U + int64_t(s) * 2 * inner + ch);
  const uint4 gr = *reinterpret_cast<const uint4*>(U + int64_t(s) * 2 * inner + inner + ch);
  float y[8], x[8];
  if (b) {
    const float4 a = *reinterpret_cast<const float4*>(b + ch), c = *reinterpret_cast<const float4*>(b + ch + 4);
    y[0] = a.x, y[1] = a.y, y[2] = a.z, y[3] = a.w, y[4] = c.x, y[5] = c.y, y[6] = c.z, y[7] = c.w;
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) y[e] = 0.f;
  }
#pragma unroll
  for (int j = 0; j < K; ++j) {
    unpack8(in[j], x);
    const float4 a = *reinterpret_cast<const float4*>(wT + int64_t(j) * inner + ch), c = *reinterpret_cast<const float4*>(wT + int64_t(j) * inner + ch + 4);
    y[0] += a.x * x[0], y[1] += a.y * x[1], y[2] += a.z * x[2], y[3] += a.w * x[3];
    y[4] += c.x * x[4], y[5] += c.y * x[5], y[6] += c.z * x[6], y[7] += c.w * x[7];
  }
#pragma unroll
  for (int j = 0; j < K - 1; ++j) *reinterpret_cast<uint4*>(tl + int64_t(j) * inner) = in[j + 1];
  float g[8];
  unpack8(gr, g);
#pragma unroll
  for (int e = 0; e < 8; ++e) y[e] = silu(y[e]) * g[e];
  *reinterpret_cast<uint4*>(V + int64_t(s) * inner + ch) = pack8(y);
}

// Runs after the prefill conv: keeps the last K-1 inputs. Increasing j reads slots at or past L+j, never ones already rewritten.
__global__ void convTailKernel(const bf16* U, bf16* tail, int B, int L, int inner, int K) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(B) * inner) return;
  const int ch = int(idx % inner), s = int(idx / inner);
  bf16* tl = tail + int64_t(s) * (K - 1) * inner;
  for (int j = 0; j < K - 1; ++j) {
    const int x = L - (K - 1) + j;
    tl[int64_t(j) * inner + ch] = x >= 0 ? U[(int64_t(s) * L + x) * 2 * inner + ch] : tl[int64_t(K - 1 + x) * inner + ch];
  }
}

// ---------------------------------------------------------------- Taylor linear attention

// Compact feature i of x: 1, x_a / d^(1/4), x_a^2 / (sqrt2 sqrt d) or x_a x_b / sqrt d (as cpu_backend.cpp's taylor()).
struct FeatureTable {
  int16_t a[1024], b[1024];
  float c[1024];
};

__device__ inline float feature(const FeatureTable& ft, int i, const bf16* x) {
  const int a = ft.a[i], b = ft.b[i];
  if (a < 0) return 1.f;
  const float xa = __bfloat162float(x[a]);
  return b < 0 ? xa * ft.c[i] : xa * __bfloat162float(x[b]) * ft.c[i];
}

__device__ void buildTable(FeatureTable& ft, int f, float rd) {
  const float rrd = sqrtf(rd);
  for (int i = threadIdx.x; i < 1 + f + f * (f + 1) / 2; i += blockDim.x) {
    if (i == 0) { ft.a[i] = -1; ft.b[i] = -1; ft.c[i] = 1.f; continue; }
    if (i <= f) { ft.a[i] = int16_t(i - 1); ft.b[i] = -1; ft.c[i] = 1.f / rrd; continue; }
    int k = i - 1 - f, a = 0;
    while (k >= f - a) k -= f - a, ++a;  // row a of the upper triangle holds f - a pairs
    const int b = a + k;
    ft.a[i] = int16_t(a), ft.b[i] = int16_t(b);
    ft.c[i] = a == b ? 1.f / (sqrtf(2.f) * rd) : 1.f / rd;
  }
}

struct LaArgs {
  const bf16* QKV;  // [T, ld]: q at qOff, k at kOff, v at vOff (head-major)
  int ld, qOff, kOff, vOff;
  const bf16* ENC;  // JRT: [T, ldEnc], k_enc at 0, v_enc at h*f (null otherwise)
  int ldEnc;
  const int* encLen;      // per slot, applied only on fresh states
  const int64_t* pos;     // per slot
  float* S;               // [slots, h, F, dh]
  float* z;               // [slots, h, F]
  bf16* Y;                // [T, h*dh]
  int B, L, h, f, F, dh, C;
  float rd, eps;
};

// One block per (slot, head): chunks of C tokens, quadratic inside a chunk, state carried across chunks.
__global__ void laPrefillKernel(LaArgs a) {
  extern __shared__ float smem[];
  __shared__ FeatureTable ft;
  const int s = blockIdx.x / a.h, hd = blockIdx.x % a.h;
  const int F = a.F, dh = a.dh, C = a.C;
  float* sS = smem;                 // [F, dh]
  float* sz = sS + F * dh;          // [F]
  float* pq = sz + F;               // [C, F]
  float* pk = pq + C * F;           // [C, F]
  float* sv = pk + C * F;           // [C, dh]
  float* sa = sv + C * dh;          // [C, C]
  float* sden = sa + C * C;         // [C]
  buildTable(ft, a.f, a.rd);
  float* gS = a.S + (int64_t(s) * a.h + hd) * F * dh;
  float* gz = a.z + (int64_t(s) * a.h + hd) * F;
  for (int i = threadIdx.x; i < F * dh; i += blockDim.x) sS[i] = gS[i];
  for (int i = threadIdx.x; i < F; i += blockDim.x) sz[i] = gz[i];
  __syncthreads();
  const int64_t base = int64_t(s) * a.L;

  auto fold = [&](int cn) {  // state += phi(k)^T v over the cn rows in pk / sv
    for (int idx = threadIdx.x; idx < F * dh; idx += blockDim.x) {
      const int i = idx / dh, j = idx % dh;
      float acc = 0;
      for (int u = 0; u < cn; ++u) acc += pk[u * F + i] * sv[u * dh + j];
      sS[idx] += acc;
    }
    for (int i = threadIdx.x; i < F; i += blockDim.x) {
      float acc = 0;
      for (int u = 0; u < cn; ++u) acc += pk[u * F + i];
      sz[i] += acc;
    }
  };

  // JRT-RNN: a fresh state starts from the non-causal prefix read through the encoder projections
  if (a.ENC && a.pos[s] == 0) {
    const int e = min(a.encLen[s], a.L);
    for (int c0 = 0; c0 < e; c0 += C) {
      const int cn = min(C, e - c0);
      for (int idx = threadIdx.x; idx < cn * F; idx += blockDim.x) {
        const int t = idx / F, i = idx % F;
        pk[idx] = feature(ft, i, a.ENC + (base + c0 + t) * a.ldEnc + hd * a.f);
      }
      for (int idx = threadIdx.x; idx < cn * dh; idx += blockDim.x) {
        const int t = idx / dh, j = idx % dh;
        sv[idx] = __bfloat162float(a.ENC[(base + c0 + t) * a.ldEnc + a.h * a.f + hd * dh + j]);
      }
      __syncthreads();
      fold(cn);
      __syncthreads();
    }
  }

  for (int c0 = 0; c0 < a.L; c0 += C) {
    const int cn = min(C, a.L - c0);
    for (int idx = threadIdx.x; idx < cn * F; idx += blockDim.x) {
      const int t = idx / F, i = idx % F;
      const bf16* row = a.QKV + (base + c0 + t) * a.ld;
      pq[idx] = feature(ft, i, row + a.qOff + hd * a.f);
      pk[idx] = feature(ft, i, row + a.kOff + hd * a.f);
    }
    for (int idx = threadIdx.x; idx < cn * dh; idx += blockDim.x) {
      const int t = idx / dh, j = idx % dh;
      sv[idx] = __bfloat162float(a.QKV[(base + c0 + t) * a.ld + a.vOff + hd * dh + j]);
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < cn * cn; idx += blockDim.x) {
      const int t = idx / cn, u = idx % cn;
      float dot = 0;
      if (u <= t)
        for (int i = 0; i < F; ++i) dot += pq[t * F + i] * pk[u * F + i];
      sa[t * C + u] = dot;
    }
    __syncthreads();
    for (int t = threadIdx.x; t < cn; t += blockDim.x) {
      float den = 0;
      for (int i = 0; i < F; ++i) den += pq[t * F + i] * sz[i];
      for (int u = 0; u <= t; ++u) den += sa[t * C + u];
      sden[t] = den;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < cn * dh; idx += blockDim.x) {
      const int t = idx / dh, j = idx % dh;
      float num = 0;
      for (int i = 0; i < F; ++i) num += pq[t * F + i] * sS[i * dh + j];
      for (int u = 0; u <= t; ++u) num += sa[t * C + u] * sv[u * dh + j];
      a.Y[(base + c0 + t) * (a.h * dh) + hd * dh + j] = __float2bfloat16(num / (sden[t] + a.eps));
    }
    __syncthreads();
    fold(cn);
    __syncthreads();
  }
  for (int i = threadIdx.x; i < F * dh; i += blockDim.x) gS[i] = sS[i];
  for (int i = threadIdx.x; i < F; i += blockDim.x) gz[i] = sz[i];
}

// ---------------------------------------------------------------- tensor-core prefill (linear and window attention)

// Shared-memory carving for the tensor-core kernels: each region starts on a 128-byte boundary (wmma needs 32).
struct SmemCarve {
  unsigned char* p;
  template <class T>
  __device__ T* take(size_t n) {
    T* r = reinterpret_cast<T*>(p);
    p += (n * sizeof(T) + 127) / 128 * 128;
    return r;
  }
};
inline size_t carveSize(std::initializer_list<size_t> bytes) {
  size_t s = 0;
  for (size_t b : bytes) s += (b + 127) / 128 * 128;
  return s;
}

// Chunked Taylor linear-attention prefill on tensor cores, one block of 8 warps per (slot, head), chunks of 64
// tokens. The fp32 state S [F, dh] lives in the warps' accumulator fragments for the whole sequence (each warp owns
// up to kLaTcTiles 16x16 tiles) and is folded in as S += phi(K)^T V with fp32 accumulation; for the product with
// phi(Q) it is split into two bf16 matrices (hi + lo, ~16 significant bits) so the inter-chunk term keeps near-fp32
// accuracy. Features are built once per chunk into shared memory in bf16 (zero-padded to a multiple of 16), the
// intra-chunk scores A = phi(Q) phi(K)^T stay fp32 for the denominator and go to bf16 for A V.
// dynamic shared memory a tensor-core block may take: the H100/H200 opt-in limit (227 KB) less the static tables
constexpr size_t kTcSmemLimit = 218 * 1024;
constexpr int kLaTcChunk = 64, kLaTcTiles = 10, kLaTcWarps = 8;
struct LaTcLayout {
  int FP, ldF, ldD, ldC, ldCf, ldDf;
  size_t bytes;
  bool knownLayout;  // the accumulator fragment holds the mma.m16n8k16 layout (checked on the device at start-up)
};

// Does a 16x16 fp32 accumulator fragment hold element (g + 8 ((e >> 1) & 1), 2 (lane & 3) + (e & 1) + 8 (e >> 2))
// in x[e] (g = lane / 4), as the two m16n8 halves of mma.sync do? One warp; *ok stays 1 only if every element agrees.
__global__ void fragmentLayoutKernel(int* ok) {
  using namespace nvcuda;
  __shared__ float m[256];
  for (int i = threadIdx.x; i < 256; i += 32) m[i] = float(i);
  __syncwarp();
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fr;
  wmma::load_matrix_sync(fr, m, 16, wmma::mem_row_major);
  const int lane = threadIdx.x, g = lane >> 2, c2 = (lane & 3) * 2;
  bool good = fr.num_elements == 8;
  for (int e = 0; e < fr.num_elements && good; ++e) {
    const int r = g + ((e >> 1) & 1) * 8, c = c2 + (e & 1) + (e >> 2) * 8;
    good = fr.x[e] == float(r * 16 + c);
  }
  if (!good) atomicExch(ok, 0);
}
inline LaTcLayout laTcLayout(int F, int dh, int f) {
  LaTcLayout l;
  l.knownLayout = false;
  const int C = kLaTcChunk;
  l.FP = (F + 15) / 16 * 16, l.ldF = l.FP + 8, l.ldD = dh + 8, l.ldC = C + 8, l.ldCf = C + 4, l.ldDf = dh + 4;
  const size_t af = size_t(C) * l.ldCf * 4, of = size_t(C) * l.ldDf * 4;
  l.bytes = carveSize({2 * size_t(l.FP) * l.ldD * 2, 2 * size_t(C) * l.ldF * 2, size_t(C) * l.ldD * 2, size_t(C) * l.ldC * 2,
                       std::max(af, of), size_t(l.FP) * 4, size_t(C) * 4, 2 * size_t(C) * f * 4, size_t(kLaTcWarps) * 256 * 4});
  return l;
}
inline bool laTcFits(int F, int dh, int f) {
  const int FP = (F + 15) / 16 * 16;
  return dh % 16 == 0 && dh <= 128 && f % 8 == 0 && FP / 16 * (dh / 16) <= kLaTcTiles * kLaTcWarps && laTcLayout(F, dh, f).bytes <= kTcSmemLimit;
}

__global__ void __launch_bounds__(kLaTcWarps * 32) laPrefillTcKernel(LaArgs a, LaTcLayout lay) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char smraw[];
  __shared__ FeatureTable ft;
  constexpr int C = kLaTcChunk;
  const int s = blockIdx.x / a.h, hd = blockIdx.x % a.h;
  const int F = a.F, dh = a.dh, f = a.f, FP = lay.FP;
  const int ldF = lay.ldF, ldD = lay.ldD, ldC = lay.ldC, ldCf = lay.ldCf, ldDf = lay.ldDf;
  SmemCarve sc{smraw};
  bf16* Shi = sc.take<bf16>(2 * size_t(FP) * ldD);
  bf16* Slo = Shi + size_t(FP) * ldD;
  bf16* Pq = sc.take<bf16>(2 * size_t(C) * ldF);
  bf16* Pk = Pq + size_t(C) * ldF;
  bf16* Vb = sc.take<bf16>(size_t(C) * ldD);
  bf16* Ab = sc.take<bf16>(size_t(C) * ldC);
  float* Af = sc.take<float>(size_t(C) * (ldCf > ldDf ? ldCf : ldDf));
  float* Of = Af;  // A (fp32) is spent before O is stored
  float* sz = sc.take<float>(FP);
  float* den = sc.take<float>(C);
  float* qx = sc.take<float>(2 * size_t(C) * f);
  float* kx = qx + size_t(C) * f;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* scratch = sc.take<float>(size_t(kLaTcWarps) * 256) + warp * 256;
  buildTable(ft, f, a.rd);
  float* gS = a.S + (int64_t(s) * a.h + hd) * F * dh;
  float* gz = a.z + (int64_t(s) * a.h + hd) * F;
  const int nT = dh / 16, nS = FP / 16 * nT;  // S tiles, row-major over (feature block, column block)
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> Sacc[kLaTcTiles];
  // the state's tiles: from global (rows past F are zero), into the fragments
#pragma unroll
  for (int k = 0; k < kLaTcTiles; ++k) {
    const int t = warp + k * kLaTcWarps;
    if (t >= nS) continue;
    const int i0 = t / nT * 16, j0 = t % nT * 16;
    for (int e = lane; e < 256; e += 32) {
      const int i = i0 + e / 16, j = j0 + e % 16;
      scratch[e] = i < F ? gS[int64_t(i) * dh + j] : 0.f;
    }
    __syncwarp();
    wmma::load_matrix_sync(Sacc[k], scratch, 16, wmma::mem_row_major);
    __syncwarp();
  }
  for (int i = threadIdx.x; i < FP; i += blockDim.x) sz[i] = i < F ? gz[i] : 0.f;
  // S as bf16 hi + lo, from the fragments (through the warp's scratch tile)
  auto splitState = [&]() {
#pragma unroll
    for (int k = 0; k < kLaTcTiles; ++k) {
      const int t = warp + k * kLaTcWarps;
      if (t >= nS) continue;
      const int i0 = t / nT * 16, j0 = t % nT * 16;
      if (lay.knownLayout) {  // each lane's fragment elements straight to their (row, column): no round trip
        const int g = lane >> 2, c2 = (lane & 3) * 2;
#pragma unroll
        for (int e = 0; e < 8; e += 2) {
          const int r = i0 + g + ((e >> 1) & 1) * 8, c = j0 + c2 + (e >> 2) * 8;
          const float x0 = Sacc[k].x[e], x1 = Sacc[k].x[e + 1];
          const __nv_bfloat162 hi = __floats2bfloat162_rn(x0, x1);
          const float2 hf = __bfloat1622float2(hi);
          *reinterpret_cast<__nv_bfloat162*>(Shi + size_t(r) * ldD + c) = hi;
          *reinterpret_cast<__nv_bfloat162*>(Slo + size_t(r) * ldD + c) = __floats2bfloat162_rn(x0 - hf.x, x1 - hf.y);
        }
        continue;
      }
      wmma::store_matrix_sync(scratch, Sacc[k], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const float x = scratch[e];
        const bf16 hi = __float2bfloat16(x);
        const size_t at = size_t(i0 + e / 16) * ldD + j0 + e % 16;
        Shi[at] = hi;
        Slo[at] = __float2bfloat16(x - __bfloat162float(hi));
      }
      __syncwarp();
    }
  };
  // S += phi(K)^T V and z += sum of phi(K) over the chunk in Pk / Vb (rows past the chunk are zero)
  auto fold = [&]() {
#pragma unroll
    for (int k = 0; k < kLaTcTiles; ++k) {
      const int t = warp + k * kLaTcWarps;
      if (t >= nS) continue;
      const int i0 = t / nT * 16, j0 = t % nT * 16;
#pragma unroll
      for (int u0 = 0; u0 < C; u0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, Pk + size_t(u0) * ldF + i0, ldF);
        wmma::load_matrix_sync(fb, Vb + size_t(u0) * ldD + j0, ldD);
        wmma::mma_sync(Sacc[k], fa, fb, Sacc[k]);
      }
    }
    for (int i = threadIdx.x; i < FP; i += blockDim.x) {
      float acc = 0;
      for (int u = 0; u < C; ++u) acc += __bfloat162float(Pk[size_t(u) * ldF + i]);
      sz[i] += acc;
    }
  };
  // phi of the staged rows (qx / kx, cn valid) into P (bf16), zero past F and past cn: a warp per row, lanes over
  // the features, so each lane's table entries are the same for every row
  auto features = [&](const float* x, bf16* P, int cn) {
    for (int i = lane; i < FP; i += 32) {
      const int ai = i < F ? ft.a[i] : -2, bi = i < F ? ft.b[i] : -1;
      const float ci = i < F ? ft.c[i] : 0.f;
      for (int t = warp; t < C; t += kLaTcWarps) {
        float v = 0.f;
        if (t < cn && ai != -2) v = ai < 0 ? 1.f : bi < 0 ? x[t * f + ai] * ci : x[t * f + ai] * x[t * f + bi] * ci;
        P[size_t(t) * ldF + i] = __float2bfloat16(v);
      }
    }
  };
  // V rows of the chunk (zero past cn) straight into Vb, 16 bytes a copy; waited for with the q / k rows
  auto loadV = [&](const bf16* src, int ld, int off, int cn) {
    const int per = dh / 8;
    for (int idx = threadIdx.x; idx < C * per; idx += blockDim.x) {
      const int t = idx / per, j = idx % per * 8;
      cpAsync16(Vb + size_t(t) * ldD + j, t < cn ? src + int64_t(t) * ld + off + j : src, t < cn);
    }
  };
  // cn rows of f bf16 at src + off (row stride ld) into x as fp32, 8 a load
  auto loadRows = [&](float* x, const bf16* src, int ld, int off, int cn) {
    const int per = f / 8;
    for (int idx = threadIdx.x; idx < cn * per; idx += blockDim.x) {
      const int t = idx / per, j = idx % per * 8;
      unpack8(*reinterpret_cast<const uint4*>(src + int64_t(t) * ld + off + j), x + t * f + j);
    }
  };
  const int64_t base = int64_t(s) * a.L;
  __syncthreads();

  // JRT-RNN: a fresh state starts from the non-causal prefix read through the encoder projections
  if (a.ENC && a.pos[s] == 0) {
    const int e = min(a.encLen[s], a.L);
    for (int c0 = 0; c0 < e; c0 += C) {
      const int cn = min(C, e - c0);
      const bf16* rows = a.ENC + (base + c0) * a.ldEnc;
      loadV(rows, a.ldEnc, a.h * f + hd * dh, cn);
      loadRows(kx, rows, a.ldEnc, hd * f, cn);
      cpAsyncWaitAll();
      __syncthreads();
      features(kx, Pk, cn);
      __syncthreads();
      fold();
      __syncthreads();
    }
  }
  splitState();
  __syncthreads();

  const int nR = C / 16;
  for (int c0 = 0; c0 < a.L; c0 += C) {
    const int cn = min(C, a.L - c0);
    const bf16* rows = a.QKV + (base + c0) * a.ld;
    loadV(rows, a.ld, a.vOff + hd * dh, cn);
    loadRows(qx, rows, a.ld, a.qOff + hd * f, cn);
    loadRows(kx, rows, a.ld, a.kOff + hd * f, cn);
    cpAsyncWaitAll();
    __syncthreads();
    features(qx, Pq, cn);
    features(kx, Pk, cn);
    __syncthreads();
    // A = phi(Q) phi(K)^T (tiles on or below the diagonal), then O = phi(Q) (S_hi + S_lo) in registers
    for (int t = warp; t < nR * nR; t += kLaTcWarps) {
      const int rb = t / nR, cb = t % nR;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
      if (cb <= rb)
        for (int i0 = 0; i0 < FP; i0 += 16) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
          wmma::load_matrix_sync(fa, Pq + size_t(rb * 16) * ldF + i0, ldF);
          wmma::load_matrix_sync(fb, Pk + size_t(cb * 16) * ldF + i0, ldF);
          wmma::mma_sync(acc, fa, fb, acc);
        }
      wmma::store_matrix_sync(Af + size_t(rb * 16) * ldCf + cb * 16, acc, ldCf, wmma::mem_row_major);
    }
    constexpr int kOTiles = 4;  // C/16 x dh/16 output tiles over 8 warps: at most 4 each (dh <= 128)
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> O[kOTiles];
#pragma unroll
    for (int k = 0; k < kOTiles; ++k) {
      const int t = warp + k * kLaTcWarps;
      if (t >= nR * nT) continue;
      const int rb = t / nT, cb = t % nT;
      wmma::fill_fragment(O[k], 0.f);
      for (int i0 = 0; i0 < FP; i0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fh, fl;
        wmma::load_matrix_sync(fa, Pq + size_t(rb * 16) * ldF + i0, ldF);
        wmma::load_matrix_sync(fh, Shi + size_t(i0) * ldD + cb * 16, ldD);
        wmma::load_matrix_sync(fl, Slo + size_t(i0) * ldD + cb * 16, ldD);
        wmma::mma_sync(O[k], fa, fh, O[k]);
        wmma::mma_sync(O[k], fa, fl, O[k]);
      }
    }
    __syncthreads();
    // causal mask; the denominator from the fp32 scores and the carried key sum
    for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x) {
      const int t = idx / C, u = idx % C;
      Ab[size_t(t) * ldC + u] = __float2bfloat16(u <= t ? Af[size_t(t) * ldCf + u] : 0.f);
    }
    {  // four adjacent threads a row (blockDim = 4 C)
      const int t = threadIdx.x >> 2, q = threadIdx.x & 3;
      float dsum = 0;
      for (int u = q; u <= t; u += 4) dsum += Af[size_t(t) * ldCf + u];
      for (int i = q; i < FP; i += 4) dsum += __bfloat162float(Pq[size_t(t) * ldF + i]) * sz[i];
      dsum += __shfl_xor_sync(0xffffffff, dsum, 1);
      dsum += __shfl_xor_sync(0xffffffff, dsum, 2);
      if (q == 0) den[t] = dsum;
    }
    __syncthreads();
    // O += A V, to shared memory; then fold this chunk into the state
#pragma unroll
    for (int k = 0; k < kOTiles; ++k) {
      const int t = warp + k * kLaTcWarps;
      if (t >= nR * nT) continue;
      const int rb = t / nT, cb = t % nT;
      for (int u0 = 0; u0 <= rb * 16; u0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, Ab + size_t(rb * 16) * ldC + u0, ldC);
        wmma::load_matrix_sync(fb, Vb + size_t(u0) * ldD + cb * 16, ldD);
        wmma::mma_sync(O[k], fa, fb, O[k]);
      }
      wmma::store_matrix_sync(Of + size_t(rb * 16) * ldDf + cb * 16, O[k], ldDf, wmma::mem_row_major);
    }
    fold();
    splitState();
    __syncthreads();
    bf16* Y = a.Y + (base + c0) * (a.h * dh) + hd * dh;
    for (int idx = threadIdx.x; idx < cn * (dh / 8); idx += blockDim.x) {
      const int t = idx / (dh / 8), j = idx % (dh / 8) * 8;
      const float inv = 1.f / (den[t] + a.eps);
      float o[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) o[e] = Of[size_t(t) * ldDf + j + e] * inv;
      *reinterpret_cast<uint4*>(Y + int64_t(t) * (a.h * dh) + j) = pack8(o);
    }
    __syncthreads();
  }
  // the state back to global, exact fp32
#pragma unroll
  for (int k = 0; k < kLaTcTiles; ++k) {
    const int t = warp + k * kLaTcWarps;
    if (t >= nS) continue;
    const int i0 = t / nT * 16, j0 = t % nT * 16;
    wmma::store_matrix_sync(scratch, Sacc[k], 16, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 256; e += 32) {
      const int i = i0 + e / 16, j = j0 + e % 16;
      if (i < F) gS[int64_t(i) * dh + j] = scratch[e];
    }
    __syncwarp();
  }
  for (int i = threadIdx.x; i < F; i += blockDim.x) gz[i] = sz[i];
}

// Decode (one token per slot): one pass over the state updates it and forms the output from the updated rows.
// Threads: (dh / VEC) column groups x G row groups; each thread moves VEC contiguous floats of a row (float4 where
// the head dim allows), kLaRowsInFlight rows' loads in flight (on an H200, 8 in flight ran 14% slower than 4 at the
// based-1b shape). The first rows of the state are loaded before the feature table and phi(q), phi(k) are built
// (the state does not depend on this step's projections), each group of rows' loads is issued before the previous
// group is updated (double buffering), and the key sum z is updated by one feature a thread in parallel. The kernel
// before this one issued its first loads only after the features, and let one lane of each warp walk its rows'
// z with a dependent load each: 112 against 84 us a layer at based-1b (the state's traffic at the copy bandwidth
// is 76 us).
constexpr int kLaRowsInFlight = 4;
template <int VEC>
__global__ void __launch_bounds__(256) laDecodeKernel(LaArgs a) {
  using Vec = typename std::conditional<VEC == 4, float4, float>::type;
  __shared__ FeatureTable ft;
  __shared__ float pq[1024], pk[1024], v[256], num[1024];
  const int s = blockIdx.x / a.h, hd = blockIdx.x % a.h;
  const int F = a.F, dh = a.dh, cols = dh / VEC, G = blockDim.x / cols;
  const int jc = threadIdx.x % cols, g = threadIdx.x / cols;
  Vec* __restrict__ S = reinterpret_cast<Vec*>(a.S + (int64_t(s) * a.h + hd) * F * dh);
  float* __restrict__ z = a.z + (int64_t(s) * a.h + hd) * F;
  constexpr int R = kLaRowsInFlight;
  Vec cur[R];
#pragma unroll
  for (int u = 0; u < R; ++u) {
    const int i = g + u * G;
    if (i < F) cur[u] = S[int64_t(i) * cols + jc];
  }
  const float z0 = threadIdx.x < F ? z[threadIdx.x] : 0.f;
  buildTable(ft, a.f, a.rd);
  // all above is this kernel's own state from the step before (and constants): it loads while the previous kernel
  // (the projection writing QKV) ends
  pdlEnter();
  __syncthreads();
  const bf16* row = a.QKV + int64_t(s) * a.ld;
  for (int i = threadIdx.x; i < F; i += blockDim.x) {
    pq[i] = feature(ft, i, row + a.qOff + hd * a.f);
    pk[i] = feature(ft, i, row + a.kOff + hd * a.f);
  }
  for (int j = threadIdx.x; j < dh; j += blockDim.x) v[j] = __bfloat162float(row[a.vOff + hd * dh + j]);
  __syncthreads();
  float dpart = 0;
  for (int i = threadIdx.x; i < F; i += blockDim.x) {
    const float zi = (i == threadIdx.x ? z0 : z[i]) + pk[i];
    z[i] = zi;
    dpart += pq[i] * zi;
  }
  float acc[VEC], vj[VEC];
#pragma unroll
  for (int e = 0; e < VEC; ++e) acc[e] = 0.f, vj[e] = v[jc * VEC + e];
  for (int i0 = g; i0 < F; i0 += R * G) {
    Vec nxt[R];
#pragma unroll
    for (int u = 0; u < R; ++u) {
      const int i = i0 + (R + u) * G;
      if (i < F) nxt[u] = S[int64_t(i) * cols + jc];
    }
#pragma unroll
    for (int u = 0; u < R; ++u) {
      const int i = i0 + u * G;
      if (i < F) {
        float* x = reinterpret_cast<float*>(&cur[u]);
        const float ki = pk[i], qi = pq[i];
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          x[e] += ki * vj[e];
          acc[e] += qi * x[e];
        }
        S[int64_t(i) * cols + jc] = cur[u];
      }
      cur[u] = nxt[u];
    }
  }
#pragma unroll
  for (int e = 0; e < VEC; ++e) num[g * dh + jc * VEC + e] = acc[e];
  const float den = blockSum(dpart);  // its barriers also order the num stores before the reads below
  for (int j = threadIdx.x; j < dh; j += blockDim.x) {
    float n = 0;
    for (int k = 0; k < G; ++k) n += num[k * dh + j];
    a.Y[int64_t(s) * (a.h * dh) + hd * dh + j] = __float2bfloat16(n / (den + a.eps));
  }
}

// ---------------------------------------------------------------- sliding-window softmax attention

// A thread per (token, frequency): the angle's powf and sincosf once, applied to that pair in every head's q and k
// (a thread per head as well spent the prefill's rotary time on the same transcendental 2h times over).
__global__ void rotaryKernel(bf16* QKV, const int64_t* pos, int B, int L, int d, int h, int dh, int rd, float base) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int half = rd / 2;
  if (idx >= int64_t(B) * L * half) return;
  const int i = int(idx % half);
  const int64_t t = idx / half;
  const int s = int(t / L), tt = int(t % L);
  const float invFreq = powf(base, -float(2 * i) / float(rd));
  const float ang = float(pos[s] + tt) * invFreq;
  float sn, cs;
  sincosf(ang, &sn, &cs);
  for (int part = 0; part < 2; ++part)
    for (int hd = 0; hd < h; ++hd) {
      bf16* x = QKV + t * 3 * d + part * d + hd * dh;
      const float x1 = __bfloat162float(x[i]), x2 = __bfloat162float(x[i + half]);
      x[i] = __float2bfloat16(x1 * cs - x2 * sn);
      x[i + half] = __float2bfloat16(x1 * sn + x2 * cs);
    }
}

struct SwArgs {
  const bf16* QKV;  // [T, 3d], rotary applied
  // ring [slots, W+1, d] in bf16: its rows are keys (rotary applied) and values the projection wrote in bf16, so
  // the narrower ring is exact and moves half the bytes of an fp32 one
  const bf16* keys;
  const bf16* values;
  const int64_t* pos;
  bf16* Y;  // [T, d]
  int B, L, d, h, dh, W;
  float scale;
};

// One warp per (token, head): online softmax over the window, each lane holding dh/32 output columns.
__global__ void swAttentionKernel(SwArgs a) {
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= int64_t(a.B) * a.L * a.h) return;
  const int hd = int(warp % a.h);
  const int64_t t = warp / a.h;
  const int s = int(t / a.L), tt = int(t % a.L);
  const int64_t p0 = a.pos[s], p = p0 + tt, lo = p - a.W > 0 ? p - a.W : 0;
  const int ring = a.W + 1, per = (a.dh + 31) / 32;
  // lane owns columns lane, lane+32, ...; lanes past dh (head dims under 32) carry zeros
  float q[4], acc[4];
  for (int e = 0; e < 4; ++e) {
    const int col = lane + 32 * e;
    q[e] = e < per && col < a.dh ? __bfloat162float(a.QKV[t * 3 * a.d + hd * a.dh + col]) : 0.f;
    acc[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int64_t jpos = lo; jpos <= p; ++jpos) {
    float kv[4], vv[4];
    const bool fresh = jpos >= p0;
    const bf16* r = a.QKV + (int64_t(s) * a.L + (jpos - p0)) * 3 * a.d;
    const int64_t off = (int64_t(s) * ring + jpos % ring) * a.d + hd * a.dh;
    for (int e = 0; e < 4; ++e) {
      const int col = lane + 32 * e;
      const bool ok = e < per && col < a.dh;
      kv[e] = !ok ? 0.f : __bfloat162float(fresh ? r[a.d + hd * a.dh + col] : a.keys[off + col]);
      vv[e] = !ok ? 0.f : __bfloat162float(fresh ? r[2 * a.d + hd * a.dh + col] : a.values[off + col]);
    }
    float dot = 0;
    for (int e = 0; e < 4; ++e) dot += q[e] * kv[e];
    dot = warpSum(dot) * a.scale;
    const float mn = fmaxf(m, dot), corr = __expf(m - mn), pj = __expf(dot - mn);
    l = l * corr + pj;
    for (int e = 0; e < 4; ++e) acc[e] = acc[e] * corr + pj * vv[e];
    m = mn;
  }
  for (int e = 0; e < per; ++e)
    if (lane + 32 * e < a.dh) a.Y[t * a.d + hd * a.dh + lane + 32 * e] = __float2bfloat16(acc[e] / l);
}

// Decode (one token per slot): a block per (slot, head). Scores are spread over the block's warps (each warp a
// strided subset of the window) instead of one warp walking the window serially, then the weighted sum of values
// runs with threads over (column, key group) so every ring read is coalesced.
__global__ void swDecodeKernel(SwArgs a) {
  __shared__ float q[128], sc[1024], red[64], outp[256];
  const int s = blockIdx.x / a.h, hd = blockIdx.x % a.h;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t p = a.pos[s], lo = p - a.W > 0 ? p - a.W : 0;
  const int n = int(p - lo + 1), ring = a.W + 1;
  const bf16* row = a.QKV + int64_t(s) * 3 * a.d;
  for (int e = threadIdx.x; e < a.dh; e += blockDim.x) q[e] = __bfloat162float(row[hd * a.dh + e]);
  __syncthreads();
  for (int j = warp; j < n; j += warps) {
    const int64_t jp = lo + j;
    float part = 0;
    if (jp == p) {
      for (int e = lane; e < a.dh; e += 32) part += q[e] * __bfloat162float(row[a.d + hd * a.dh + e]);
    } else {
      const bf16* k = a.keys + (int64_t(s) * ring + jp % ring) * a.d + hd * a.dh;
      for (int e = lane; e < a.dh; e += 32) part += q[e] * __bfloat162float(k[e]);
    }
    part = warpSum(part);
    if (lane == 0) sc[j] = part * a.scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, sc[j]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = red[0];
  for (int w = 1; w < warps; ++w) m = fmaxf(m, red[w]);
  __syncthreads();
  float sum = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) sum += (sc[j] = __expf(sc[j] - m));
  sum = warpSum(sum);
  if (lane == 0) red[32 + warp] = sum;
  __syncthreads();
  sum = 0;
  for (int w = 0; w < warps; ++w) sum += red[32 + w];
  const int col = threadIdx.x % a.dh, g = threadIdx.x / a.dh, G = blockDim.x / a.dh;
  float acc = 0;
  for (int j = g; j < n; j += G) {
    const int64_t jp = lo + j;
    const float v = jp == p ? __bfloat162float(row[2 * a.d + hd * a.dh + col])
                            : __bfloat162float(a.values[(int64_t(s) * ring + jp % ring) * a.d + hd * a.dh + col]);
    acc += sc[j] * v;
  }
  outp[threadIdx.x] = acc;
  __syncthreads();
  if (g == 0) {
    for (int k = 1; k < G; ++k) acc += outp[k * a.dh + col];
    a.Y[int64_t(s) * a.d + hd * a.dh + col] = __float2bfloat16(acc / sum);
  }
}

// Decode with rotary and the ring write fused in, a block per (slot, head). The current key and value go to their
// ring row (position p replaces p - W - 1, already outside the window) and, for this step, stay in shared memory:
// the ring passes cover only the W rows before it (a full window is W + 1 rows, and reading the current one back
// from the ring cost a whole pass of its own: at 360m one pass of 128 rows instead of two). Each thread moves 8 contiguous bf16 of a row (16 bytes) and the dh / 8 threads of a row are
// adjacent lanes, so a row's dot product reduces with shuffles; loops run on block-uniform bounds for the shuffles'
// sake. The value rows of the first pass are loaded before the softmax's reductions, which do not need them. A
// single-pass form that loaded all of a thread's window rows (keys and values) before the rotary measured slower at
// based-1b (78 against 60 us a layer): 120 registers left 2 blocks an SM where this one runs 8.
constexpr int kSwRowsInFlight = 4;
__global__ void swDecodeFusedKernel(SwArgs a, bf16* keys, bf16* values, int rd, float base) {
  pdlEnter();
  __shared__ float qs[128], kc[128], vc[128], sc[1024], outp[2048], red[64];
  const int s = blockIdx.x / a.h, hd = blockIdx.x % a.h;
  const int dh = a.dh, cols = dh / 8, R = blockDim.x / cols;
  const int jc = threadIdx.x % cols, g = threadIdx.x / cols;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t p = a.pos[s], lo = p - a.W > 0 ? p - a.W : 0;
  const int n = int(p - lo + 1), ring = a.W + 1;
  const bf16* row = a.QKV + int64_t(s) * 3 * a.d + hd * dh;  // q; k at +d, v at +2d
  const int64_t headOff = int64_t(s) * ring * a.d + hd * dh;
  bf16* kr = keys + headOff + (p % ring) * a.d;
  bf16* vr = values + headOff + (p % ring) * a.d;
  const int half = rd / 2;
  for (int e = threadIdx.x; e < dh; e += blockDim.x) {
    float q = __bfloat162float(row[e]);
    bf16 k = row[a.d + e];
    if (e < rd) {  // as rotaryKernel, rounded to bf16 as it stores
      const int i = e < half ? e : e - half;
      const float invFreq = powf(base, -float(2 * i) / float(rd));
      float sn, cs;
      sincosf(float(p) * invFreq, &sn, &cs);
      const float q1 = __bfloat162float(row[i]), q2 = __bfloat162float(row[i + half]);
      const float k1 = __bfloat162float(row[a.d + i]), k2 = __bfloat162float(row[a.d + i + half]);
      q = __bfloat162float(__float2bfloat16(e < half ? q1 * cs - q2 * sn : q1 * sn + q2 * cs));
      k = __float2bfloat16(e < half ? k1 * cs - k2 * sn : k1 * sn + k2 * cs);
    }
    qs[e] = q;
    kr[e] = k;
    vr[e] = row[2 * a.d + e];
    kc[e] = __bfloat162float(k);  // as the ring holds them
    vc[e] = __bfloat162float(row[2 * a.d + e]);
  }
  __syncthreads();
  const int prior = n - 1;  // the ring rows before this token: j < prior is position lo + j
  if (warp == 0) {
    float part = 0;
    for (int e = lane; e < dh; e += 32) part += qs[e] * kc[e];
    part = warpSum(part);
    if (lane == 0) sc[prior] = part * a.scale;
  }
  float qv[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) qv[e] = qs[jc * 8 + e];
  auto at = [&](const bf16* ring0, int j) { return reinterpret_cast<const uint4*>(ring0 + headOff + ((lo + j) % ring) * a.d) + jc; };
  constexpr int U = kSwRowsInFlight;
  for (int b0 = 0; b0 < prior; b0 += U * R) {
    uint4 kv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = b0 + g + u * R;
      if (j < prior) kv[u] = *at(keys, j);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = b0 + g + u * R;
      float part = 0;
      if (j < prior) {
        float x[8];
        unpack8(kv[u], x);
#pragma unroll
        for (int e = 0; e < 8; ++e) part += qv[e] * x[e];
      }
      for (int o = cols / 2; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffff, part, o);
      if (j < prior && jc == 0) sc[j] = part * a.scale;
    }
  }
  uint4 vv[U];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int j = g + u * R;
    if (j < prior) vv[u] = *at(values, j);
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, sc[j]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = red[0];
  for (int w = 1; w < warps; ++w) m = fmaxf(m, red[w]);
  float sum = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) sum += (sc[j] = __expf(sc[j] - m));
  sum = warpSum(sum);
  if (lane == 0) red[32 + warp] = sum;
  __syncthreads();
  sum = 0;
  for (int w = 0; w < warps; ++w) sum += red[32 + w];
  float acc[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) acc[e] = g == 0 ? sc[prior] * vc[jc * 8 + e] : 0.f;  // the current row, once
  for (int b0 = 0; b0 < prior; b0 += U * R) {
    if (b0 > 0) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = b0 + g + u * R;
        if (j < prior) vv[u] = *at(values, j);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = b0 + g + u * R;
      if (j < prior) {
        float x[8];
        unpack8(vv[u], x);
        const float pj = sc[j];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] += pj * x[e];
      }
    }
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) outp[g * dh + jc * 8 + e] = acc[e];
  __syncthreads();
  for (int e = threadIdx.x; e < dh; e += blockDim.x) {
    float o = 0;
    for (int k = 0; k < R; ++k) o += outp[k * dh + e];
    a.Y[int64_t(s) * a.d + hd * dh + e] = __float2bfloat16(o / sum);
  }
}

// Runs after attention: the last W+1 keys and values go to their ring slots (position mod W+1).
__global__ void ringWriteKernel(const bf16* QKV, bf16* keys, bf16* values, const int64_t* pos, int B, int L, int d, int W) {
  const int ring = W + 1, keep = min(L, ring);
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(B) * keep * d) return;
  const int c = int(idx % d);
  const int k = int((idx / d) % keep), s = int(idx / (int64_t(d) * keep));
  const int tt = L - keep + k;
  const int64_t slot = (pos[s] + tt) % ring;
  const bf16* r = QKV + (int64_t(s) * L + tt) * 3 * d;
  keys[(int64_t(s) * ring + slot) * d + c] = r[d + c];
  values[(int64_t(s) * ring + slot) * d + c] = r[2 * d + c];
}

// Sliding-window softmax attention prefill on tensor cores: a block of 8 warps per (64-query block, head, slot).
// The block's keys are the W positions before its first query through its last (ring rows for positions before
// this forward, bf16 like the rest), staged in bf16; S = Q K^T and O = P V run on tensor
// cores, the masked softmax in fp32 between them (P rounded to bf16 for the product, its row sums taken from the
// rounded values so the weights stay normalized).
constexpr int kSwTcQ = 64, kSwTcWarps = 16;
struct SwTcLayout {
  int NK, ldH, ldS, ldP, ldO;
  size_t bytes;
};
inline SwTcLayout swTcLayout(int dh, int W) {
  SwTcLayout l;
  l.NK = (kSwTcQ + W + 15) / 16 * 16, l.ldH = dh + 8, l.ldS = l.NK + 4, l.ldP = l.NK + 8, l.ldO = dh + 4;
  // P (bf16) reuses the Q and K rows, spent once the scores are formed
  l.bytes = carveSize({std::max(size_t(kSwTcQ + l.NK) * l.ldH, size_t(kSwTcQ) * l.ldP) * 2, size_t(l.NK) * l.ldH * 2,
                       std::max(size_t(kSwTcQ) * l.ldS, size_t(kSwTcQ) * l.ldO) * 4, size_t(kSwTcQ) * 4});
  return l;
}
inline bool swTcFits(int dh, int W, int d) { return dh % 16 == 0 && d % 8 == 0 && swTcLayout(dh, W).bytes <= kTcSmemLimit; }

__global__ void __launch_bounds__(kSwTcWarps * 32) swPrefillTcKernel(SwArgs a, SwTcLayout lay) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char smraw[];
  const int q0 = blockIdx.x * kSwTcQ, hd = blockIdx.y, s = blockIdx.z;
  const int dh = a.dh, W = a.W, NK = lay.NK, ldH = lay.ldH, ldS = lay.ldS, ldP = lay.ldP, ldO = lay.ldO;
  SmemCarve sc{smraw};
  const size_t qk = size_t(kSwTcQ + NK) * ldH, pn = size_t(kSwTcQ) * ldP;
  bf16* Qs = sc.take<bf16>(qk > pn ? qk : pn);
  bf16* Ks = Qs + size_t(kSwTcQ) * ldH;
  bf16* Pb = Qs;  // over Q and K, spent once the scores are formed
  bf16* Vs = sc.take<bf16>(size_t(NK) * ldH);
  float* Sf = sc.take<float>(size_t(kSwTcQ) * (ldS > ldO ? ldS : ldO));
  float* Of = Sf;  // the scores are spent (into P) before O is stored
  float* rowSum = sc.take<float>(kSwTcQ);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t p0 = a.pos[s], first = p0 + q0 - W;  // absolute position of key row 0
  const int ring = W + 1;
  const int d = a.d;
  const bf16 zero = __float2bfloat16(0.f);
  (void)zero;
  // rows in 16-byte pieces, issued together (cp.async), from this forward's projections or the ring
  const int per = dh / 8;
  for (int idx = threadIdx.x; idx < kSwTcQ * per; idx += blockDim.x) {
    const int r = idx / per, c = idx % per * 8;
    const bool ok = q0 + r < a.L;
    cpAsync16(Qs + size_t(r) * ldH + c, ok ? a.QKV + (int64_t(s) * a.L + q0 + r) * 3 * d + hd * dh + c : a.QKV, ok);
  }
  for (int idx = threadIdx.x; idx < NK * per; idx += blockDim.x) {
    const int r = idx / per, c = idx % per * 8;
    const int64_t jp = first + r;
    const bool ok = r < kSwTcQ + W && jp >= 0 && jp - p0 < a.L;
    if (ok && jp < p0) {
      const int64_t off = (int64_t(s) * ring + jp % ring) * d + hd * dh + c;
      cpAsync16(Ks + size_t(r) * ldH + c, a.keys + off, true);
      cpAsync16(Vs + size_t(r) * ldH + c, a.values + off, true);
    } else {
      const bf16* row = ok ? a.QKV + (int64_t(s) * a.L + (jp - p0)) * 3 * d + hd * dh + c : a.QKV;
      cpAsync16(Ks + size_t(r) * ldH + c, ok ? row + d : row, ok);
      cpAsync16(Vs + size_t(r) * ldH + c, ok ? row + 2 * d : row, ok);
    }
  }
  cpAsyncWaitAll();
  __syncthreads();
  const int nR = kSwTcQ / 16, nK = NK / 16, nD = dh / 16;
  for (int t = warp; t < nR * nK; t += kSwTcWarps) {
    const int rb = t / nK, cb = t % nK;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
    // row r sees key rows r .. r + W: tiles wholly outside that band are skipped
    if (cb * 16 + 15 >= rb * 16 && cb * 16 <= rb * 16 + 15 + W)
      for (int k0 = 0; k0 < dh; k0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, Qs + size_t(rb * 16) * ldH + k0, ldH);
        wmma::load_matrix_sync(fb, Ks + size_t(cb * 16) * ldH + k0, ldH);
        wmma::mma_sync(acc, fa, fb, acc);
      }
    wmma::store_matrix_sync(Sf + size_t(rb * 16) * ldS + cb * 16, acc, ldS, wmma::mem_row_major);
  }
  __syncthreads();
  for (int r = warp; r < kSwTcQ; r += kSwTcWarps) {
    // key row kr is position first + kr; query r is position first + W + r: window kr in [r, r + W], kr >= -first
    const int lo = max(r, first < 0 ? int(-first) : 0), hi = r + W;
    float m = -INFINITY;
    for (int kr = lane; kr < NK; kr += 32)
      if (kr >= lo && kr <= hi) m = fmaxf(m, Sf[size_t(r) * ldS + kr] * a.scale);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
    float sum = 0;
    for (int kr = lane; kr < NK; kr += 32) {
      bf16 pv = zero;
      if (kr >= lo && kr <= hi) {
        pv = __float2bfloat16(__expf(Sf[size_t(r) * ldS + kr] * a.scale - m));
        sum += __bfloat162float(pv);
      }
      Pb[size_t(r) * ldP + kr] = pv;
    }
    sum = warpSum(sum);
    if (lane == 0) rowSum[r] = sum;
  }
  __syncthreads();
  for (int t = warp; t < nR * nD; t += kSwTcWarps) {
    const int rb = t / nD, cb = t % nD;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
    const int kLo = rb * 16 / 16 * 16, kHi = min(NK, rb * 16 + 16 + W);  // keys any row of the block can see
    for (int k0 = kLo; k0 < kHi; k0 += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
      wmma::load_matrix_sync(fa, Pb + size_t(rb * 16) * ldP + k0, ldP);
      wmma::load_matrix_sync(fb, Vs + size_t(k0) * ldH + cb * 16, ldH);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(Of + size_t(rb * 16) * ldO + cb * 16, acc, ldO, wmma::mem_row_major);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kSwTcQ * per; idx += blockDim.x) {
    const int r = idx / per, c = idx % per * 8;
    if (q0 + r >= a.L) continue;
    const float inv = 1.f / rowSum[r];
    float o[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = Of[size_t(r) * ldO + c + e] * inv;
    *reinterpret_cast<uint4*>(a.Y + (int64_t(s) * a.L + q0 + r) * d + hd * dh + c) = pack8(o);
  }
}

// C[T, out] = A[T, in] . W[out, in]^T + beta C, bf16 operands on tensor cores, fp32 accumulation.
// 64x64 output tile per block of 4 warps (32x32 each), k-steps of 32 staged through shared memory.
template <bool OutF32>
__global__ void wmmaGemmKernel(const bf16* A, int lda, const bf16* W, int64_t T, int in, int out, void* Cv, int ldc, float beta) {
  using namespace nvcuda;
  constexpr int TM = 64, TN = 64, TK = 32, PAD = 8;
  __shared__ __align__(32) bf16 sa[TM][TK + PAD];
  __shared__ __align__(32) bf16 sw[TN][TK + PAD];
  __shared__ __align__(32) float sc[TM][TN + 4];
  const int64_t m0 = int64_t(blockIdx.y) * TM;
  const int n0 = blockIdx.x * TN;
  const int warp = threadIdx.x >> 5, wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  for (int k0 = 0; k0 < in; k0 += TK) {
    for (int idx = threadIdx.x; idx < TM * TK; idx += blockDim.x) {
      const int r = idx / TK, c = idx % TK;
      const int64_t m = m0 + r;
      const int k = k0 + c;
      sa[r][c] = (m < T && k < in) ? A[m * lda + k] : __float2bfloat16(0.f);
      const int n = n0 + r;
      sw[r][c] = (n < out && k < in) ? W[int64_t(n) * in + k] : __float2bfloat16(0.f);
    }
    __syncthreads();
    for (int kk = 0; kk < TK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sa[wm + 16 * i][kk], TK + PAD);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sw[wn + 16 * j][kk], TK + PAD);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::store_matrix_sync(&sc[wm + 16 * i][wn + 16 * j], acc[i][j], TN + 4, wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < TM * TN; idx += blockDim.x) {
    const int r = idx / TN, c = idx % TN;
    const int64_t m = m0 + r;
    const int n = n0 + c;
    if (m >= T || n >= out) continue;
    if (OutF32) {
      float* C = static_cast<float*>(Cv) + m * ldc + n;
      *C = sc[r][c] + (beta != 0.f ? beta * *C : 0.f);
    } else {
      bf16* C = static_cast<bf16*>(Cv) + m * ldc + n;
      *C = __float2bfloat16(sc[r][c] + (beta != 0.f ? beta * __bfloat162float(*C) : 0.f));
    }
  }
}

int blocksFor(int64_t n, int threads) { return int((n + threads - 1) / threads); }

#include "skinny_gemm.cuh"

#ifdef BASED_HAVE_CUBLAS
constexpr size_t kWorkspaceBytes = size_t(64) << 20;

// Pseudo-random bf16 in [-1, 1): inputs for timing GEMM algorithms (never zeros, which run faster than real data).
__global__ void fillRandomBf16(bf16* x, size_t n, uint32_t seed) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    x[i] = __float2bfloat16(float(h >> 8) / float(1 << 23) - 1.f);
  }
}
#endif

bf16* uploadBf16(const float* src, size_t n) {
  std::vector<bf16> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = __float2bfloat16(src[i]);
  bf16* d = devAlloc<bf16>(n);
  CK(cudaMemcpy(d, h.data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
  return d;
}
float* uploadF32(const float* src, size_t n) {
  if (!src) return nullptr;
  float* d = devAlloc<float>(n);
  CK(cudaMemcpy(d, src, n * 4, cudaMemcpyHostToDevice));
  return d;
}
// Several projections reading the same input become one GEMM: their weight rows are stacked.
bf16* uploadStacked(std::initializer_list<const Linear*> parts, int in) {
  std::vector<float> all;
  for (auto* p : parts) all.insert(all.end(), p->w, p->w + size_t(p->out) * in);
  return uploadBf16(all.data(), all.size());
}
float* uploadStackedBias(std::initializer_list<const Linear*> parts) {
  bool any = false;
  for (auto* p : parts) any = any || p->b;
  if (!any) return nullptr;
  std::vector<float> all;
  for (auto* p : parts) {
    if (p->b) all.insert(all.end(), p->b, p->b + p->out);
    else all.insert(all.end(), p->out, 0.f);
  }
  return uploadF32(all.data(), all.size());
}

struct GpuLayer {
  float *norm1, *norm2;
  bf16 *fc1, *fc2;
  float *fc1b, *fc2b;
  bf16* mixIn;   // in_proj / [q;k;v] / Wqkv
  float* mixInB;
  int mixInOut;
  bf16* enc;     // JRT [k_enc; v_enc]
  float* encB;
  bf16* out;
  float* outB;
  float* convW;
  float* convWT;  // [K][inner], for the prefill kernel's contiguous loads
  float* convB;
  // state, per slot: the linear-attention state in fp32 (it accumulates); the conv tail and the window ring in
  // bf16, since they only hold rows the projections wrote in bf16
  float *S, *z;
  bf16 *tail, *keys, *values;
};

}  // namespace

struct GpuEngineImpl {
  ModelConfig cfg;
  int maxBatch;
  int64_t maxTokens;
#ifdef BASED_HAVE_CUBLAS
  cublasHandle_t blas = nullptr;
#endif
  bool useCublas = false;
  cudaStream_t stream;
  void* workspace = nullptr;
  bf16 *embed, *head;
  float* normF;
  std::vector<GpuLayer> layers;
  size_t weightBytes = 0, stateBytesPerSlot = 0, stateBytesTouchedPerStep = 0;
  // activations
  float* X;
  bf16 *H, *U, *V, *E;
  float* logits;
  int32_t* tokens;
  int64_t* pos;
  int* encLen;
  int64_t* rows;
  // EVAPORATE_GPU_PROFILE=1: events between kernel groups of an ungraphed step, summed per category
  bool profile = std::getenv("EVAPORATE_GPU_PROFILE") != nullptr;
  // EVAPORATE_GPU_PREFILL=simt: the scalar linear- and window-attention prefill kernels (for comparison)
  bool tensorCorePrefill = !(std::getenv("EVAPORATE_GPU_PREFILL") && std::string(std::getenv("EVAPORATE_GPU_PREFILL")) == "simt");
  double pendingFlop = 0;  // GEMM operations since the last mark, filed under that mark's category
  std::vector<std::pair<std::string, cudaEvent_t>> marks;
  std::map<std::string, double> profileMs;
  void mark(const char* what) {
    if (!profile) return;
    cudaEvent_t e;
    CK(cudaEventCreate(&e));
    CK(cudaEventRecord(e, stream));
    marks.emplace_back(what, e);
    if (pendingFlop > 0) profileMs[std::string("gflop ") + what] += pendingFlop / 1e9, pendingFlop = 0;
  }
  void collect() {
    if (!profile || marks.empty()) return;
    CK(cudaEventSynchronize(marks.back().second));
    for (size_t i = 1; i < marks.size(); ++i) {
      float ms;
      CK(cudaEventElapsedTime(&ms, marks[i - 1].second, marks[i].second));
      profileMs[marks[i].first] += ms;
    }
    for (auto& m : marks) cudaEventDestroy(m.second);
    marks.clear();
  }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t graphExec = nullptr;
  int graphB = 0;

  // Our wgmma GEMM (skinny_gemm.cuh) for calls of at most 128 rows, on a second, packed copy of the weights; cuBLAS
  // builds on sm_90a only, and only when asked: EVAPORATE_GPU_SKINNY=1 runs it for every call it takes,
  // EVAPORATE_GPU_SKINNY=auto makes it one more candidate of the per-shape tuning (tune). It is correct (gemmcheck)
  // but slower than cuBLAS at every decode shape so far (bench/results/based-gpu.json, skinny_gemm; auto chose
  // cuBLAS everywhere), and it doubles the weights' memory, hence off by default.
  struct Packed {
    bf16* blocks;
    int in, out, kStages, tiles;
    int use;  // how a step calls it: 0 bf16 out, 1 fp32 residual add, 2 fp32 out (for gemmcheck's timing)
  };
  int maxSplit = 1 << 20, probe = 0;  // gemmcheck varies them
  // which kernel: 128 outputs a CTA (default), 256 (EVAPORATE_GPU_SKINNY_TILE=256), or 128 with producer and consumer
  // warpgroups (=ws)
  enum class SgKind { Tile128, Tile256, Specialized };
  static SgKind sgKindFromEnv() {
    const char* v = std::getenv("EVAPORATE_GPU_SKINNY_TILE");
    const std::string t = v ? v : "";
    return t == "256" ? SgKind::Tile256 : t == "ws" ? SgKind::Specialized : SgKind::Tile128;
  }
  static const char* sgKindName(SgKind k) { return k == SgKind::Tile256 ? "256-wide" : k == SgKind::Specialized ? "ws 128-wide" : "128-wide"; }
  SgKind sgKind = sgKindFromEnv();
  // split-K parts summed through a cluster's distributed shared memory (default) or fp32 atomics in L2
  // (EVAPORATE_GPU_SKINNY_REDUCE=atomic): at 128 rows a CTA's part (64 KB fp32) outweighs its 16 KB weight block
  static constexpr int kSgMaxCluster = 8;  // the portable cluster size
  bool sgClusterReduce = !(std::getenv("EVAPORATE_GPU_SKINNY_REDUCE") && std::string(std::getenv("EVAPORATE_GPU_SKINNY_REDUCE")) == "atomic");
  const char* sgReduceName() const { return sgClusterReduce ? "cluster" : "atomics"; }
  bool skinny = false, skinnyForced = false;
  // programmatic dependent launch for our kernels (launchK, skinnyGemm); EVAPORATE_GPU_PDL=0 turns it off
  bool pdl = !(std::getenv("EVAPORATE_GPU_PDL") && std::string(std::getenv("EVAPORATE_GPU_PDL")) == "0");
  int numSms = 0;
  // our kernels' launches: with programmatic dependent launch where the device has it (pdl), each waiting in
  // pdlEnter / pdlWait for what the previous kernel wrote
  // appends the programmatic-dependent-launch attribute where it is on
  void addPdl(cudaLaunchAttribute* attr, unsigned& n) const {
    if (!pdl) return;
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  template <class... P, class... A>
  void launchK(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A&&... args) {
    cudaLaunchConfig_t lc = {};
    lc.gridDim = grid, lc.blockDim = block, lc.dynamicSmemBytes = smem, lc.stream = stream;
    cudaLaunchAttribute attr[1];
    unsigned na = 0;
    addPdl(attr, na);
    lc.attrs = attr, lc.numAttrs = na;
    CK(cudaLaunchKernelEx(&lc, kernel, std::forward<A>(args)...));
  }
  std::map<const bf16*, Packed> packed;
  float* sgWs = nullptr;
  unsigned* sgCounts = nullptr;
  int sgWsOut = 0;  // the widest output the split-K workspace holds
  void pack(const bf16* W, int in, int out, int use) {
    if (!skinny || !W || packed.count(W) || in % 8 != 0 || out % 4 != 0) return;
    Packed p{nullptr, in, out, (in + kSgK - 1) / kSgK, (out + kSgOut - 1) / kSgOut, use};
    const int64_t n = int64_t((p.tiles + 1) / 2 * 2) * p.kStages * kSgOut * kSgK;  // an even count, for 256-wide tiles
    p.blocks = devAlloc<bf16>(size_t(n));
    sgPackKernel<<<1024, 256, 0, stream>>>(W, p.blocks, in, out, p.kStages, n);
    LAUNCHED();
    packed[W] = p;
  }
  void setUpSkinnyGemm() {
    const char* env = std::getenv("EVAPORATE_GPU_SKINNY");
    const std::string on = env ? env : "";
    if (!useCublas || (on != "1" && on != "auto")) return;
    skinnyForced = on == "1";
    int* d = devAlloc<int>(1);
    sgProbeKernel<<<1, 1, 0, stream>>>(d);
    LAUNCHED();
    int ok = 0;
    CK(cudaMemcpyAsync(&ok, d, 4, cudaMemcpyDeviceToHost, stream));
    CK(cudaStreamSynchronize(stream));
    CK(cudaFree(d));
    if (!ok) return;
    int dev;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, dev));
    CK(cudaFuncSetAttribute(sgGemmKernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(SgShape<128>::smem)));
    CK(cudaFuncSetAttribute(sgGemmKernel<256>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(SgShape<256>::smem)));
    CK(cudaFuncSetAttribute(sgGemmWsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSgWsSmemBytes)));
    skinny = true;
    const int d0 = cfg.dModel;
    int widestBf16 = 0, mostTiles = 0;
    for (size_t li = 0; li < layers.size(); ++li) {
      const GpuLayer& w = layers[li];
      const LayerConfig& Lc = cfg.layers[li];
      const int outIn = Lc.kind == MixerKind::BaseConv ? Lc.convInner
                        : Lc.kind == MixerKind::SlidingWindow ? d0
                                                              : Lc.laHeads * Lc.laHeadDim;
      pack(w.mixIn, d0, w.mixInOut, 0);
      pack(w.out, outIn, d0, 1);
      pack(w.fc1, d0, 2 * cfg.mlpHidden, 0);
      pack(w.fc2, cfg.mlpHidden, d0, 1);
      if (w.enc) pack(w.enc, d0, Lc.laHeads * Lc.laFeatureDim + Lc.laHeads * Lc.laHeadDim, 0);
    }
    pack(head, d0, cfg.vocabPadded, 2);
    for (auto& [W, p] : packed) {  // the split-K workspace serves bf16 outputs only
      if (p.use == 0) widestBf16 = std::max(widestBf16, p.out);
      mostTiles = std::max(mostTiles, p.tiles);
    }
    sgWsOut = widestBf16;
    sgWs = devAlloc<float>(size_t(kSgRows) * widestBf16);
    sgCounts = devAlloc<unsigned>(size_t(mostTiles));
    CK(cudaMemsetAsync(sgWs, 0, size_t(kSgRows) * widestBf16 * 4, stream));
    CK(cudaMemsetAsync(sgCounts, 0, size_t(mostTiles) * 4, stream));
    CK(cudaStreamSynchronize(stream));
  }
#ifdef BASED_HAVE_CUBLAS
  // Our GEMM against cublasGemmEx on random inputs, for every packed shape at 128 and 5 rows, in each way a step
  // calls it (bf16 out, fp32 residual add, fp32 out); prints a line a shape and returns the worst relative error.
  double checkSkinny() {
    if (!skinny) {
      std::printf("skinny GEMM: not in this build or device\n");
      return -1;
    }
    int maxIn = 0, maxOut = 0;
    for (auto& [W, p] : packed) maxIn = std::max(maxIn, p.in), maxOut = std::max(maxOut, p.out);
    bf16* A = devAlloc<bf16>(size_t(kSgRows) * maxIn);
    void *ref = devAlloc<float>(size_t(kSgRows) * maxOut), *got = devAlloc<float>(size_t(kSgRows) * maxOut);
    fillRandomBf16<<<256, 256, 0, stream>>>(A, size_t(kSgRows) * maxIn, 99u);
    LAUNCHED();
    std::vector<float> r, q;
    auto fetch = [&](void* d, bool f32, size_t n, std::vector<float>& out) {
      out.resize(n);
      if (f32) {
        CK(cudaMemcpyAsync(out.data(), d, n * 4, cudaMemcpyDeviceToHost, stream));
        CK(cudaStreamSynchronize(stream));
        return;
      }
      std::vector<bf16> h(n);
      CK(cudaMemcpyAsync(h.data(), d, n * 2, cudaMemcpyDeviceToHost, stream));
      CK(cudaStreamSynchronize(stream));
      for (size_t i = 0; i < n; ++i) out[i] = __bfloat162float(h[i]);
    };
    double worst = 0;
    const SgKind kindWas = sgKind;
    const bool reduceWas = sgClusterReduce;
    std::map<std::pair<int, int>, bool> seen;
    for (auto& [W, p] : packed) {
      if (seen.count({p.in, p.out})) continue;
      seen[{p.in, p.out}] = true;
      for (int variant = 0; variant < 6; ++variant) {  // each kernel, its split-K parts through a cluster or atomics
        const SgKind kind = std::array{SgKind::Tile128, SgKind::Tile256, SgKind::Specialized}[variant % 3];
        sgKind = kind, sgClusterReduce = variant < 3;
        for (int T : {kSgRows, 5}) {
          for (int way = 0; way < 3; ++way) {  // bf16 store, fp32 add, fp32 store
            const bool f32 = way > 0;
            const float beta = way == 1 ? 1.f : 0.f, alpha = 1.f;
            const size_t n = size_t(T) * p.out;
            for (void* c : {ref, got}) {  // the same starting residual in both
              if (f32) fillRandomBf16<<<256, 256, 0, stream>>>(static_cast<bf16*>(c), n * 2, 5u);
              else CK(cudaMemsetAsync(c, 0, n * 2, stream));
            }
            LAUNCHED();
            CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, p.out, T, p.in, &alpha, W, CUDA_R_16BF, p.in, A, CUDA_R_16BF, p.in, &beta, ref,
                            f32 ? CUDA_R_32F : CUDA_R_16BF, p.out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            if (!skinnyGemm(A, T, p.in, W, p.out, got, f32, p.out, beta)) throw EngineError("cuda_error", "skinny GEMM refused a packed shape");
            fetch(ref, f32, n, r), fetch(got, f32, n, q);
            double num = 0, den = 0;
            for (size_t i = 0; i < n; ++i) num += double(r[i] - q[i]) * (r[i] - q[i]), den += double(r[i]) * r[i];
            const double err = std::isfinite(num) ? std::sqrt(num / std::max(den, 1e-30)) : INFINITY;
            worst = std::max(worst, err);
            std::printf("skinny GEMM %4d rows x %5d in -> %5d out, %s, %s tiles, %s: rel err %.2e\n", T, p.in, p.out,
                        way == 0 ? "bf16      " : way == 1 ? "fp32 add  " : "fp32 store", sgKindName(kind), sgReduceName(), err);
          }
        }
      }
    }
    // time: each shape's weights in turn (as many as the model has, so most sets outgrow the L2), back to back,
    // in the way a step calls them; cuBLAS as the step used it before, ours at several split-K limits
    for (SgKind kind : {SgKind::Tile128, SgKind::Specialized}) {
      sgKind = kind;
      std::printf("skinny clusters resident at once, %s tiles:", sgKindName(kind));
      for (int c = 2; c <= kSgMaxCluster; ++c) std::printf(" %d of %d", sgClustersResident(sgLaunchConfig(), c), c);
      std::printf("\n");
    }
    std::map<std::tuple<int, int, int>, std::vector<const bf16*>> groups;
    for (auto& [W, p] : packed) groups[{p.in, p.out, p.use}].push_back(W);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)), CK(cudaEventCreate(&e1));
    for (auto& [key, ws] : groups) {
      const auto [in, out, use] = key;
      const bool f32 = use > 0;
      const float beta = use == 1 ? 1.f : 0.f, alpha = 1.f;
      // graph-captured, as a step runs them (launched one by one from the host, the small shapes time the launches)
      auto timeCalls = [&](auto&& call) {
        for (const bf16* W : ws) call(W);  // warm (cuBLAS picks, first launches)
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        for (int rep = 0; rep < 3; ++rep)
          for (const bf16* W : ws) call(W);
        CK(cudaStreamEndCapture(stream, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        CK(cudaGraphLaunch(ge, stream));
        CK(cudaEventRecord(e0, stream));
        CK(cudaGraphLaunch(ge, stream));
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        CK(cudaGraphExecDestroy(ge)), CK(cudaGraphDestroy(g));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        return 1e3 * double(ms) / (3.0 * ws.size());
      };
      const double mb = double(in) * out * 2 / 1e6;
      const double cub = timeCalls([&](const bf16* W) {
        CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, out, kSgRows, in, &alpha, W, CUDA_R_16BF, in, A, CUDA_R_16BF, in, &beta, got,
                        f32 ? CUDA_R_32F : CUDA_R_16BF, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      });
      for (int variant = 0; variant < 4; ++variant) {  // (256-wide measured slower at every shape)
        sgKind = variant % 2 ? SgKind::Specialized : SgKind::Tile128, sgClusterReduce = variant < 2;
        std::printf("skinny time %5d -> %5d %s x%-3zu %6.1f MB  cublasGemmEx %6.1f us (%4.0f GB/s) | %s tiles, %s:", in, out,
                    use == 0 ? "bf16" : use == 1 ? "add " : "f32 ", ws.size(), mb, cub, mb * 1e3 / cub, sgKindName(sgKind), sgReduceName());
        for (int cap : {1, 2, 4, 8, 16, 1 << 20}) {
          maxSplit = cap;
          const double us = timeCalls([&](const bf16* W) { skinnyGemm(A, kSgRows, in, W, out, got, f32, out, beta); });
          std::printf(" | split<=%-2d %6.1f us (%4.0f GB/s)", std::min(cap, 99), us, mb * 1e3 / us);
        }
        for (int pr : {1, 2, 3, 4}) {
          probe = pr;
          const double us = timeCalls([&](const bf16* W) { skinnyGemm(A, kSgRows, in, W, out, got, f32, out, beta); });
          static const char* what[] = {"", "no MMA", "no loads", "no act. loads", "no weight loads"};
          std::printf(" | %s %6.1f us", what[pr], us);
        }
        probe = 0;
        std::printf("\n");
      }
      maxSplit = 1 << 20;
    }
    sgKind = kindWas, sgClusterReduce = reduceWas;
    CK(cudaEventDestroy(e0)), CK(cudaEventDestroy(e1));
    CK(cudaFree(A)), CK(cudaFree(ref)), CK(cudaFree(got));
    return worst;
  }
#endif
  // true when the call ran here
  // how many clusters of `size` CTAs of the chosen kernel the device holds at once (cached: it asks the driver)
  std::map<std::pair<int, int>, int> sgResident;
  // the chosen kernel (all three take SgArgs) and the launch shape it needs
  using SgKernel = void (*)(SgArgs);
  SgKernel sgKernel() const {
    return sgKind == SgKind::Tile256 ? sgGemmKernel<256> : sgKind == SgKind::Specialized ? sgGemmWsKernel : sgGemmKernel<128>;
  }
  cudaLaunchConfig_t sgLaunchConfig() const {
    cudaLaunchConfig_t lc = {};
    lc.blockDim = dim3(sgKind == SgKind::Specialized ? kSgWsThreads : kSgThreads);
    lc.dynamicSmemBytes = sgKind == SgKind::Tile256 ? SgShape<256>::smem : sgKind == SgKind::Specialized ? kSgWsSmemBytes : SgShape<128>::smem;
    lc.stream = stream;
    return lc;
  }
  int sgClustersResident(cudaLaunchConfig_t lc, int size) {
    auto key = std::make_pair(int(sgKind), size);
    auto it = sgResident.find(key);
    if (it != sgResident.end()) return it->second;
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 1, attr.val.clusterDim.y = unsigned(size), attr.val.clusterDim.z = 1;
    lc.gridDim = dim3(1, unsigned(size)), lc.attrs = &attr, lc.numAttrs = 1;
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, reinterpret_cast<const void*>(sgKernel()), &lc) != cudaSuccess) n = 0, cudaGetLastError();
    return sgResident[key] = n;
  }
  bool skinnyGemm(const bf16* A, int64_t T, int lda, const bf16* W, int out, void* C, bool cF32, int ldc, float beta) {
    if (!skinny || T > kSgRows || T < 1 || lda % 8 != 0 || ldc % 4 != 0 || reinterpret_cast<uintptr_t>(A) % 16 != 0 ||
        reinterpret_cast<uintptr_t>(C) % 16 != 0)
      return false;
    auto it = packed.find(W);
    if (it == packed.end() || it->second.out != out) return false;
    const Packed& p = it->second;
    SgMode mode;
    if (cF32) mode = beta == 1.f ? SgMode::AddF32 : beta == 0.f ? SgMode::StoreF32 : SgMode(-1);
    else mode = beta == 0.f ? SgMode::StoreBf16 : SgMode(-1);
    if (int(mode) < 0) return false;
    // split K until the CTAs about fill the machine once (one CTA an SM: its stages take most of the shared memory);
    // the parts meet in a cluster's shared memory (at most kSgMaxCluster CTAs), or else through atomics in L2
    const int tileOut = sgKind == SgKind::Tile256 ? 256 : 128, tiles = (p.out + tileOut - 1) / tileOut;
    // (measured: clusters win for bf16 outputs, whose other way is a workspace and a fix-up; atomics for the residual
    // add, whose 8-way split no cluster can match)
    const bool viaCluster = sgClusterReduce && mode != SgMode::AddF32;
    const bool canSplit = viaCluster || mode == SgMode::AddF32 || (mode == SgMode::StoreBf16 && p.out <= sgWsOut);
    int split = canSplit ? std::max(1, std::min({p.kStages, numSms / tiles, maxSplit, viaCluster ? kSgMaxCluster : 1 << 20})) : 1;
    cudaLaunchConfig_t lc = sgLaunchConfig();
    // a cluster's CTAs share a GPC: split no wider than lets every tile's cluster be resident at once (a second wave
    // of clusters cost more than the split gave)
    while (viaCluster && split > 1 && tiles > sgClustersResident(lc, split)) --split;
    const int per = (p.kStages + split - 1) / split;
    split = (p.kStages + per - 1) / per;
    const int cluster = viaCluster && split > 1 ? split : 1;
    if (cluster == 1 && split > 1 && mode == SgMode::StoreBf16) mode = SgMode::SplitBf16;
    SgArgs args{A, lda, int(T), p.blocks, p.in, p.kStages, p.out, C, ldc, per, sgWs, sgCounts, mode, cluster, probe};
    lc.gridDim = dim3(unsigned(tiles), unsigned(split));
    cudaLaunchAttribute attr[2];
    unsigned na = 0;
    addPdl(attr, na);
    if (cluster > 1) {
      attr[na].id = cudaLaunchAttributeClusterDimension;
      attr[na].val.clusterDim.x = 1, attr[na].val.clusterDim.y = unsigned(cluster), attr[na++].val.clusterDim.z = 1;
    }
    lc.attrs = attr;
    lc.numAttrs = na;
    CK(cudaLaunchKernelEx(&lc, sgKernel(), args));
    return true;
  }

#ifdef BASED_HAVE_CUBLASLT
  // Decode-sized GEMMs (at most kTuneRows rows) run through cuBLASLt with the algorithm that measured fastest for
  // their shape, among the heuristic's candidates and cublasGemmEx's own choice, each timed from a cold L2 (as a
  // decode step meets its weights) on scratch buffers. A shape first met while a graph is being captured runs
  // cublasGemmEx and is noted; generate() tunes the noted shapes and captures again.
  // EVAPORATE_GPU_GEMM_TUNE=0 keeps cublasGemmEx everywhere.
  static constexpr int64_t kTuneRows = 256;
  bool tuneGemms = !(std::getenv("EVAPORATE_GPU_GEMM_TUNE") && std::string(std::getenv("EVAPORATE_GPU_GEMM_TUNE")) == "0");
  cublasLtHandle_t lt = nullptr;
  struct GemmKey {
    int64_t T;
    int in, out, lda, ldc, f32, accum;
    bool operator<(const GemmKey& o) const {
      return std::tie(T, in, out, lda, ldc, f32, accum) < std::tie(o.T, o.in, o.out, o.lda, o.ldc, o.f32, o.accum);
    }
  };
  struct GemmPlan {
    bool useSkinny = false;  // our wgmma GEMM (skinny_gemm.cuh) measured fastest
    bool useLt = false;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulAlgo_t algo;
  };
  std::map<GemmKey, GemmPlan> plans;
  std::vector<std::pair<GemmKey, const bf16*>> untuned;  // met during a capture
  void *tuneA = nullptr, *tuneC = nullptr, *flushBuf = nullptr;
  size_t tuneABytes = 0, tuneCBytes = 0;
  static constexpr size_t kFlushBytes = size_t(96) << 20;  // more than the H200's 60 MB L2
  std::map<std::string, double> tuneLog;  // "shape: choice" -> us, for the bench's report

  void growScratch(void*& p, size_t& have, size_t need) {
    if (have >= need) return;
    if (p) CK(cudaFree(p));
    CK(cudaMalloc(&p, need));
    have = need;
  }
  void tune(const GemmKey& k, const bf16* W) {
    if (plans.count(k)) return;
    growScratch(tuneA, tuneABytes, size_t(k.T) * k.lda * 2);
    growScratch(tuneC, tuneCBytes, size_t(k.T) * k.ldc * (k.f32 ? 4 : 2));
    if (!flushBuf) CK(cudaMalloc(&flushBuf, kFlushBytes));
    fillRandomBf16<<<256, 256, 0, stream>>>(static_cast<bf16*>(tuneA), size_t(k.T) * k.lda, 777u);
    LAUNCHED();
    GemmPlan plan;
    const cudaDataType_t ct = k.f32 ? CUDA_R_32F : CUDA_R_16BF;
    CK(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    CK(cublasLtMatrixLayoutCreate(&plan.la, CUDA_R_16BF, k.in, k.out, k.in));
    CK(cublasLtMatrixLayoutCreate(&plan.lb, CUDA_R_16BF, k.in, k.T, k.lda));
    CK(cublasLtMatrixLayoutCreate(&plan.lc, ct, k.out, k.T, k.ldc));
    cublasLtMatmulPreference_t pref;
    CK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kWorkspaceBytes;
    CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t res[16];
    int found = 0;
    if (cublasLtMatmulAlgoGetHeuristic(lt, plan.op, plan.la, plan.lb, plan.lc, plan.lc, pref, 16, res, &found) != CUBLAS_STATUS_SUCCESS) found = 0;
    cublasLtMatmulPreferenceDestroy(pref);
    const float alpha = 1.f, beta = k.accum ? 1.f : 0.f;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    // median of 5 single calls, each after the L2 is overwritten; -1 if the call is refused
    auto timeIt = [&](auto&& call) {
      if (!call()) return -1.0;
      std::vector<float> ms;
      for (int r = 0; r < 5; ++r) {
        CK(cudaMemsetAsync(flushBuf, r, kFlushBytes, stream));
        CK(cudaEventRecord(e0, stream));
        call();
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      return 1e3 * double(ms[2]);
    };
    double best = timeIt([&] {
      CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, k.out, int(k.T), k.in, &alpha, W, CUDA_R_16BF, k.in, tuneA, CUDA_R_16BF, k.lda, &beta, tuneC,
                      ct, k.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return true;
    });
    const double gemmEx = best;
    int choice = -1;
    for (int h = 0; h < found; ++h) {
      const double us = timeIt([&] {
        return cublasLtMatmul(lt, plan.op, &alpha, W, plan.la, tuneA, plan.lb, &beta, tuneC, plan.lc, tuneC, plan.lc, &res[h].algo, workspace, ws,
                              stream) == CUBLAS_STATUS_SUCCESS;
      });
      if (us > 0 && us < best) best = us, choice = h;
    }
    auto runSkinny = [&] { return skinnyGemm(static_cast<const bf16*>(tuneA), k.T, k.lda, W, k.out, tuneC, k.f32, k.ldc, beta); };
    if (skinny && packed.count(W)) {
      const double us = timeIt(runSkinny);
      if (us > 0 && us < best) best = us, plan.useSkinny = true;
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaGetLastError());
    plan.useLt = !plan.useSkinny && choice >= 0;
    double err = 0;
    if (plan.useLt || plan.useSkinny) {
      if (plan.useLt) plan.algo = res[choice].algo;
      // the choice must compute what cublasGemmEx computes, on these inputs (beta = 1 included)
      const size_t n = size_t(k.T) * k.ldc, bytes = n * (k.f32 ? 4 : 2);
      std::vector<unsigned char> ref(bytes), got(bytes);
      CK(cudaMemsetAsync(tuneC, 0, bytes, stream));
      CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, k.out, int(k.T), k.in, &alpha, W, CUDA_R_16BF, k.in, tuneA, CUDA_R_16BF, k.lda, &beta, tuneC,
                      ct, k.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      CK(cudaMemcpyAsync(ref.data(), tuneC, bytes, cudaMemcpyDeviceToHost, stream));
      CK(cudaMemsetAsync(tuneC, 0, bytes, stream));
      if (plan.useSkinny) runSkinny();
      else
        CK(cublasLtMatmul(lt, plan.op, &alpha, W, plan.la, tuneA, plan.lb, &beta, tuneC, plan.lc, tuneC, plan.lc, &plan.algo, workspace, kWorkspaceBytes,
                          stream));
      CK(cudaMemcpyAsync(got.data(), tuneC, bytes, cudaMemcpyDeviceToHost, stream));
      CK(cudaStreamSynchronize(stream));
      double num = 0, den = 0;
      for (size_t i = 0; i < n; ++i) {
        const double a = k.f32 ? reinterpret_cast<float*>(ref.data())[i] : __bfloat162float(reinterpret_cast<bf16*>(ref.data())[i]);
        const double b = k.f32 ? reinterpret_cast<float*>(got.data())[i] : __bfloat162float(reinterpret_cast<bf16*>(got.data())[i]);
        num += (a - b) * (a - b), den += a * a;
      }
      err = std::sqrt(num / std::max(den, 1e-30));
      if (!(err <= 1e-2))
        throw EngineError("cuda_error", std::string(plan.useSkinny ? "our decode GEMM" : "cuBLASLt algorithm") + " disagrees with cublasGemmEx (rel err " +
                                            std::to_string(err) + ")");
    }
    char name[160];
    std::snprintf(name, sizeof name, "%lldx%dx%d%s gemmEx %.1f us -> %s%s, rel err vs gemmEx %.1e", (long long)k.T, k.in, k.out, k.f32 ? " f32" : "",
                  gemmEx, plan.useSkinny ? "ours (skinny_gemm)" : plan.useLt ? "lt #" : "gemmEx", plan.useLt ? std::to_string(choice).c_str() : "", err);
    tuneLog[name] = best;
    plans[k] = plan;
  }
  bool capturing() const {
    cudaStreamCaptureStatus st;
    CK(cudaStreamIsCapturing(stream, &st));
    return st != cudaStreamCaptureStatusNone;
  }
#endif

  void gemm(const bf16* A, int64_t T, int lda, const bf16* W, int in, int out, void* C, bool cF32, int ldc, float beta) {
    if (profile) pendingFlop += 2.0 * double(T) * in * out;
    if (skinnyForced && skinnyGemm(A, T, lda, W, out, C, cF32, ldc, beta)) return;
#ifdef BASED_HAVE_CUBLAS
    if (useCublas) {
      const float alpha = 1.f;
#ifdef BASED_HAVE_CUBLASLT
      // (weights under 512 KB, as in the test fixtures, stay on cublasGemmEx: nothing to gain)
      if (tuneGemms && T <= kTuneRows && int64_t(in) * out >= (int64_t(1) << 18)) {
        const GemmKey k{T, in, out, lda, ldc, cF32 ? 1 : 0, beta != 0.f ? 1 : 0};
        auto it = plans.find(k);
        if (it == plans.end()) {
          if (capturing()) untuned.emplace_back(k, W);
          else tune(k, W), it = plans.find(k);
        }
        if (it != plans.end() && it->second.useSkinny && skinnyGemm(A, T, lda, W, out, C, cF32, ldc, beta)) return;
        if (it != plans.end() && it->second.useLt) {
          const GemmPlan& p = it->second;
          CK(cublasLtMatmul(lt, p.op, &alpha, W, p.la, A, p.lb, &beta, C, p.lc, C, p.lc, &p.algo, workspace, kWorkspaceBytes, stream));
          return;
        }
      }
#endif
      CK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, out, int(T), in, &alpha, W, CUDA_R_16BF, in, A, CUDA_R_16BF, lda, &beta, C,
                      cF32 ? CUDA_R_32F : CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
#endif
    const dim3 grid((out + 63) / 64, unsigned((T + 63) / 64));
    if (cF32) wmmaGemmKernel<true><<<grid, 128, 0, stream>>>(A, lda, W, T, in, out, C, ldc, beta);
    else wmmaGemmKernel<false><<<grid, 128, 0, stream>>>(A, lda, W, T, in, out, C, ldc, beta);
    LAUNCHED();
  }
  int fragmentLayout = -1;  // -1 not checked yet, else whether fragmentLayoutKernel agreed
  bool fragmentLayoutKnown() {
    if (fragmentLayout < 0) {
      int* d = devAlloc<int>(1);
      const int one = 1;
      CK(cudaMemcpy(d, &one, 4, cudaMemcpyHostToDevice));
      fragmentLayoutKernel<<<1, 32>>>(d);
      LAUNCHED();
      int h = 0;
      CK(cudaMemcpy(&h, d, 4, cudaMemcpyDeviceToHost));
      CK(cudaFree(d));
      fragmentLayout = h;
    }
    return fragmentLayout == 1;
  }
  void bias(bf16* Y, const float* b, int64_t T, int n, int ld) {
    if (!b) return;
    launchK(biasBf16Kernel, blocksFor(T * n, 256), 256, 0, Y, b, T, n, ld);
    LAUNCHED();
  }
  void norm(const float* b, const float* w, int64_t T, const int64_t* rowIdx = nullptr) {
    const int d = cfg.dModel, n4 = d / 4;
    const int threads = std::min(256, (n4 + 31) / 32 * 32);
    const int per = (n4 + threads - 1) / threads;
    if (d % 4 == 0 && per <= 4) {
      if (per == 1) launchK(biasRmsnormVecKernel<1>, int(T), threads, 0, X, rowIdx, b, w, H, d, cfg.normEps);
      else if (per == 2) launchK(biasRmsnormVecKernel<2>, int(T), threads, 0, X, rowIdx, b, w, H, d, cfg.normEps);
      else launchK(biasRmsnormVecKernel<4>, int(T), threads, 0, X, rowIdx, b, w, H, d, cfg.normEps);
    } else {
      launchK(biasRmsnormKernel, int(T), 256, 0, X, rowIdx, b, w, H, d, cfg.normEps);
    }
    LAUNCHED();
  }

  // The whole forward for B slots x L tokens whose ids are already in `tokens` on the device. decode: L == 1
  // and every slot already past position 0, so the fused single-token kernels apply.
  void run(int B, int L, bool decode, bool allLogits) {
    const int d = cfg.dModel;
    const int64_t T = int64_t(B) * L;
    mark("start");
    launchK(embedKernel, int(T), 256, 0, tokens, embed, X, d);
    LAUNCHED();
    mark("embed");
    const float* pendingBias = nullptr;  // bias of the last GEMM that accumulated into X
    for (size_t li = 0; li < layers.size(); ++li) {
      const LayerConfig& Lc = cfg.layers[li];
      GpuLayer& w = layers[li];
      norm(pendingBias, w.norm1, T);
      mark("norm");
      gemm(H, T, d, w.mixIn, d, w.mixInOut, U, false, w.mixInOut, 0.f);
      bias(U, w.mixInB, T, w.mixInOut, w.mixInOut);
      mark("gemm mixer in");
      int outIn = 0;
      switch (Lc.kind) {
        case MixerKind::BaseConv: {
          const int inner = Lc.convInner, K = Lc.convKernel;
          const bool wide = inner % 8 == 0 && K >= 2 && K <= kConvMaxK;
          if (L == 1) {
            const int grid = blocksFor(int64_t(B) * (inner / 8), 256);
            if (wide && K == 2) launchK(convDecode8Kernel<2>, grid, 256, 0, U, w.tail, w.convWT, w.convB, V, B, inner);
            else if (wide && K == 3) launchK(convDecode8Kernel<3>, grid, 256, 0, U, w.tail, w.convWT, w.convB, V, B, inner);
            else if (wide) launchK(convDecode8Kernel<4>, grid, 256, 0, U, w.tail, w.convWT, w.convB, V, B, inner);
            else launchK(convDecodeKernel, blocksFor(int64_t(B) * inner, 256), 256, 0, U, w.tail, w.convW, w.convB, V, B, inner, K);
            LAUNCHED();
          } else {
            const int grid = blocksFor((T + kConvTok - 1) / kConvTok * (inner / 8), 256);
            if (wide && K == 2) convSlideKernel<2><<<grid, 256, 0, stream>>>(U, w.tail, w.convWT, w.convB, V, T, L, inner);
            else if (wide && K == 3) convSlideKernel<3><<<grid, 256, 0, stream>>>(U, w.tail, w.convWT, w.convB, V, T, L, inner);
            else if (wide) convSlideKernel<4><<<grid, 256, 0, stream>>>(U, w.tail, w.convWT, w.convB, V, T, L, inner);
            else convKernel<<<blocksFor(T * inner, 256), 256, 0, stream>>>(U, w.tail, w.convW, w.convB, V, B, L, inner, K);
            LAUNCHED();
            convTailKernel<<<blocksFor(int64_t(B) * inner, 256), 256, 0, stream>>>(U, w.tail, B, L, inner, K);
            LAUNCHED();
          }
          outIn = inner;
          break;
        }
        case MixerKind::LinearAttention:
        case MixerKind::PrefixLinearAttention: {
          const int h = Lc.laHeads, f = Lc.laFeatureDim, dh = Lc.laHeadDim, F = taylorDim(f);
          LaArgs a{U, w.mixInOut, 0, h * f, 2 * h * f, nullptr, 0, encLen, pos, w.S, w.z, V, B, L, h, f, F, dh, 0,
                   std::sqrt(float(Lc.laScaleDim)), Lc.laEps};
          if (decode) {
            if (dh % 4 == 0) launchK(laDecodeKernel<4>, B * h, 256, 0, a);
            else launchK(laDecodeKernel<1>, B * h, 256, 0, a);
          } else {
            if (Lc.kind == MixerKind::PrefixLinearAttention) {
              gemm(H, T, d, w.enc, d, h * f + h * dh, E, false, h * f + h * dh, 0.f);
              bias(E, w.encB, T, h * f + h * dh, h * f + h * dh);
              a.ENC = E, a.ldEnc = h * f + h * dh;
            }
            if (tensorCorePrefill && laTcFits(F, dh, f)) {
              LaTcLayout lay = laTcLayout(F, dh, f);
              lay.knownLayout = fragmentLayoutKnown();
              CK(cudaFuncSetAttribute(laPrefillTcKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(lay.bytes)));
              laPrefillTcKernel<<<B * h, kLaTcWarps * 32, lay.bytes, stream>>>(a, lay);
            } else {
              a.C = dh <= 64 ? 64 : 32;
              const size_t shm = (size_t(F) * dh + F + 2 * size_t(a.C) * F + size_t(a.C) * dh + size_t(a.C) * a.C + a.C) * 4;
              CK(cudaFuncSetAttribute(laPrefillKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shm)));
              laPrefillKernel<<<B * h, 256, shm, stream>>>(a);
            }
          }
          LAUNCHED();
          outIn = h * dh;
          break;
        }
        case MixerKind::SlidingWindow: {
          const int h = Lc.swHeads, dh = Lc.swHeadDim;
          // rows of 16-byte pieces whose threads fit a warp in a power of two: the fused decode kernel
          const bool fused = decode && dh % 8 == 0 && d % 8 == 0 && dh / 8 <= 32 && ((dh / 8) & (dh / 8 - 1)) == 0;
          if (fused) {
            SwArgs a{U, w.keys, w.values, pos, V, B, L, d, h, dh, Lc.windowLeft, Lc.softmaxScale};
            launchK(swDecodeFusedKernel, B * h, 256, 0, a, w.keys, w.values, Lc.rotaryDim, Lc.rotaryBase);
            LAUNCHED();
            outIn = d;
            break;
          }
          if (Lc.rotaryDim > 0) {
            rotaryKernel<<<blocksFor(T * (Lc.rotaryDim / 2), 256), 256, 0, stream>>>(U, pos, B, L, d, h, dh, Lc.rotaryDim, Lc.rotaryBase);
            LAUNCHED();
            mark("mix window rotary");
          }
          SwArgs a{U, w.keys, w.values, pos, V, B, L, d, h, dh, Lc.windowLeft, Lc.softmaxScale};
          if (decode) {
            swDecodeKernel<<<B * h, 256, 0, stream>>>(a);
          } else if (tensorCorePrefill && swTcFits(dh, Lc.windowLeft, d)) {
            const SwTcLayout lay = swTcLayout(dh, Lc.windowLeft);
            CK(cudaFuncSetAttribute(swPrefillTcKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(lay.bytes)));
            swPrefillTcKernel<<<dim3((L + kSwTcQ - 1) / kSwTcQ, h, B), kSwTcWarps * 32, lay.bytes, stream>>>(a, lay);
          } else {
            swAttentionKernel<<<blocksFor(T * h * 32, 256), 256, 0, stream>>>(a);
          }
          LAUNCHED();
          ringWriteKernel<<<blocksFor(int64_t(B) * std::min(L, Lc.windowLeft + 1) * d, 256), 256, 0, stream>>>(U, w.keys, w.values, pos, B, L, d, Lc.windowLeft);
          LAUNCHED();
          outIn = d;
          break;
        }
      }
      mark(Lc.kind == MixerKind::BaseConv ? "mix conv" : Lc.kind == MixerKind::SlidingWindow ? "mix window" : "mix linear attn");
      gemm(V, T, outIn, w.out, outIn, d, X, true, d, 1.f);  // residual add fused into the GEMM
      mark("gemm mixer out");
      norm(w.outB, w.norm2, T);
      mark("norm");
      const int hid = cfg.mlpHidden;
      gemm(H, T, d, w.fc1, d, 2 * hid, U, false, 2 * hid, 0.f);
      bias(U, w.fc1b, T, 2 * hid, 2 * hid);
      mark("gemm mlp");
      if (hid % 8 == 0) launchK(swiglu8Kernel, blocksFor(T * (hid / 8), 256), 256, 0, U, V, T, hid);
      else launchK(swigluKernel, blocksFor(T * hid, 256), 256, 0, U, V, T, hid);
      LAUNCHED();
      mark("swiglu");
      gemm(V, T, hid, w.fc2, hid, d, X, true, d, 1.f);
      mark("gemm mlp");
      pendingBias = w.fc2b;
    }
    launchK(advanceKernel, blocksFor(B, 128), 128, 0, pos, B, L);
    LAUNCHED();
    const int64_t R = allLogits ? T : B;
    norm(pendingBias, normF, R, allLogits || L == 1 ? nullptr : rows);
    mark("norm");
    gemm(H, R, d, head, d, cfg.vocabPadded, logits, true, cfg.vocabPadded, 0.f);
    mark("gemm head");
  }
};

GpuEngine::GpuEngine(const Model& m, int maxBatch, int64_t maxTokens) : impl_(std::make_unique<GpuEngineImpl>()) {
  auto& g = *impl_;
  g.cfg = m.cfg;
  g.maxBatch = maxBatch;
  g.maxTokens = maxTokens;
  const ModelConfig& c = m.cfg;
  const int d = c.dModel;
  CK(cudaStreamCreate(&g.stream));
  {
    int dev, major;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    g.pdl = g.pdl && major >= 9;  // programmatic dependent launch is sm_90's
  }
#ifdef BASED_HAVE_CUBLAS
  const char* gemmChoice = std::getenv("EVAPORATE_GPU_GEMM");
  g.useCublas = !(gemmChoice && std::string(gemmChoice) == "wmma");
  if (g.useCublas) {
    CK(cublasCreate(&g.blas));
    CK(cublasSetStream(g.blas, g.stream));
    // a fixed workspace keeps cuBLAS from allocating while a decode step is captured into a graph
    CK(cudaMalloc(&g.workspace, kWorkspaceBytes));
    CK(cublasSetWorkspace(g.blas, g.workspace, kWorkspaceBytes));
#ifdef BASED_HAVE_CUBLASLT
    CK(cublasLtCreate(&g.lt));
#endif
  }
#endif
  g.embed = uploadBf16(m.embed, size_t(c.vocabPadded) * d);
  g.head = m.lmHead == m.embed ? g.embed : uploadBf16(m.lmHead, size_t(c.vocabPadded) * d);
  g.normF = uploadF32(m.normF, d);
  g.weightBytes = size_t(c.vocabPadded) * d * 2 * (g.head == g.embed ? 1 : 2);
  int64_t widest = 2 * int64_t(c.mlpHidden), widestOut = c.mlpHidden, widestEnc = 1;
  for (int li = 0; li < c.nLayer; ++li) {
    const LayerConfig& L = c.layers[li];
    const LayerWeights& w = m.layers[li];
    GpuLayer G{};
    G.norm1 = uploadF32(w.norm1, d);
    G.norm2 = uploadF32(w.norm2, d);
    G.fc1 = uploadBf16(w.fc1.w, size_t(w.fc1.out) * d);
    G.fc1b = uploadF32(w.fc1.b, w.fc1.out);
    G.fc2 = uploadBf16(w.fc2.w, size_t(d) * c.mlpHidden);
    G.fc2b = uploadF32(w.fc2.b, d);
    G.out = uploadBf16(w.outProj.w, size_t(w.outProj.out) * w.outProj.in);
    G.outB = uploadF32(w.outProj.b, w.outProj.out);
    g.weightBytes += (size_t(w.fc1.out) * d + size_t(d) * c.mlpHidden + size_t(w.outProj.out) * w.outProj.in) * 2;
    size_t slotState = 0, touched = 0;
    switch (L.kind) {
      case MixerKind::BaseConv:
        G.mixIn = uploadBf16(w.inProj.w, size_t(w.inProj.out) * d);
        G.mixInB = uploadF32(w.inProj.b, w.inProj.out);
        G.mixInOut = w.inProj.out;
        G.convW = uploadF32(w.convW, size_t(L.convInner) * L.convKernel);
        {
          std::vector<float> wt(size_t(L.convInner) * L.convKernel);
          for (int c = 0; c < L.convInner; ++c)
            for (int j = 0; j < L.convKernel; ++j) wt[size_t(j) * L.convInner + c] = w.convW[size_t(c) * L.convKernel + j];
          G.convWT = uploadF32(wt.data(), wt.size());
        }
        G.convB = uploadF32(w.convB, L.convInner);
        slotState = size_t(L.convKernel - 1) * L.convInner;
        G.tail = devAlloc<bf16>(slotState * maxBatch);
        slotState *= 2;  // bytes
        touched = 2 * slotState;
        widestOut = std::max<int64_t>(widestOut, L.convInner);
        break;
      case MixerKind::LinearAttention:
      case MixerKind::PrefixLinearAttention: {
        const int F = taylorDim(L.laFeatureDim);
        if (F > 1024 || L.laHeadDim > 256 || 256 % L.laHeadDim != 0 || L.laHeadDim > 128)
          throw EngineError("config_unsupported", "the CUDA path supports feature maps up to 1024 wide and head dims dividing 256, up to 128");
        G.mixIn = uploadStacked({&w.projQ, &w.projK, &w.projV}, d);
        G.mixInB = uploadStackedBias({&w.projQ, &w.projK, &w.projV});
        G.mixInOut = w.projQ.out + w.projK.out + w.projV.out;
        if (L.kind == MixerKind::PrefixLinearAttention) {
          G.enc = uploadStacked({&w.projKEnc, &w.projVEnc}, d);
          G.encB = uploadStackedBias({&w.projKEnc, &w.projVEnc});
          widestEnc = std::max<int64_t>(widestEnc, w.projKEnc.out + w.projVEnc.out);
          g.weightBytes += size_t(w.projKEnc.out + w.projVEnc.out) * d * 2;
        }
        const size_t sN = size_t(L.laHeads) * F * L.laHeadDim, zN = size_t(L.laHeads) * F;
        G.S = devAlloc<float>(sN * maxBatch);
        G.z = devAlloc<float>(zN * maxBatch);
        slotState = (sN + zN) * 4;
        touched = 2 * slotState;
        widestOut = std::max<int64_t>(widestOut, int64_t(L.laHeads) * L.laHeadDim);
        break;
      }
      case MixerKind::SlidingWindow: {
        if (L.swHeadDim > 128 || L.windowLeft + 1 > 1024)
          throw EngineError("config_unsupported", "the CUDA path supports sliding-window head dims up to 128 and windows up to 1024");
        G.mixIn = uploadBf16(w.wqkv.w, size_t(3) * d * d);
        G.mixInB = uploadF32(w.wqkv.b, 3 * d);
        G.mixInOut = 3 * d;
        const size_t rN = size_t(L.windowLeft + 1) * d;
        G.keys = devAlloc<bf16>(rN * maxBatch);
        G.values = devAlloc<bf16>(rN * maxBatch);
        slotState = 2 * rN * 2;
        touched = (2 * rN + 2 * size_t(d)) * 2;  // the window is read, one row of each written
        widestOut = std::max<int64_t>(widestOut, d);
        break;
      }
    }
    g.weightBytes += size_t(G.mixInOut) * d * 2;
    widest = std::max<int64_t>(widest, G.mixInOut);
    g.stateBytesPerSlot += slotState;
    g.stateBytesTouchedPerStep += touched;
    g.layers.push_back(G);
  }
  g.X = devAlloc<float>(size_t(maxTokens) * d);
  g.H = devAlloc<bf16>(size_t(maxTokens) * d);
  g.U = devAlloc<bf16>(size_t(maxTokens) * widest);
  g.V = devAlloc<bf16>(size_t(maxTokens) * widestOut);
  g.E = devAlloc<bf16>(widestEnc > 1 ? size_t(maxTokens) * widestEnc : 1);
  g.logits = devAlloc<float>(size_t(std::max<int64_t>(maxBatch, std::min<int64_t>(maxTokens, 4096))) * c.vocabPadded);
  g.tokens = devAlloc<int32_t>(maxTokens);
  g.pos = devAlloc<int64_t>(maxBatch);
  g.encLen = devAlloc<int>(maxBatch);
  g.rows = devAlloc<int64_t>(maxBatch);
  g.setUpSkinnyGemm();
  resetSlots(maxBatch);
}

GpuEngine::~GpuEngine() {
  // device memory is released with the context at exit; the engine lives for the process in practice
  if (impl_->graphExec) cudaGraphExecDestroy(impl_->graphExec);
  if (impl_->graph) cudaGraphDestroy(impl_->graph);
#ifdef BASED_HAVE_CUBLASLT
  for (auto& [k, p] : impl_->plans) {
    cublasLtMatrixLayoutDestroy(p.la), cublasLtMatrixLayoutDestroy(p.lb), cublasLtMatrixLayoutDestroy(p.lc);
    cublasLtMatmulDescDestroy(p.op);
  }
  if (impl_->lt) cublasLtDestroy(impl_->lt);
#endif
#ifdef BASED_HAVE_CUBLAS
  if (impl_->blas) cublasDestroy(impl_->blas);
#endif
  cudaStreamDestroy(impl_->stream);
}

const ModelConfig& GpuEngine::config() const { return impl_->cfg; }

void GpuEngine::resetSlots(int count) {
  auto& g = *impl_;
  for (size_t li = 0; li < g.layers.size(); ++li) {
    const LayerConfig& L = g.cfg.layers[li];
    GpuLayer& w = g.layers[li];
    if (w.tail) CK(cudaMemsetAsync(w.tail, 0, size_t(L.convKernel - 1) * L.convInner * count * 2, g.stream));
    if (w.S) {
      const int F = taylorDim(L.laFeatureDim);
      CK(cudaMemsetAsync(w.S, 0, size_t(L.laHeads) * F * L.laHeadDim * count * 4, g.stream));
      CK(cudaMemsetAsync(w.z, 0, size_t(L.laHeads) * F * count * 4, g.stream));
    }
    if (w.keys) {
      CK(cudaMemsetAsync(w.keys, 0, size_t(L.windowLeft + 1) * g.cfg.dModel * count * 2, g.stream));
      CK(cudaMemsetAsync(w.values, 0, size_t(L.windowLeft + 1) * g.cfg.dModel * count * 2, g.stream));
    }
  }
  CK(cudaMemsetAsync(g.pos, 0, size_t(count) * 8, g.stream));
  CK(cudaStreamSynchronize(g.stream));
}

namespace {
// Every state array of one slot beside its host copy: fp32 ones (fn32) and the bf16 ones (fn16, host copy fp32).
template <class Fn32, class Fn16>
void eachStateArray(GpuEngineImpl& g, int slot, SequenceState& s, Fn32 fn32, Fn16 fn16) {
  for (size_t li = 0; li < g.layers.size(); ++li) {
    GpuLayer& w = g.layers[li];
    LayerState& ls = s.layers[li];
    if (w.tail) fn16(w.tail + ls.conv.size() * slot, ls.conv);
    if (w.S) fn32(w.S + ls.kv.size() * slot, ls.kv), fn32(w.z + ls.ksum.size() * slot, ls.ksum);
    if (w.keys) fn16(w.keys + ls.keys.size() * slot, ls.keys), fn16(w.values + ls.values.size() * slot, ls.values);
  }
}
}  // namespace

void GpuEngine::uploadState(int slot, const SequenceState& s) {
  auto& g = *impl_;
  std::vector<std::vector<bf16>> staged;  // alive until the copies are done
  eachStateArray(
      g, slot, const_cast<SequenceState&>(s),
      [&](float* dev, std::vector<float>& host) { CK(cudaMemcpyAsync(dev, host.data(), host.size() * 4, cudaMemcpyHostToDevice, g.stream)); },
      [&](bf16* dev, std::vector<float>& host) {
        staged.emplace_back(host.size());
        for (size_t i = 0; i < host.size(); ++i) staged.back()[i] = __float2bfloat16(host[i]);
        CK(cudaMemcpyAsync(dev, staged.back().data(), host.size() * 2, cudaMemcpyHostToDevice, g.stream));
      });
  CK(cudaMemcpyAsync(g.pos + slot, &s.pos, 8, cudaMemcpyHostToDevice, g.stream));
  CK(cudaStreamSynchronize(g.stream));
}

void GpuEngine::downloadState(int slot, SequenceState& s) const {
  auto& g = *impl_;
  std::vector<std::pair<std::vector<bf16>, std::vector<float>*>> staged;
  staged.reserve(3 * g.layers.size());
  eachStateArray(
      g, slot, s, [&](float* dev, std::vector<float>& host) { CK(cudaMemcpyAsync(host.data(), dev, host.size() * 4, cudaMemcpyDeviceToHost, g.stream)); },
      [&](bf16* dev, std::vector<float>& host) {
        staged.emplace_back(std::vector<bf16>(host.size()), &host);
        CK(cudaMemcpyAsync(staged.back().first.data(), dev, host.size() * 2, cudaMemcpyDeviceToHost, g.stream));
      });
  CK(cudaMemcpyAsync(&s.pos, g.pos + slot, 8, cudaMemcpyDeviceToHost, g.stream));
  CK(cudaStreamSynchronize(g.stream));
  for (auto& [dev, host] : staged)
    for (size_t i = 0; i < dev.size(); ++i) (*host)[i] = __bfloat162float(dev[i]);
}

void GpuEngine::copySlot(int from, int to) {
  auto& g = *impl_;
  auto copy = [&](auto* base, size_t perSlot) {
    CK(cudaMemcpyAsync(base + perSlot * to, base + perSlot * from, perSlot * sizeof(*base), cudaMemcpyDeviceToDevice, g.stream));
  };
  for (size_t li = 0; li < g.layers.size(); ++li) {
    const LayerConfig& L = g.cfg.layers[li];
    GpuLayer& w = g.layers[li];
    if (w.tail) copy(w.tail, size_t(L.convKernel - 1) * L.convInner);
    if (w.S) {
      const int F = taylorDim(L.laFeatureDim);
      copy(w.S, size_t(L.laHeads) * F * L.laHeadDim);
      copy(w.z, size_t(L.laHeads) * F);
    }
    if (w.keys) {
      copy(w.keys, size_t(L.windowLeft + 1) * g.cfg.dModel);
      copy(w.values, size_t(L.windowLeft + 1) * g.cfg.dModel);
    }
  }
  CK(cudaMemcpyAsync(g.pos + to, g.pos + from, 8, cudaMemcpyDeviceToDevice, g.stream));
}

void GpuEngine::forward(const int32_t* tokens, int B, int L, const int* prefixLen, bool allLogits, std::vector<float>* logits) {
  auto& g = *impl_;
  const int64_t T = int64_t(B) * L;
  if (B > g.maxBatch || T > g.maxTokens) throw EngineError("batch_too_large", "batch exceeds the CUDA engine's capacity");
  if (allLogits && T > std::max<int64_t>(g.maxBatch, std::min<int64_t>(g.maxTokens, 4096)))
    throw EngineError("batch_too_large", "too many rows of logits requested at once");
  for (int64_t i = 0; i < T; ++i)
    if (tokens[i] < 0 || tokens[i] >= g.cfg.vocabPadded) throw EngineError("token_out_of_range", "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
  std::vector<int> enc(B);
  std::vector<int64_t> rows(B);
  for (int s = 0; s < B; ++s) {
    int e = -1;
    if (prefixLen) e = prefixLen[s];
    if (e < 0)
      for (auto& Lc : g.cfg.layers)
        if (Lc.kind == MixerKind::PrefixLinearAttention) e = Lc.encLength;
    enc[s] = std::max(e, 0);
    rows[s] = int64_t(s) * L + L - 1;
  }
  CK(cudaMemcpyAsync(g.tokens, tokens, T * 4, cudaMemcpyHostToDevice, g.stream));
  CK(cudaMemcpyAsync(g.encLen, enc.data(), B * 4, cudaMemcpyHostToDevice, g.stream));
  CK(cudaMemcpyAsync(g.rows, rows.data(), B * 8, cudaMemcpyHostToDevice, g.stream));
  g.run(B, L, false, allLogits);
  g.collect();
  if (logits) {
    const int64_t R = allLogits ? T : B;
    logits->resize(size_t(R) * g.cfg.vocabPadded);
    CK(cudaMemcpyAsync(logits->data(), g.logits, logits->size() * 4, cudaMemcpyDeviceToHost, g.stream));
  }
  CK(cudaStreamSynchronize(g.stream));
}

std::vector<int32_t> GpuEngine::generate(int B, const int32_t* firstTokens, int steps, bool useGraph) {
  auto& g = *impl_;
  if (B > g.maxBatch) throw EngineError("batch_too_large", "batch exceeds the CUDA engine's capacity");
  CK(cudaMemcpyAsync(g.tokens, firstTokens, size_t(B) * 4, cudaMemcpyHostToDevice, g.stream));
  auto step = [&]() {
    g.run(B, 1, true, false);
    argmaxKernel<<<B, kArgmaxThreads, 0, g.stream>>>(g.logits, g.cfg.vocab, g.cfg.vocabPadded, g.tokens);
    LAUNCHED();
    g.mark("argmax");
    g.collect();
  };
  if (g.profile) useGraph = false;
  if (useGraph && (!g.graphExec || g.graphB != B)) {
    if (g.graphExec) CK(cudaGraphExecDestroy(g.graphExec)), CK(cudaGraphDestroy(g.graph));
    CK(cudaStreamBeginCapture(g.stream, cudaStreamCaptureModeThreadLocal));
    step();
    CK(cudaStreamEndCapture(g.stream, &g.graph));
#ifdef BASED_HAVE_CUBLASLT
    if (!g.untuned.empty()) {  // GEMM shapes first met inside the capture: tune them, then capture the tuned step
      auto pending = std::move(g.untuned);
      g.untuned.clear();
      for (auto& [k, W] : pending) g.tune(k, W);
      CK(cudaGraphDestroy(g.graph));
      CK(cudaStreamBeginCapture(g.stream, cudaStreamCaptureModeThreadLocal));
      step();
      CK(cudaStreamEndCapture(g.stream, &g.graph));
    }
#endif
    CK(cudaGraphInstantiate(&g.graphExec, g.graph, 0));
    g.graphB = B;
  }
  std::vector<int32_t> out(size_t(std::max(steps, 0)) * B);
  for (int i = 0; i < steps; ++i) {
    if (useGraph) CK(cudaGraphLaunch(g.graphExec, g.stream));
    else step();
    CK(cudaMemcpyAsync(out.data() + size_t(i) * B, g.tokens, size_t(B) * 4, cudaMemcpyDeviceToHost, g.stream));
  }
  CK(cudaStreamSynchronize(g.stream));
  return out;
}

std::map<std::string, double> GpuEngine::profileMs() const { return impl_->profileMs; }

std::map<std::string, double> GpuEngine::gemmChoices() const {
#ifdef BASED_HAVE_CUBLASLT
  return impl_->tuneLog;
#else
  return {};
#endif
}

double GpuEngine::decodeStepBytes(int B) const {
  return double(impl_->weightBytes) + double(impl_->stateBytesTouchedPerStep) * B;
}

void GpuEngine::synchronize() const { CK(cudaStreamSynchronize(impl_->stream)); }

double GpuEngine::checkSkinnyGemm() {
#ifdef BASED_HAVE_CUBLAS
  return impl_->checkSkinny();
#else
  return 0;
#endif
}

double GpuEngine::copyBandwidth() {
  const size_t n = size_t(1) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, n));
  CK(cudaMalloc(&b, n));
  CK(cudaMemset(a, 1, n));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
  std::vector<float> ms;
  for (int i = 0; i < 10; ++i) {
    CK(cudaEventRecord(e0));
    CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float t;
    CK(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  CK(cudaFree(a));
  CK(cudaFree(b));
  return 2.0 * n / (ms[ms.size() / 2] * 1e-3) / 1e9;
}

double GpuEngine::gemmPeakTflops(int n) {
#ifdef BASED_HAVE_CUBLAS
  // a plain cuBLAS bf16 GEMM (n x n x n, fp32 accumulation, bf16 out) on random data: the ceiling the dense
  // parts of prefill are measured against
  cublasHandle_t h;
  CK(cublasCreate(&h));
  const size_t nn = size_t(n) * n;
  std::vector<bf16> host(nn);
  uint32_t r = 12345;
  for (auto& x : host) r = r * 1664525u + 1013904223u, x = __float2bfloat16(float(int(r >> 9) - (1 << 22)) / float(1 << 22));
  bf16 *A = devAlloc<bf16>(nn), *Bm = devAlloc<bf16>(nn), *C = devAlloc<bf16>(nn);
  CK(cudaMemcpy(A, host.data(), nn * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(Bm, host.data(), nn * 2, cudaMemcpyHostToDevice));
  const float alpha = 1.f, beta = 0.f;
  auto once = [&] {
    CK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, A, CUDA_R_16BF, n, Bm, CUDA_R_16BF, n, &beta, C, CUDA_R_16BF, n,
                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  for (int i = 0; i < 3; ++i) once();
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < 10; ++i) {
    CK(cudaEventRecord(e0));
    once();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float t;
    CK(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  CK(cudaFree(A)), CK(cudaFree(Bm)), CK(cudaFree(C));
  cublasDestroy(h);
  return 2.0 * double(n) * n * n / (ms[ms.size() / 2] * 1e-3) / 1e12;
#else
  (void)n;
  return 0;
#endif
}

namespace {

class CudaBackend : public Backend {
 public:
  CudaBackend(int maxBatch, int64_t maxTokens) : maxBatch_(maxBatch), maxTokens_(maxTokens), owner_(maxBatch, nullptr), dirty_(maxBatch, false), used_(maxBatch, 0), uid_(maxBatch, 0) {}
  const char* name() const override { return "cuda"; }

  void forward(const Model& m, std::vector<SeqRequest>& batch, bool allLogits, std::vector<float>& logits) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!engine_ || model_ != &m) {
      // one slot more than the batch: the scratch slot of swaps
      engine_ = std::make_unique<GpuEngine>(m, maxBatch_ + 1, maxTokens_), model_ = &m;
      std::fill(owner_.begin(), owner_.end(), nullptr);
      slotOf_.clear();
    }
    // rows of logits per request, and where each request's rows start in the output
    std::vector<size_t> rowStart(batch.size() + 1, 0);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].n <= 0) throw EngineError("empty_input", "each sequence needs at least one token");
      rowStart[i + 1] = rowStart[i] + (allLogits ? size_t(batch[i].n) : 1);
    }
    const size_t V = size_t(m.cfg.vocabPadded);
    logits.assign(rowStart.back() * V, 0.f);
    // sequences of one length run together, maxBatch at a time; the scheduler mixes prefills and decodes
    std::map<int, std::vector<size_t>> byLength;
    for (size_t i = 0; i < batch.size(); ++i) byLength[batch[i].n].push_back(i);
    std::vector<float> part;
    for (auto& [L, idx] : byLength) {
      for (size_t c0 = 0; c0 < idx.size(); c0 += size_t(maxBatch_)) {
        const int B = int(std::min(idx.size() - c0, size_t(maxBatch_)));
        if (int64_t(B) * L > maxTokens_) {  // too long to run side by side: one at a time
          for (int k = 0; k < B; ++k) runGroup(batch, {idx[c0 + k]}, L, allLogits, rowStart, V, logits, part);
        } else {
          runGroup(batch, std::vector<size_t>(idx.begin() + c0, idx.begin() + c0 + B), L, allLogits, rowStart, V, logits, part);
        }
      }
    }
  }

  void syncToHost(SequenceState& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    const int slot = residentSlot(&s);
    if (slot < 0 || !dirty_[slot]) return;
    const int64_t pos = s.pos;
    engine_->downloadState(slot, s);
    if (s.pos != pos) throw EngineError("state_corrupt", "the device copy of a state disagrees with its position");
    dirty_[slot] = false;
  }

  void release(const SequenceState* s) override {
    std::lock_guard<std::mutex> lock(mu_);
    const int slot = residentSlot(s);
    if (slot < 0) return;
    owner_[slot] = nullptr, dirty_[slot] = false;
    slotOf_.erase(s);
  }

 private:
  // Puts the group's states in slots [0, B) in order (GpuEngine runs a prefix of its slots), runs it, and files
  // the logits rows. Resident states move by device copies; others are uploaded once and then stay.
  void runGroup(std::vector<SeqRequest>& batch, const std::vector<size_t>& group, int L, bool allLogits,
                const std::vector<size_t>& rowStart, size_t V, std::vector<float>& logits, std::vector<float>& part) {
    const int B = int(group.size());
    ++clock_;
    for (int i = 0; i < B; ++i) place(batch[group[i]].state, i, B);
    std::vector<int32_t> toks;
    std::vector<int> pre;
    for (size_t k : group) {
      toks.insert(toks.end(), batch[k].tokens, batch[k].tokens + L);
      pre.push_back(batch[k].prefixLen);
    }
    engine_->forward(toks.data(), B, L, pre.data(), allLogits, &part);
    const size_t rows = allLogits ? size_t(L) : 1;
    for (int i = 0; i < B; ++i) {
      SequenceState* s = batch[group[i]].state;
      s->pos += L;  // the host's position stays current; its arrays are refreshed on syncToHost
      dirty_[i] = true;
      used_[i] = clock_;
      std::copy(part.begin() + size_t(i) * rows * V, part.begin() + size_t(i + 1) * rows * V, logits.begin() + rowStart[group[i]] * V);
    }
  }

  // The slot holding s, or -1; a slot kept for an earlier state at the same address is dropped.
  int residentSlot(const SequenceState* s) {
    auto it = slotOf_.find(s);
    if (it == slotOf_.end()) return -1;
    if (uid_[it->second] == s->uid) return it->second;
    owner_[it->second] = nullptr, dirty_[it->second] = false;
    slotOf_.erase(it);
    return -1;
  }

  void place(SequenceState* s, int slot, int groupSize) {
    const int cur = residentSlot(s);
    if (cur == slot) return;
    if (owner_[slot] && cur >= 0) {  // both resident: swap through the scratch slot
      const int scratch = maxBatch_;
      engine_->copySlot(slot, scratch);
      engine_->copySlot(cur, slot);
      engine_->copySlot(scratch, cur);
      SequenceState* other = owner_[slot];
      std::swap(dirty_[slot], dirty_[cur]);
      std::swap(used_[slot], used_[cur]);
      std::swap(uid_[slot], uid_[cur]);
      owner_[cur] = other, slotOf_[other] = cur;
      owner_[slot] = s, slotOf_[s] = slot;
      return;
    }
    if (owner_[slot]) evictOrMove(slot, groupSize);
    if (cur >= 0) {
      engine_->copySlot(cur, slot);
      dirty_[slot] = dirty_[cur], used_[slot] = used_[cur];
      owner_[cur] = nullptr, dirty_[cur] = false;
    } else {
      engine_->uploadState(slot, *s);
      dirty_[slot] = false;
    }
    owner_[slot] = s, slotOf_[s] = slot, uid_[slot] = s->uid;
  }

  // Frees `slot` (inside the group's prefix): its state moves to a free slot past the group, or, with none free,
  // to the least recently used slot past the group, whose state is written back to its host copy first.
  void evictOrMove(int slot, int groupSize) {
    int target = -1;
    for (int j = groupSize; j < maxBatch_ && target < 0; ++j)
      if (!owner_[j]) target = j;
    if (target < 0) {
      for (int j = groupSize; j < maxBatch_; ++j)
        if (target < 0 || used_[j] < used_[target]) target = j;
      if (target >= 0) writeBack(target);
    }
    if (target < 0) {  // the group fills every slot: this state leaves the device
      writeBack(slot);
      return;
    }
    SequenceState* moving = owner_[slot];
    engine_->copySlot(slot, target);
    dirty_[target] = dirty_[slot], used_[target] = used_[slot], uid_[target] = uid_[slot];
    owner_[target] = moving, slotOf_[moving] = target;
    owner_[slot] = nullptr, dirty_[slot] = false;
  }

  void writeBack(int slot) {
    SequenceState* s = owner_[slot];
    if (!s) return;
    if (dirty_[slot]) engine_->downloadState(slot, *s);
    slotOf_.erase(s);
    owner_[slot] = nullptr, dirty_[slot] = false;
  }

  int maxBatch_;
  int64_t maxTokens_;
  const Model* model_ = nullptr;
  std::unique_ptr<GpuEngine> engine_;
  std::mutex mu_;
  std::vector<SequenceState*> owner_;  // per slot
  std::vector<char> dirty_;            // the device copy is newer than the host's
  std::vector<uint64_t> used_;         // last group that ran the slot, for eviction
  std::vector<uint64_t> uid_;          // SequenceState::uid of the owner
  std::map<const SequenceState*, int> slotOf_;
  uint64_t clock_ = 0;
};

}  // namespace

const char* gpuGemmName() {
#ifdef BASED_HAVE_CUBLAS
  const char* c = std::getenv("EVAPORATE_GPU_GEMM");
  return c && std::string(c) == "wmma" ? "wmma" : "cublas";
#else
  return "wmma";
#endif
}

std::unique_ptr<Backend> makeCudaBackend(int maxBatch, int64_t maxTokens) { return std::make_unique<CudaBackend>(maxBatch, maxTokens); }

bool cudaDeviceAvailable() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace based

// Entry points of libbased_cuda.so, looked up by backend_select.cpp.
extern "C" {
__attribute__((visibility("default"))) int based_cuda_abi() { return based::kBackendAbi; }
__attribute__((visibility("default"))) int based_cuda_device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
__attribute__((visibility("default"))) based::Backend* based_cuda_make_backend(int maxBatch, long long maxTokens) {
  return based::makeCudaBackend(maxBatch, maxTokens).release();
}
}
