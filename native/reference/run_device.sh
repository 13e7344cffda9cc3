#!/bin/bash
# One call on the GPU machine (PyTorch there, not here): build the driver, generate the fixtures with the
# PyTorch reference, compare the engine's logits with them, and return the tiny fixtures in $OUT.
#   run from the repository root:  bash native/reference/run_device.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/based-out}
FX=/tmp/based-fx
mkdir -p "$OUT" "$FX"
g++ -O3 -march=x86-64-v2 -std=c++17 -pthread native/src/{engine,cpu_backend,cpu_kernels,model,safetensors,json,threadpool,backend_select,driver}.cpp \
  -ldl -o /tmp/based_driver || exit 1
(cd native/reference && python3 gen_fixtures.py "$FX" tiny && python3 gen_fixtures.py "$FX" 360m) 2>&1 | tee "$OUT/gen.log" || exit 1
status=0
for f in tiny-based tiny-based-bf16 tiny-jrt based-360m-random; do
  echo "== $f"
  EVAPORATE_LOCAL_DEVICE=cpu /tmp/based_driver check "$FX/$f" "$FX/$f/cases/cases.safetensors" 1e-4 || status=1
done 2>&1 | tee "$OUT/check.log"
tar -C "$FX" -cf "$OUT/tiny-fixtures.tar" tiny-based tiny-based-bf16 tiny-jrt
exit $status
