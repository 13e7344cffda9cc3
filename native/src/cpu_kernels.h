// Dense CPU kernels. Built for x86-64-v2; the matrix kernel switches to AVX2+FMA at run time when the
// processor has them, so one binary serves every user's machine.
#pragma once
#include <cstdint>

#include "threadpool.h"

namespace based {

// Y[T, out] = X[T, in] · W[out, in]^T (+ b). Rows of W are split across the pool.
void linear(ThreadPool& pool, const float* X, int T, const float* W, const float* b, int in, int out, float* Y);
bool cpuHasAvx2Fma();

}  // namespace based
