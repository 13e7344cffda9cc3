"""Writes the based-360m and based-1b shapes (RESEARCH.md) as checkpoint-style config.json files."""
import json, os, sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
here = os.path.dirname(os.path.abspath(__file__))
base = json.load(open(os.path.join(here, "..", "..", "fixtures", "based", "based-360m-config.json")))
json.dump(base, open(os.path.join(out, "based-360m.json"), "w"))
one_b = dict(base)
one_b.update({"n_embd": 2048, "n_inner": None, "n_layer": 36,
              "alt_mixer_layers": [1, 6, 11, 16, 21, 27, 33], "alt_mixer_2_layers": [2, 7, 12, 17, 22, 28, 34]})
one_b.pop("n_inner")
json.dump(one_b, open(os.path.join(out, "based-1b.json"), "w"))
