"""Writes reference fixtures: <out>/<name>/{config.json, model.safetensors, cases/cases.safetensors}.

  python3 native/reference/gen_fixtures.py <out> tiny      # small configs, committed under fixtures/based/
  python3 native/reference/gen_fixtures.py <out> 360m      # the based-360m shape with random weights (~1.5 GB)

Expected logits are computed in float64 from the saved (fp32 or bf16-rounded) weights.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

from based_ref import forward, padded_vocab, random_state_dict

HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_config(jrt=False):
    return {
        "n_embd": 64, "n_inner": 128, "n_head": 4, "n_layer": 7, "vocab_size": 509, "pad_vocab_size_multiple": 8,
        "layer_norm_epsilon": 1e-5, "rms_norm": True, "residual_in_fp32": True, "activation_function": "swiglu",
        "rotary_emb_fraction": 1, "max_position_embeddings": 0, "qkv_proj_bias": False, "out_proj_bias": False,
        "mlp_fc1_bias": False, "mlp_fc2_bias": False,
        "alt_mixer_layers": [1, 4], "alt_mixer_2_layers": [2, 5],
        "mixer": {"_target_": "based.models.mixers.convolution.BaseConv", "l_max": 2048, "use_bias": True,
                  "expand_proj": 4, "kernel_sizes": 3},
        "alt_mixer": ({"_target_": "based.models.mixers.prefix_linear_attention.PrefixLinearAttention", "l_max": 2048,
                       "feature_dim": 8, "num_heads": 4, "num_key_value_heads": 4, "enc_length": 24,
                       "implementation": "default"} if jrt else
                      {"_target_": "based.models.mixers.linear_attention.LinearAttention", "l_max": 2048,
                       "feature_map": {"_target_": "based.models.mixers.linear_attention.TaylorExp", "input_dim": 8},
                       "feature_dim": 8, "num_heads": 4}),
        "alt_mixer_2": {"_target_": "based.models.mixers.slide_attention.SlidingAttention", "window_size": 16,
                        "num_heads": 4, "causal": True},
        **({"enc_length": 24} if jrt else {}),
    }


def config_360m():
    with open(os.path.join(HERE, "..", "..", "fixtures", "based", "based-360m-config.json")) as f:
        return json.load(f)


def write(out, name, cfg, sd, cases, device):
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "cases"), exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(d, "model.safetensors"))
    tensors = {}
    for i, (toks, prefix) in enumerate(cases):
        logits = forward(cfg, sd, toks, prefix_len=prefix, device=device)
        tensors[f"case{i}.tokens"] = torch.tensor(toks, dtype=torch.float32)
        tensors[f"case{i}.logits"] = logits.float().cpu().contiguous()
        if prefix is not None:
            tensors[f"case{i}.prefix_len"] = torch.tensor([float(prefix)])
        print(f"{name} case {i}: {len(toks)} tokens", flush=True)
    save_file(tensors, os.path.join(d, "cases", "cases.safetensors"))


def main():
    out, which = sys.argv[1], sys.argv[2]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(1234)

    def toks(n, vocab):
        return torch.randint(0, vocab, (n,), generator=g).tolist()

    if which == "tiny":
        cfg = tiny_config()
        v = cfg["vocab_size"]
        # lengths cross the engine's 64-token chunk and the 8-token window (window_size 16 -> 8 to the left)
        cases = [(toks(1, v), None), (toks(9, v), None), (toks(70, v), None), (toks(150, v), None)]
        write(out, "tiny-based", cfg, random_state_dict(cfg, 1), cases, device)
        sd16 = random_state_dict(cfg, 2, dtype=torch.bfloat16)
        write(out, "tiny-based-bf16", cfg, sd16, cases[:3], device)
        jcfg = tiny_config(jrt=True)
        jcases = [(toks(10, v), None), (toks(40, v), None), (toks(90, v), None), (toks(40, v), 12)]
        write(out, "tiny-jrt", jcfg, random_state_dict(jcfg, 3), jcases, device)
    elif which == "360m":
        cfg = config_360m()
        v = cfg["vocab_size"]
        cases = [(toks(300, v), None), (toks(5, v), None)]
        write(out, "based-360m-random", cfg, random_state_dict(cfg, 4), cases, device)
    else:
        raise SystemExit("which: tiny | 360m")


if __name__ == "__main__":
    main()
