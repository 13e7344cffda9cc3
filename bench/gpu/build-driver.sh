#!/bin/bash
# Builds the standalone GPU driver (/tmp/based_gpu) with cuBLAS: the toolkit's own, or the one PyTorch ships.
# Sourced by run.sh (the recorded run) and dev.sh (the kernel loop), so both time the same binary. Needs $OUT.
BLAS_FLAGS=""
if [ ! -f /usr/local/cuda/include/cublas_v2.h ]; then
  NV=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))' 2>/dev/null)
  [ -n "$NV" ] && BLAS_FLAGS="-I$NV/include -L$NV/lib -Xlinker -rpath=$NV/lib"
fi
SRC="native/cuda/cuda_backend.cu native/cuda/gpu_driver.cu native/src/engine.cpp native/src/cpu_backend.cpp native/src/cpu_kernels.cpp native/src/model.cpp native/src/safetensors.cpp native/src/json.cpp native/src/threadpool.cpp native/src/backend_select.cpp"
nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -Xcompiler -pthread,-march=x86-64-v2 $SRC $BLAS_FLAGS -lcublas -ldl \
  -o /tmp/based_gpu 2>&1 | tee "$OUT/build.log" | grep -E "error" && exit 1
