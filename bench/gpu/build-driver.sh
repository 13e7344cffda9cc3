#!/bin/bash
# Builds the standalone GPU driver (/tmp/based_gpu) with cuBLAS and cuBLASLt: the toolkit's own, or the ones
# PyTorch's wheels ship (nvidia/cublas or, in the CUDA 13 wheels, nvidia/cu13; their libraries carry only the
# versioned name, so they are linked by file). Sourced by run.sh (the recorded run) and dev.sh (the kernel loop),
# so both time the same binary. Needs $OUT.
BLAS_FLAGS="-lcublas -lcublasLt"
if [ ! -f /usr/local/cuda/include/cublas_v2.h ]; then
  NV=$(python3 -c '
import os, nvidia
for root in nvidia.__path__:
    for sub in ("cublas", "cu13", "cu12"):
        d = os.path.join(root, sub)
        if os.path.isfile(os.path.join(d, "include", "cublas_v2.h")):
            print(d); raise SystemExit
' 2>/dev/null)
  if [ -n "$NV" ]; then
    lib() { ls "$NV"/lib/lib$1.so "$NV"/lib/lib$1.so.* 2>/dev/null | head -1; }
    BLAS_FLAGS="-I$NV/include -Xlinker -rpath=$NV/lib $(lib cublas) $(lib cublasLt)"
  fi
fi
echo "cuBLAS: ${NV:-toolkit} ($BLAS_FLAGS)" > "$OUT/build.log"
SRC="native/cuda/cuda_backend.cu native/cuda/gpu_driver.cu native/src/engine.cpp native/src/cpu_backend.cpp native/src/cpu_kernels.cpp native/src/model.cpp native/src/safetensors.cpp native/src/json.cpp native/src/threadpool.cpp native/src/backend_select.cpp"
nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -pthread,-march=x86-64-v2 $SRC $BLAS_FLAGS -ldl \
  -o /tmp/based_gpu >>"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
