#include "cpu_kernels.h"

#include <immintrin.h>

#include <algorithm>

namespace based {

bool cpuHasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

namespace {

constexpr int kTokBlock = 64;  // X rows kept hot in L2 while W rows stream through L1

// R rows of W against C rows of X: dot products with 8 partial lanes, reduced at the end.
template <int R, int C>
inline void microGeneric(const float* X, int in, const float* W, float* Y, int out, const float* b) {
  float acc[R][C][8] = {};
  int k = 0;
  for (; k + 8 <= in; k += 8)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        for (int l = 0; l < 8; ++l) acc[r][c][l] += W[r * in + k + l] * X[c * in + k + l];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = 0;
      for (int l = 0; l < 8; ++l) s += acc[r][c][l];
      for (int kk = k; kk < in; ++kk) s += W[r * in + kk] * X[c * in + kk];
      Y[c * out + r] = s + (b ? b[r] : 0.f);
    }
}

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

template <int R, int C>
__attribute__((target("avx2,fma"))) inline void microAvx2(const float* X, int in, const float* W, float* Y, int out,
                                                          const float* b) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= in; k += 8) {
    __m256 w[R];
    for (int r = 0; r < R; ++r) w[r] = _mm256_loadu_ps(W + r * in + k);
    for (int c = 0; c < C; ++c) {
      __m256 x = _mm256_loadu_ps(X + c * in + k);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(w[r], x, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = hsum(acc[r][c]);
      for (int kk = k; kk < in; ++kk) s += W[r * in + kk] * X[c * in + kk];
      Y[c * out + r] = s + (b ? b[r] : 0.f);
    }
}

template <bool Avx, int R, int C>
inline void micro(const float* X, int in, const float* W, float* Y, int out, const float* b) {
  if constexpr (Avx) microAvx2<R, C>(X, in, W, Y, out, b);
  else microGeneric<R, C>(X, in, W, Y, out, b);
}

template <bool Avx, int R>
inline void rowsTimesTokens(const float* X, int t0, int t1, int in, const float* W, float* Y, int out, const float* b) {
  int t = t0;
  for (; t + 4 <= t1; t += 4) micro<Avx, R, 4>(X + size_t(t) * in, in, W, Y + size_t(t) * out, out, b);
  switch (t1 - t) {
    case 3: micro<Avx, R, 3>(X + size_t(t) * in, in, W, Y + size_t(t) * out, out, b); break;
    case 2: micro<Avx, R, 2>(X + size_t(t) * in, in, W, Y + size_t(t) * out, out, b); break;
    case 1: micro<Avx, R, 1>(X + size_t(t) * in, in, W, Y + size_t(t) * out, out, b); break;
    default: break;
  }
}

template <bool Avx>
void linearRows(const float* X, int T, const float* W, const float* b, int in, int out, float* Y, int o0, int o1) {
  for (int tb = 0; tb < T; tb += kTokBlock) {
    int te = std::min(T, tb + kTokBlock);
    int o = o0;
    for (; o + 3 <= o1; o += 3) rowsTimesTokens<Avx, 3>(X, tb, te, in, W + size_t(o) * in, Y + o, out, b ? b + o : nullptr);
    if (o1 - o == 2) rowsTimesTokens<Avx, 2>(X, tb, te, in, W + size_t(o) * in, Y + o, out, b ? b + o : nullptr);
    else if (o1 - o == 1) rowsTimesTokens<Avx, 1>(X, tb, te, in, W + size_t(o) * in, Y + o, out, b ? b + o : nullptr);
  }
}

}  // namespace

void linear(ThreadPool& pool, const float* X, int T, const float* W, const float* b, int in, int out, float* Y) {
  if (T <= 0 || out <= 0) return;
  // groups of 3 rows match the micro-kernel; enough groups per grab to amortize the atomic
  int64_t groups = (out + 2) / 3;
  int64_t grain = std::max<int64_t>(1, groups / (int64_t(pool.size()) * 8));
  bool avx = cpuHasAvx2Fma();
  pool.parallelFor(groups, grain, [&](int64_t g0, int64_t g1) {
    int o0 = int(g0 * 3), o1 = int(std::min<int64_t>(out, g1 * 3));
    if (avx) linearRows<true>(X, T, W, b, in, out, Y, o0, o1);
    else linearRows<false>(X, T, W, b, in, out, Y, o0, o1);
  });
}

}  // namespace based
