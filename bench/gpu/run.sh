#!/bin/bash
# One script, one run on the GPU machine (issues 10, 21): build the CUDA engine and its driver, check it against the
# PyTorch reference fixtures and the CPU backend (cuBLAS and our WMMA GEMM), then time it beside the PyTorch
# anchors (our PyTorch BASED, and a same-size Transformer on FlashAttention-2 through SDPA) at both shapes.
#   from the repository root on the GPU machine:  bash bench/gpu/run.sh     (results in $OUT)
#   then here:  python3 bench/gpu/collect.py <the fetched $OUT folder(s)>  -> bench/results/based-gpu.json
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/based-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
source "$(dirname "$0")/build-driver.sh"
ls -la /tmp/based_gpu || exit 1
{
  # the CMake build (CPU only) runs beside the GPU checks, and the compute-sanitizer runs (independent processes)
  # run together, their logs printed in order, so that the whole run fits the 10 minutes one call of the device tool
  # may run
  ( cmake -S native -B /tmp/based-cmake -DCMAKE_BUILD_TYPE=Release >/tmp/cmake.log 2>&1 &&
    cmake --build /tmp/based-cmake -j 8 --target based_driver based_cuda >>/tmp/cmake.log 2>&1; echo $? >/tmp/cmake.rc ) &
  cmake_job=$!
  for gemm in cublas wmma; do
    echo "== GEMM $gemm"
    for f in tiny-based tiny-based-bf16 tiny-jrt; do
      echo "-- $f: reference fixtures"; EVAPORATE_GPU_GEMM=$gemm /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2
      echo "-- $f: GPU vs CPU"; EVAPORATE_GPU_GEMM=$gemm /tmp/based_gpu parity fixtures/based/$f 2e-2
    done
  done
  echo "== compute-sanitizer: memcheck on both fixtures, racecheck on JRT prefill and decode (every prefill and decode kernel, both GEMMs)"
  S=/tmp/based-sanitizer; rm -rf $S; mkdir -p $S
  jobs_=()
  for f in tiny-based tiny-jrt; do
    ( compute-sanitizer --tool memcheck --print-limit 5 /tmp/based_gpu check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case' ) >$S/1-$f.log 2>&1 & jobs_+=($!)
    ( EVAPORATE_GPU_GEMM=wmma compute-sanitizer --tool memcheck --print-limit 5 /tmp/based_gpu parity fixtures/based/$f 2e-2 | grep -E 'PASS|FAIL|ERROR' ) >$S/2-$f.log 2>&1 & jobs_+=($!)
  done
  ( compute-sanitizer --tool racecheck --print-limit 5 /tmp/based_gpu check fixtures/based/tiny-jrt fixtures/based/tiny-jrt/cases/cases.safetensors 2e-2 | grep -v '^case' ) >$S/3-check.log 2>&1 & jobs_+=($!)
  ( compute-sanitizer --tool racecheck --print-limit 5 /tmp/based_gpu parity fixtures/based/tiny-jrt 2e-2 | grep -E 'PASS|FAIL|ERROR|RACECHECK' ) >$S/4-parity.log 2>&1 & jobs_+=($!)
  wait "${jobs_[@]}"
  cat $S/1-tiny-based.log $S/2-tiny-based.log $S/1-tiny-jrt.log $S/2-tiny-jrt.log $S/3-check.log $S/4-parity.log
  echo "== device-resident states (4 slots, 10 sequences in shifting subsets) against the CPU"
  for f in tiny-based tiny-jrt; do /tmp/based_gpu residency fixtures/based/$f 2e-2; done
  # as the N-API addon runs: a CPU-only build that loads libbased_cuda.so at run time (CMake, as npm install builds it)
  echo "== run-time backend selection: based_driver + libbased_cuda.so"
  wait $cmake_job
  if [ "$(cat /tmp/cmake.rc 2>/dev/null)" = 0 ]; then
    for f in tiny-based tiny-jrt; do EVAPORATE_LOCAL_DEVICE=cuda /tmp/based-cmake/based_driver check fixtures/based/$f fixtures/based/$f/cases/cases.safetensors 2e-2 | grep -v '^case'; done
  else
    echo "CMake build failed:"; tail -20 /tmp/cmake.log
  fi
  echo "== checks done at $SECONDS s"
} 2>&1 | tee "$OUT/correctness.log"
# a run whose checks fail records no figures (and spends no more GPU time)
if grep -q -E 'FAIL|CMake build failed' "$OUT/correctness.log" || grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/correctness.log" | grep -q -v -E '[( ]0 errors'; then
  echo "== a check failed: no timings"; exit 1
fi
python3 bench/gpu/make_configs.py /tmp/cfg
{
  for m in based-360m based-1b; do
    /tmp/based_gpu bench /tmp/cfg/$m.json $m 128 1024 16 32768
  done
  EVAPORATE_GPU_GEMM=wmma /tmp/based_gpu bench /tmp/cfg/based-360m.json based-360m-wmma 128 256 16 8192
  # where a decode step's time goes (events between kernel groups, no graph)
  for m in based-360m based-1b; do EVAPORATE_GPU_PROFILE=1 /tmp/based_gpu bench /tmp/cfg/$m.json $m 128; done
  # where the 32k x 16 prefill's time goes, and its GEMMs' TFLOP/s against a plain cuBLAS GEMM measured here
  for m in based-360m based-1b; do EVAPORATE_GPU_PROFILE=prefill /tmp/based_gpu bench /tmp/cfg/$m.json $m 128 8 16 32768; done
  echo "== engine timed at $SECONDS s"
} 2>&1 | tee "$OUT/engine.log"
# ANCHORS=0 re-times only our engine (the anchors do not depend on it)
if [ "${ANCHORS:-1}" = 1 ]; then timeout 420 python3 bench/gpu/anchors.py /tmp/cfg 2>&1 | tee "$OUT/anchors.log"; else : > "$OUT/anchors.log"; fi
grep -h '^RESULT ' "$OUT/engine.log" "$OUT/anchors.log" | sed 's/^RESULT //' > "$OUT/results.jsonl"
grep -h -E '^(PROFILE|PREFILL) ' "$OUT/engine.log" > "$OUT/profile.txt"
cat "$OUT/results.jsonl" "$OUT/profile.txt"
