#!/bin/bash
# Our wgmma decode GEMM (native/cuda/skinny_gemm.cuh, EVAPORATE_GPU_SKINNY=1; issue 21), on the GPU machine after
# bench/gpu/run.sh in the same lease (it reuses /tmp/based_gpu and /tmp/cfg): its check against cuBLAS and per-shape
# timings at both model shapes, the fixture checks with it forced on, and the decode step with it beside the default
# (cuBLAS) step, both 256 steps at batch 128.   Then: python3 bench/gpu/collect.py <run.sh's $OUT> <this $OUT>
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/based-gpu-skinny}
mkdir -p "$OUT"
[ -x /tmp/based_gpu ] || source "$(dirname "$0")/build-driver.sh"
[ -f /tmp/cfg/based-1b.json ] || python3 bench/gpu/make_configs.py /tmp/cfg
{
  for m in based-360m based-1b; do echo "-- $m"; EVAPORATE_GPU_SKINNY=1 timeout 150 /tmp/based_gpu gemmcheck /tmp/cfg/$m.json 2e-2; done
  echo "-- fixtures with EVAPORATE_GPU_SKINNY=1"
  for f in tiny-based tiny-based-bf16 tiny-jrt; do
    EVAPORATE_GPU_SKINNY=1 timeout 60 /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case'
    EVAPORATE_GPU_SKINNY=1 timeout 60 /tmp/based_gpu parity fixtures/based/$f 2e-2
  done
  EVAPORATE_GPU_SKINNY=1 timeout 60 /tmp/based_gpu residency fixtures/based/tiny-jrt 2e-2
  EVAPORATE_GPU_SKINNY=1 timeout 100 compute-sanitizer --tool memcheck --print-limit 5 /tmp/based_gpu parity fixtures/based/tiny-jrt 2e-2 | grep -E 'PASS|FAIL|ERROR'
} 2>&1 | tee "$OUT/skinny.log"
{
  for m in based-360m based-1b; do
    timeout 90 /tmp/based_gpu bench /tmp/cfg/$m.json $m-step256 128 256 1 16 | grep RESULT
    EVAPORATE_GPU_SKINNY=1 timeout 90 /tmp/based_gpu bench /tmp/cfg/$m.json $m-skinny 128 256 1 16 | grep RESULT
    EVAPORATE_GPU_SKINNY=1 EVAPORATE_GPU_PROFILE=1 timeout 90 /tmp/based_gpu bench /tmp/cfg/$m.json $m-skinny 128 | grep PROFILE
  done
} 2>&1 | tee "$OUT/engine.log"
