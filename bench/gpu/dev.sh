#!/bin/bash
# Quick loop on the GPU machine while changing kernels (issue 21): build; the correctness checks with cuBLAS; decode
# at both shapes (graph-captured, 256 steps) and its per-category profile; Nsight Compute on the three prefill
# mixer kernels at based-1b (what bounds them); compute-sanitizer on the decode path last. bench/gpu/run.sh is the
# full, recorded run.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/based-gpu-dev}
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "-- $1 at $(( $(date +%s) - t0 )) s"; }
source "$(dirname "$0")/build-driver.sh"
stamp built
{
  for f in tiny-based tiny-based-bf16 tiny-jrt; do
    /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case'
    /tmp/based_gpu parity fixtures/based/$f 2e-2
  done
  for f in tiny-based tiny-jrt; do /tmp/based_gpu residency fixtures/based/$f 2e-2; done
  stamp correctness
} 2>&1 | tee "$OUT/correctness.log"
python3 bench/gpu/make_configs.py /tmp/cfg
{
  for m in based-360m based-1b; do
    /tmp/based_gpu bench /tmp/cfg/$m.json $m 128 256 1 16 | grep RESULT
    EVAPORATE_GPU_PROFILE=1 /tmp/based_gpu bench /tmp/cfg/$m.json $m 128
    stamp "decode $m"
  done
} 2>&1 | tee "$OUT/engine.log"
EVAPORATE_GPU_PROFILE=prefill timeout 150 ncu --clock-control none --kernel-name regex:'swPrefillTcKernel|laPrefillTcKernel|convSlideKernel' \
  --launch-count 3 --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
  /tmp/based_gpu bench /tmp/cfg/based-1b.json ncu 128 8 16 2048 > "$OUT/ncu-prefill.txt" 2>&1
stamp ncu
grep -E '^  [a-zA-Z].*Kernel|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy|Block Limit|Warp Cycles Per Issued|Stall' "$OUT/ncu-prefill.txt" | head -60
{
  timeout 100 compute-sanitizer --tool memcheck --print-limit 5 /tmp/based_gpu parity fixtures/based/tiny-jrt 2e-2 | grep -E 'PASS|FAIL|ERROR'
  timeout 100 compute-sanitizer --tool racecheck --print-limit 5 /tmp/based_gpu parity fixtures/based/tiny-jrt 2e-2 | grep -E 'PASS|FAIL|ERROR|RACECHECK|hazard'
  stamp sanitizer
} 2>&1 | tee "$OUT/sanitizer.log"
