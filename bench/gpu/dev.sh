#!/bin/bash
# Quick loop on the GPU machine while changing kernels (issue 21): build, the correctness checks with cuBLAS,
# compute-sanitizer on the tiny fixtures, then prefill at both shapes (tensor-core and scalar attention prefill)
# with the per-category prefill profile. bench/gpu/run.sh is the full, recorded run.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/based-gpu-dev}
mkdir -p "$OUT"
source "$(dirname "$0")/build-driver.sh"
{
  for f in tiny-based tiny-based-bf16 tiny-jrt; do
    /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case'
    /tmp/based_gpu parity fixtures/based/$f 2e-2
  done
  for f in tiny-based tiny-jrt; do /tmp/based_gpu residency fixtures/based/$f 2e-2; done
  for f in tiny-based tiny-jrt; do
    compute-sanitizer --tool memcheck --print-limit 5 /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case'
  done
  compute-sanitizer --tool racecheck --print-limit 5 /tmp/based_gpu check fixtures/based/tiny-jrt fixtures/based/tiny-jrt/cases/cases.safetensors 2e-2 | grep -v '^case'
} 2>&1 | tee "$OUT/correctness.log"
python3 bench/gpu/make_configs.py /tmp/cfg
{
  for m in based-360m based-1b; do
    /tmp/based_gpu bench /tmp/cfg/$m.json $m 128 8 16 32768
    EVAPORATE_GPU_PROFILE=prefill /tmp/based_gpu bench /tmp/cfg/$m.json $m 128 8 16 32768
  done
  EVAPORATE_GPU_PREFILL=simt /tmp/based_gpu bench /tmp/cfg/based-360m.json based-360m-simt 128 8 16 32768
} 2>&1 | tee "$OUT/engine.log"
