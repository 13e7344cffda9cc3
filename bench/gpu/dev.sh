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
# our decode GEMM against cuBLAS first, under a timeout (a wrong barrier phase would hang, not fail)
python3 bench/gpu/make_configs.py /tmp/cfg
for m in based-360m based-1b; do timeout 120 /tmp/based_gpu gemmcheck /tmp/cfg/$m.json 2e-2; done > "$OUT/gemmcheck.log" 2>&1
grep -E 'e-0[0-1]|e\+|nan|inf|FAIL|PASS' "$OUT/gemmcheck.log" | head -20
[ "$(grep -c PASS "$OUT/gemmcheck.log")" = 2 ] || { tail -5 "$OUT/gemmcheck.log"; exit 1; }
stamp gemmcheck
{
  for f in tiny-based tiny-based-bf16 tiny-jrt; do
    timeout 60 /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case'
    timeout 60 /tmp/based_gpu parity fixtures/based/$f 2e-2
  done
  for f in tiny-based tiny-jrt; do /tmp/based_gpu residency fixtures/based/$f 2e-2; done
  stamp correctness
} 2>&1 | tee "$OUT/correctness.log"
{
  for m in based-360m based-1b; do
    timeout 90 /tmp/based_gpu bench /tmp/cfg/$m.json $m 128 256 1 16 | grep RESULT
    # without programmatic dependent launch, for what it saves
    [ "${COMPARE_PDL:-0}" = 1 ] && EVAPORATE_GPU_PDL=0 timeout 90 /tmp/based_gpu bench /tmp/cfg/$m.json $m-nopdl 128 256 1 16 | grep RESULT
    # the same step on our wgmma GEMM (skinny_gemm.cuh), with and without programmatic dependent launch
    [ "${COMPARE:-1}" = 1 ] && EVAPORATE_GPU_SKINNY=1 /tmp/based_gpu bench /tmp/cfg/$m.json $m-skinny 128 256 1 16 | grep RESULT
    # and with each shape's GEMM chosen by measurement among cuBLAS(Lt) and ours
    [ "${COMPARE:-1}" = 1 ] || [ "${COMPARE_AUTO:-0}" = 1 ] && EVAPORATE_GPU_SKINNY=auto /tmp/based_gpu bench /tmp/cfg/$m.json $m-skinny-auto 128 256 1 16 | grep -E 'RESULT|GEMMTUNE'
    EVAPORATE_GPU_PROFILE=1 /tmp/based_gpu bench /tmp/cfg/$m.json $m 128
    stamp "decode $m"
  done
} 2>&1 | tee "$OUT/engine.log"
[ "${NCU:-0}" = 1 ] && EVAPORATE_GPU_PROFILE=prefill timeout 150 ncu --clock-control none --kernel-name regex:'swPrefillTcKernel|laPrefillTcKernel|convSlideKernel' \
  --launch-count 3 --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
  /tmp/based_gpu bench /tmp/cfg/based-1b.json ncu 128 8 16 2048 > "$OUT/ncu-prefill.txt" 2>&1
stamp ncu
[ "${NCU:-0}" = 1 ] && grep -E '^  [a-zA-Z].*Kernel|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy|Block Limit|Warp Cycles Per Issued|Stall' "$OUT/ncu-prefill.txt" | head -60
# SANITIZE=memcheck leaves out racecheck, which outruns its timeout here (run.sh runs it without one)
[ "${SANITIZE:-1}" != 0 ] && {
  timeout 100 compute-sanitizer --tool memcheck --print-limit 5 /tmp/based_gpu parity fixtures/based/tiny-jrt 2e-2 | grep -E 'PASS|FAIL|ERROR'
  [ "${SANITIZE:-1}" = 1 ] && timeout 100 compute-sanitizer --tool racecheck --print-limit 5 /tmp/based_gpu parity fixtures/based/tiny-jrt 2e-2 | grep -E 'PASS|FAIL|ERROR|RACECHECK|hazard'
  stamp sanitizer
} 2>&1 | tee "$OUT/sanitizer.log"
