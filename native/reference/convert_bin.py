"""Converts a PyTorch checkpoint directory to the model.safetensors the engine reads.

  python3 native/reference/convert_bin.py ~/models/based-360m
  (needs torch and safetensors; writes model.safetensors beside the .bin files and keeps config.json as is)

Works for the released BASED checkpoints (hazyresearch/based-360m, based-1b, based-1b-50b) and JRT-RNN ones
(config.json naming the prefix linear attention mixer): a single pytorch_model.bin, or shards named by
pytorch_model.bin.index.json (or pytorch_model-*.bin). Lightning prefixes ("model.") and metric buffers are
dropped; tied weights are written once.
"""
import glob
import json
import os
import re
import sys

import torch
from safetensors.torch import save_file


def shard_files(d):
    index = os.path.join(d, "pytorch_model.bin.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return sorted({os.path.join(d, v) for v in json.load(f)["weight_map"].values()})
    single = os.path.join(d, "pytorch_model.bin")
    if os.path.exists(single):
        return [single]
    shards = sorted(glob.glob(os.path.join(d, "pytorch_model-*.bin")))
    if not shards:
        sys.exit(f"no pytorch_model.bin, pytorch_model.bin.index.json or pytorch_model-*.bin in {d}")
    return shards


def main():
    d = sys.argv[1]
    out = {}
    for src in shard_files(d):
        sd = torch.load(src, map_location="cpu", weights_only=True)
        if "state_dict" in sd:
            sd = sd["state_dict"]
        for k, v in sd.items():
            if not torch.is_tensor(v) or "metrics" in k or not v.is_floating_point():
                continue
            out[re.sub(r"^model\.", "", k)] = v.contiguous()
    emb = out.get("transformer.embeddings.word_embeddings.weight")
    head = out.get("lm_head.weight")
    if emb is not None and head is not None and (head.data_ptr() == emb.data_ptr() or torch.equal(head, emb)):
        del out["lm_head.weight"]
    save_file(out, os.path.join(d, "model.safetensors"))
    print(f"wrote {len(out)} tensors to {os.path.join(d, 'model.safetensors')}")


if __name__ == "__main__":
    main()
