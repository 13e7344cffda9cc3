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
# the .bin converter: a tiny checkpoint saved the way Lightning saves one (prefixed, tied head, in two shards)
# must convert back to weights that pass the same cases
for f in tiny-based tiny-jrt; do
  echo "== converter: $f as sharded pytorch_model-*.bin"
  C=/tmp/based-conv/$f; rm -rf "$C"; mkdir -p "$C"; cp "$FX/$f/config.json" "$C/"
  python3 - "$FX/$f/model.safetensors" "$C" <<'PY' || status=1
import sys, torch
from safetensors.torch import load_file
sd = {"model." + k: v for k, v in load_file(sys.argv[1]).items()}
sd["model.lm_head.weight"] = sd["model.transformer.embeddings.word_embeddings.weight"]
keys = sorted(sd)
torch.save({"state_dict": {k: sd[k] for k in keys[::2]}}, sys.argv[2] + "/pytorch_model-00001-of-00002.bin")
torch.save({"state_dict": {k: sd[k] for k in keys[1::2]}}, sys.argv[2] + "/pytorch_model-00002-of-00002.bin")
PY
  python3 native/reference/convert_bin.py "$C" && EVAPORATE_LOCAL_DEVICE=cpu /tmp/based_driver check "$C" "$FX/$f/cases/cases.safetensors" 1e-4 | grep -v '^case' || status=1
done 2>&1 | tee "$OUT/convert.log"
tar -C "$FX" -cf "$OUT/tiny-fixtures.tar" tiny-based tiny-based-bf16 tiny-jrt
exit $status
