// Decode-step GEMMs, C[t][o] (+)= sum_k A[t][k] W[o][k] for at most 128 rows t, on Hopper's wgmma (issue 21), meant
// to stream the weights at bandwidth. Why not cuBLAS: at 128 rows it ran the step's 2-200 MB weight matrices at
// 0.5-3 TB/s (bench/results/based-gpu-gemm-probe.txt), and a kernel of ours can start loading its weights, which no
// earlier kernel writes, while the previous kernel still runs (programmatic dependent launch). Measured so far: correct,
// and slower than cuBLAS at every shape in a graph-captured step (a ~5 us floor a call where cuBLAS takes 3.8 us; on
// the large shapes the activation tile's 16-byte copies are the limit: based-gpu.json, skinny_gemm).
//
// A CTA computes 128 or 256 outputs (two warpgroups, each one or two m64 sub-tiles) for all 128 rows over a range of
// K (split-K where the outputs alone give too few CTAs to keep the memory busy: the parts of a bf16 output meet in a
// thread-block cluster's distributed shared memory, those of a residual add through fp32 atomics, or, with clusters
// turned off, through an fp32 workspace and a fix-up by the tile's last CTA). Weights are repacked once, at load,
// into 16 KB blocks of 128 outputs x 64 K, each laid out as wgmma reads 128-byte-swizzled shared memory, so one bulk
// copy moves a block; the activations are copied 16 bytes at a time into the same layout.
// Included by cuda_backend.cu inside its anonymous namespace (bf16, cpAsync16, pdlWait, ck).

constexpr int kSgRows = 128;                      // rows (tokens) per call: wgmma N
constexpr int kSgOut = 128;                       // outputs per weight block
constexpr int kSgK = 64;                          // K per stage: one 128-byte swizzle row of bf16
constexpr int kSgBlockBytes = kSgOut * kSgK * 2;  // one weight block (16 KB), and one activation tile
constexpr int kSgThreads = 256;
// A CTA's tile: 128 or 256 outputs (one or two weight blocks a stage); the wider tile brings half the activation
// bytes per weight byte, at twice the accumulators. Stages: what fits 227 KB with the epilogue's fp32 staging.
template <int kTile>
struct SgShape {
  static constexpr int blocks = kTile / kSgOut;
  static constexpr int stages = kTile == 128 ? 6 : 4;
  static constexpr int wBytes = blocks * kSgBlockBytes;  // weights a stage
  static constexpr int cStride = kTile + 4;             // fp32 staging row, padded off the banks
  static constexpr size_t smem = size_t(stages) * (wBytes + kSgBlockBytes) + 1024 + 64;
};

enum class SgMode : int { StoreBf16 = 0, StoreF32 = 1, AddF32 = 2, SplitBf16 = 3 };

struct SgArgs {
  const bf16* A;
  int lda, T;
  const bf16* Wp;  // packed: [128-output block][K stage][128 x 64 swizzled], an even number of blocks
  int in, kStages, out;
  void* C;
  int ldc;
  int perSplit;      // K stages per CTA (gridDim.y CTAs share an output tile)
  float* ws;         // SplitBf16: fp32 partial sums [T][out], zero between calls
  unsigned* counts;  // SplitBf16: CTAs finished per output tile, zero between calls
  SgMode mode;
  int cluster;  // > 1: the gridDim.y CTAs of an output tile form a cluster and sum their parts through DSMEM
  // gemmcheck's timing variants (wrong sums but for 0): 0 the GEMM, 1 without the MMAs, 2 without any loads,
  // 3 without the activation loads, 4 without the weight loads
  int probe;
  __host__ __device__ bool loadsWeights() const { return probe != 2 && probe != 4; }
  __host__ __device__ bool loadsActivations() const { return probe != 2 && probe != 3; }
};

// Element (r, k) of a 128-byte-swizzled tile of rows of 64 bf16: the 16-byte chunk k / 8 of row r sits at chunk
// (k / 8) ^ (r % 8), as wgmma's 128B swizzle mode (and the tensor copy engine's) expects.
__host__ __device__ inline int sgSwizzled(int r, int k) { return r * kSgK + ((((k >> 3) ^ (r & 7)) << 3) | (k & 7)); }

__global__ void sgPackKernel(const bf16* __restrict__ W, bf16* __restrict__ P, int in, int out, int kStages, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t block = i / (kSgOut * kSgK);
    const int within = int(i % (kSgOut * kSgK)), r = within / kSgK, kk = within % kSgK;
    const int tile = int(block / kStages), ks = int(block % kStages);
    const int o = tile * kSgOut + r, k = ks * kSgK + kk;
    P[block * (kSgOut * kSgK) + sgSwizzled(r, kk)] = o < out && k < in ? W[int64_t(o) * in + k] : __float2bfloat16(0.f);
  }
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define BASED_SG_DEVICE 1
__device__ inline uint32_t smemAddr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart.
__device__ inline uint64_t sgDesc(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

__device__ inline void mbarInit(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smemAddr(bar)), "r"(count));
}
__device__ inline void mbarExpect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smemAddr(bar)), "r"(bytes) : "memory");
}
__device__ inline void mbarArrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smemAddr(bar)) : "memory");
}
__device__ inline void mbarWait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nwait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n}\n" ::"r"(smemAddr(bar)),
      "r"(parity)
      : "memory");
}
__device__ inline void bulkLoad(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(smemAddr(dst)), "l"(src),
               "r"(bytes), "r"(smemAddr(bar))
               : "memory");
}

// Thread-block clusters: every thread of every CTA in the cluster arrives and waits (release / acquire, so the
// shared-memory writes before it are visible cluster-wide after it).
__device__ inline void clusterSync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
__device__ inline unsigned clusterRank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// 16 bytes at the same shared-memory offset in the cluster's CTA `rank`
__device__ inline float4 ldClusterF4(const void* local, unsigned rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smemAddr(local)), "r"(rank));
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(remote) : "memory");
  return v;
}

// D[64 x 128] += A[64 x 16] B[16 x 128], both operands K-major in 128-byte-swizzled shared memory (descriptors)
__device__ inline void wgmmaM64N128K16(float* d, uint64_t descA, uint64_t descB, int scaleD) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB), "r"(scaleD));
}
#endif

#ifdef BASED_SG_DEVICE
// Weight stage `stage` (of a.kStages) of the CTA's tile, B blocks of 128 outputs, into dst, completing on bar; in a
// probe without weight loads only the arrival, so a barrier counting on it still completes.
template <int B>
__device__ inline void sgCopyWeights(const SgArgs& a, uint8_t* dst, uint64_t* bar, int tile, int stage) {
  if (!a.loadsWeights()) return mbarArrive(bar);
  mbarExpect(bar, B * kSgBlockBytes);
#pragma unroll
  for (int b = 0; b < B; ++b)
    bulkLoad(dst + b * kSgBlockBytes, a.Wp + (int64_t(tile * B + b) * a.kStages + stage) * (kSgOut * kSgK), kSgBlockBytes, bar);
}

// Activation tile of K stage `stage`: 128 rows x 64 K in 16-byte chunks spread over kThreads threads (this one is
// `tid`); rows past T and K past `in` read zeros. Only issues the copies: the caller commits and waits.
template <int kThreads>
__device__ inline void sgCopyActivations(const SgArgs& a, uint8_t* dst, int stage, int tid) {
  if (!a.loadsActivations()) return;
  const int kBase = stage * kSgK;
#pragma unroll
  for (int c = 0; c < kSgRows * kSgK / 8 / kThreads; ++c) {
    const int chunk = tid + c * kThreads, r = chunk >> 3, kc = chunk & 7;
    const int k = kBase + kc * 8;
    const bool valid = r < a.T && k < a.in;
    cpAsync16(dst + 2 * sgSwizzled(r, kc * 8), valid ? a.A + int64_t(r) * a.lda + k : a.A, valid);
  }
}

// The CTA's accumulators -> C: staged through shared memory as [row][output] fp32 (over the stage buffers, all
// consumed by now), then coalesced 16-byte stores or adds. Run by the 256 threads that hold the accumulators (tid
// 0..255, warpgroup wg); sync() is a barrier among exactly those threads.
template <int kTile, int B, class Sync>
__device__ inline void sgEpilogue(const SgArgs& a, float (&acc)[B][64], uint8_t* base, int tid, int wg, Sync sync) {
  using Sh = SgShape<kTile>;
  __shared__ int lastOfTile;
  const int tile = blockIdx.x;
  float* sC = reinterpret_cast<float*>(base);
  {
    const int warp = (tid >> 5) & 3, lane = tid & 31, tLocal = 2 * (lane & 3);
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const int oLocal = wg * (kTile / 2) + b * 64 + warp * 16 + (lane >> 2);
#pragma unroll
      for (int j = 0; j < 16; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 0; e < 2; ++e) sC[(8 * j + tLocal + e) * Sh::cStride + oLocal + 8 * h] = acc[b][j * 4 + h * 2 + e];
    }
  }
  const int oBase = tile * kTile;
  auto storeBf16 = [&](int t, int o, float4 v) {
    __nv_bfloat162* c = reinterpret_cast<__nv_bfloat162*>(static_cast<bf16*>(a.C) + int64_t(t) * a.ldc + o);
    c[0] = __floats2bfloat162_rn(v.x, v.y), c[1] = __floats2bfloat162_rn(v.z, v.w);
  };
  if (a.cluster > 1) {
    // split K within a cluster (bf16 or fp32 stores; residual adds split through atomics, which measured faster):
    // every CTA's part is staged; CTA `rank` sums rows rank * rows .. of all parts from the cluster's shared memory
    // and alone writes them, so no workspace or fix-up
    clusterSync();
    const int rows = (kSgRows + a.cluster - 1) / a.cluster, t0 = int(clusterRank()) * rows, t1 = min(a.T, t0 + rows);
    for (int q = tid; q < (t1 - t0) * (kTile / 4); q += kSgThreads) {
      const int t = t0 + q / (kTile / 4), oq = (q % (kTile / 4)) * 4;
      if (oBase + oq >= a.out) continue;
      const float* part = &sC[t * Sh::cStride + oq];
      float4 v = *reinterpret_cast<const float4*>(part);
      for (int r = 0; r < a.cluster; ++r) {
        if (r == int(clusterRank())) continue;
        const float4 w = ldClusterF4(part, unsigned(r));
        v.x += w.x, v.y += w.y, v.z += w.z, v.w += w.w;
      }
      if (a.mode == SgMode::StoreBf16) storeBf16(t, oBase + oq, v);
      else *reinterpret_cast<float4*>(static_cast<float*>(a.C) + int64_t(t) * a.ldc + oBase + oq) = v;
    }
    clusterSync();  // no CTA leaves while another still reads its shared memory
    return;
  }
  sync();
  auto eachQuad = [&](auto&& fn) {  // fn(row, output, 4 sums) over this tile's rows < T and outputs < out
    for (int q = tid; q < kSgRows * kTile / 4; q += kSgThreads) {
      const int t = q / (kTile / 4), oq = (q % (kTile / 4)) * 4;
      if (t >= a.T || oBase + oq >= a.out) continue;
      fn(t, oBase + oq, *reinterpret_cast<const float4*>(&sC[t * Sh::cStride + oq]));
    }
  };
  switch (a.mode) {
    case SgMode::StoreBf16: eachQuad(storeBf16); break;
    case SgMode::StoreF32:
      eachQuad([&](int t, int o, float4 v) { *reinterpret_cast<float4*>(static_cast<float*>(a.C) + int64_t(t) * a.ldc + o) = v; });
      break;
    case SgMode::AddF32:  // the residual add; split-K CTAs add their parts
      eachQuad([&](int t, int o, float4 v) { atomicAdd(reinterpret_cast<float4*>(static_cast<float*>(a.C) + int64_t(t) * a.ldc + o), v); });
      break;
    case SgMode::SplitBf16: {
      eachQuad([&](int t, int o, float4 v) { atomicAdd(reinterpret_cast<float4*>(a.ws + int64_t(t) * a.out + o), v); });
      __threadfence();
      sync();
      if (tid == 0) lastOfTile = atomicAdd(&a.counts[tile], 1u) == gridDim.y - 1;
      sync();
      if (!lastOfTile) break;
      // the tile's last CTA converts the sums and leaves the workspace and the count at zero for the next call
      __threadfence();
      eachQuad([&](int t, int o, float4) {
        float4* w = reinterpret_cast<float4*>(a.ws + int64_t(t) * a.out + o);
        storeBf16(t, o, __ldcg(w));
        __stcg(w, make_float4(0.f, 0.f, 0.f, 0.f));
      });
      if (tid == 0) a.counts[tile] = 0;
      break;
    }
  }
}

#endif

template <int kTile>
__global__ void __launch_bounds__(kSgThreads, 1) sgGemmKernel(SgArgs a) {
#ifdef BASED_SG_DEVICE
  using Sh = SgShape<kTile>;
  constexpr int S = Sh::stages, B = Sh::blocks;
  extern __shared__ uint8_t sgRaw[];
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(sgRaw) + 1023) & ~uintptr_t(1023));
  uint8_t* sW = base;                             // S stages of B weight blocks
  uint8_t* sA = base + size_t(S) * Sh::wBytes;    // S activation tiles
  uint64_t* full = reinterpret_cast<uint64_t*>(base + size_t(S) * (Sh::wBytes + kSgBlockBytes));
  const int tid = threadIdx.x, tile = blockIdx.x;
  const int k0 = blockIdx.y * a.perSplit, n = min(a.perSplit, a.kStages - k0);
  const bool loadW = a.loadsWeights();
  auto issueW = [&](int i) { sgCopyWeights<B>(a, sW + (i % S) * Sh::wBytes, &full[i % S], tile, k0 + i); };

  // weights first: nothing before this kernel writes them, so their copies start before the wait below
  if (tid == 0) {
    for (int s = 0; s < S; ++s) mbarInit(&full[s], 1);
    asm volatile("fence.mbarrier_init.release.cluster;\nfence.proxy.async.shared::cta;\n" ::: "memory");
    if (loadW)
      for (int s = 0; s < S && s < n; ++s) issueW(s);
  }
  pdlWait();
  __syncthreads();

  auto loadA = [&](int i) {  // one commit group a stage, empty past the last
    if (i < n) sgCopyActivations<kSgThreads>(a, sA + (i % S) * kSgBlockBytes, k0 + i, tid);
    asm volatile("cp.async.commit_group;\n" ::: "memory");
  };
  // Stage i's MMAs stay in flight while the CTA waits for stage i + 1 and issues its copies (one wgmma group
  // outstanding): the stage refilled at iteration i is i - 2, whose MMAs every warpgroup has finished by then.
  for (int i = 0; i < S - 2; ++i) loadA(i);

  float acc[B][64];  // the first MMA overwrites (scale-d 0): no other instruction defines them before the epilogue
  const int wg = tid >> 7;  // warpgroup: outputs kTile / 2 * wg .. of the tile, B sub-tiles of 64
  for (int i = 0; i < n; ++i) {
    const int s = i % S;
    asm volatile("cp.async.wait_group %0;\n" ::"n"(S - 3) : "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // our copies, then the tensor cores read them
    __syncthreads();
    if (i >= 2 && tid == 0 && i - 2 + S < n && loadW) issueW(i - 2 + S);
    loadA(i + S - 2);
    if (loadW) mbarWait(&full[s], (i / S) & 1);
    if (a.probe == 1) continue;
    const uint32_t aAddr = smemAddr(sA + s * kSgBlockBytes);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    const uint32_t wAddr = smemAddr(sW + s * Sh::wBytes + wg * (kTile / 2) * kSgK * 2);
#pragma unroll
    for (int kk = 0; kk < kSgK / 16; ++kk)
#pragma unroll
      for (int b = 0; b < B; ++b) wgmmaM64N128K16(acc[b], sgDesc(wAddr + b * 64 * kSgK * 2 + kk * 32), sgDesc(aAddr + kk * 32), i > 0 || kk > 0);
    asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 1;\n" ::: "memory");
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
  pdlLaunchDependents();
  __syncthreads();

  sgEpilogue<kTile, B>(a, acc, base, tid, wg, [] { __syncthreads(); });
#endif
}

// The same GEMM with its roles split (EVAPORATE_GPU_SKINNY_TILE=ws): a producer warpgroup copies the weights (one
// thread, bulk copies) and the activations (16-byte copies) into the stages, and two consumer warpgroups run the
// MMAs, each stage handed over by a full / empty mbarrier pair instead of a barrier of the whole CTA, so copies and
// MMAs of different stages overlap. The producer signals a stage once its own copies of it have landed and it has
// fenced them for the tensor cores (kSgWsLag stages behind what it issues, so the copies stay in flight).
constexpr int kSgWsThreads = 384, kSgWsStages = 6, kSgWsLag = 3;
constexpr size_t kSgWsSmemBytes = size_t(kSgWsStages) * 2 * kSgBlockBytes + 1024 + 2 * kSgWsStages * 8;

__global__ void __launch_bounds__(kSgWsThreads, 1) sgGemmWsKernel(SgArgs a) {
#ifdef BASED_SG_DEVICE
  constexpr int S = kSgWsStages, D = kSgWsLag;
  extern __shared__ uint8_t sgRaw[];
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(sgRaw) + 1023) & ~uintptr_t(1023));
  uint8_t* sW = base;
  uint8_t* sA = base + size_t(S) * kSgBlockBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(base + size_t(S) * 2 * kSgBlockBytes);
  uint64_t* empty = full + S;
  const int tid = threadIdx.x, tile = blockIdx.x;
  const int k0 = blockIdx.y * a.perSplit, n = min(a.perSplit, a.kStages - k0);
  auto issueW = [&](int i) { sgCopyWeights<1>(a, sW + (i % S) * kSgBlockBytes, &full[i % S], tile, k0 + i); };  // thread 0
  if (tid == 0) {
    // full: thread 0's weight arrival and the producer warpgroup's 128; empty: the 8 consumer warps
    for (int s = 0; s < S; ++s) mbarInit(&full[s], 1 + 128), mbarInit(&empty[s], 8);
    asm volatile("fence.mbarrier_init.release.cluster;\nfence.proxy.async.shared::cta;\n" ::: "memory");
    for (int s = 0; s < S && s < n; ++s) issueW(s);  // before the wait: no earlier kernel writes the weights
  }
  pdlWait();
  __syncthreads();

  if (tid < 128) {  // producer
    auto signal = [&](int i) {  // stage i's activations have landed (cp.async.wait_group before this)
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      mbarArrive(&full[i % S]);
    };
    for (int i = 0; i < n; ++i) {
      const int s = i % S;
      if (i >= S) {
        mbarWait(&empty[s], ((i / S) + 1) & 1);  // the consumers are done with stage i - S
        if (tid == 0) issueW(i);
      }
      sgCopyActivations<128>(a, sA + s * kSgBlockBytes, k0 + i, tid);
      asm volatile("cp.async.commit_group;\n" ::: "memory");
      if (i >= D) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(D) : "memory");
        signal(i - D);
      }
    }
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    for (int i = max(0, n - D); i < n; ++i) signal(i);
    pdlLaunchDependents();
    if (a.cluster > 1) clusterSync(), clusterSync();  // the consumers' two in the epilogue
    return;
  }
  // consumers: warpgroup wg runs outputs 64 wg .. 64 wg + 63 of the tile
  const int ctid = tid - 128, wg = ctid >> 7;
  float acc[1][64];  // the first MMA overwrites (scale-d 0)
  for (int i = 0; i < n; ++i) {
    const int s = i % S;
    mbarWait(&full[s], (i / S) & 1);
    if (a.probe != 1) {
      const uint32_t aAddr = smemAddr(sA + s * kSgBlockBytes), wAddr = smemAddr(sW + s * kSgBlockBytes + wg * 64 * kSgK * 2);
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int kk = 0; kk < kSgK / 16; ++kk) wgmmaM64N128K16(acc[0], sgDesc(wAddr + kk * 32), sgDesc(aAddr + kk * 32), i > 0 || kk > 0);
      asm volatile("wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 1;\n" ::: "memory");
    }
    // stage i - 1's MMAs are done (one group left in flight): hand it back
    if (i >= 1 && (ctid & 31) == 0) mbarArrive(&empty[(i - 1) % S]);
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  pdlLaunchDependents();
  asm volatile("bar.sync 1, 256;\n" ::: "memory");
  sgEpilogue<128, 1>(a, acc, base, ctid, wg, [] { asm volatile("bar.sync 1, 256;\n" ::: "memory"); });
#endif
}

// Whether this build carries the wgmma kernel for the device it runs on (sm_90a code).
__global__ void sgProbeKernel(int* ok) {
#ifdef BASED_SG_DEVICE
  *ok = 1;
#else
  *ok = 0;
#endif
}
