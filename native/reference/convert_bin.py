"""Converts a PyTorch checkpoint (pytorch_model.bin, e.g. from hazyresearch/based-360m) to model.safetensors.

  python3 native/reference/convert_bin.py ~/models/based-360m
  (needs torch and safetensors; writes model.safetensors beside the .bin and keeps config.json as is)

Lightning prefixes ("model.") and metric buffers are dropped; tied weights are written once.
"""
import os
import re
import sys

import torch
from safetensors.torch import save_file


def main():
    d = sys.argv[1]
    src = os.path.join(d, "pytorch_model.bin")
    sd = torch.load(src, map_location="cpu", weights_only=True)
    if "state_dict" in sd:
        sd = sd["state_dict"]
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v) or "metrics" in k or not v.is_floating_point():
            continue
        out[re.sub(r"^model\.", "", k)] = v.contiguous()
    emb = out.get("transformer.embeddings.word_embeddings.weight")
    head = out.get("lm_head.weight")
    if emb is not None and head is not None and head.data_ptr() == emb.data_ptr():
        del out["lm_head.weight"]
    elif emb is not None and head is not None and torch.equal(head, emb):
        del out["lm_head.weight"]
    save_file(out, os.path.join(d, "model.safetensors"))
    print(f"wrote {len(out)} tensors to {os.path.join(d, 'model.safetensors')}")


if __name__ == "__main__":
    main()
