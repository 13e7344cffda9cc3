#!/usr/bin/env python3
"""Builds bench/results/based-gpu.json from the files that bench/gpu/run.sh leaves in $OUT.

    python3 bench/gpu/collect.py OUTDIR [OUTDIR...]

Several folders may be given (the engine run and a separate anchors run, say): results are merged, a later
folder's row for the same engine and model replacing an earlier one's. Runs here, with no GPU and no PyTorch.
"""
import json
import os
import re
import sys

TARGET_DECODE = 0.75  # of the bytes-moved bound (issue 21)
TARGET_GEN = {"based-360m": 20.0, "based-1b": 6.5}  # generation vs the FA2 Transformer, under its ceiling
TARGET_PREFILL_TORCH = 2.0  # 32k x 16 prefill vs our PyTorch BASED
TARGET_PREFILL_FA2 = 2.5  # ... and vs the FA2 Transformer
TARGET_GEMM_PEAK = 0.80  # prefill GEMMs' TFLOP/s over a plain cuBLAS GEMM's, measured in the same run
# the papers' ratios, printed beside ours (BASED: 24x generation at 1.3B; JRT-RNN: 11.9x-19.2x prefill), measured
# against a slower baseline stack than the anchor here
PAPER = {"gen_vs_fa2": 24.0, "prefill_vs_fa2": "11.9-19.2"}


def read(folder, name):
    path = os.path.join(folder, name)
    return open(path).read() if os.path.exists(path) else ""


def main(folders):
    rows, correctness, profile, prefill_profile, device = {}, [], [], [], ""
    for folder in folders:
        device = read(folder, "gpu.txt").strip() or device
        for log in ("engine.log", "anchors.log", "results.jsonl"):
            for line in read(folder, log).splitlines():
                line = line[len("RESULT "):] if line.startswith("RESULT ") else line
                if line.startswith("{"):
                    r = json.loads(line)
                    rows[(r["engine"], r["model"])] = r
        lines = [l for l in read(folder, "correctness.log").splitlines() if l and not l.startswith("case ")]
        correctness = lines or correctness
        found, pre_found = [], []
        for line in read(folder, "profile.txt").splitlines() + read(folder, "engine.log").splitlines():
            m = re.match(r"PROFILE (\S+) (.+?)\s+([\d.]+) ms/step", line)
            if m:
                found.append({"model": m.group(1), "category": m.group(2), "ms_per_step": float(m.group(3))})
            m = re.match(r"PREFILL (\S+) (.+?)\s+([\d.]+) ms", line)
            if m:
                pre_found.append({"model": m.group(1), "category": m.group(2), "ms": float(m.group(3))})
        prefill_profile = list({(p["model"], p["category"]): p for p in pre_found}.values()) or prefill_profile
        profile = list({(p["model"], p["category"]): p for p in found}.values()) or profile

    def rate(engine, model, key):
        r = rows.get((engine, model))
        return r.get(key) if r else None

    ratios = []
    for model in ("based-360m", "based-1b"):
        ours = rows.get(("evaporate-cuda", model))
        if not ours:
            continue

        def over(engine, key):
            theirs = rate(engine, model, key)
            return round(ours[key] / theirs, 2) if theirs else None

        prof = rows.get(("evaporate-cuda-prefill-profile", model), {})
        ratios.append({
            "model": model,
            "paper_gen_vs_fa2": PAPER["gen_vs_fa2"],
            "paper_prefill_vs_fa2": PAPER["prefill_vs_fa2"],
            "prefill_gemm_tflops": prof.get("gemm_tflops"),
            "cublas_peak_tflops": prof.get("cublas_peak_tflops"),
            "prefill_gemm_fraction_of_peak": prof.get("gemm_fraction_of_peak"),
            "gen_vs_fa2": over("fa2-transformer", "gen_tokens_per_s"),
            "gen_vs_torch_based": over("torch-based", "gen_tokens_per_s"),
            "prefill_vs_fa2": over("fa2-transformer", "prefill_tokens_per_s"),
            "prefill_vs_torch_based": over("torch-based", "prefill_tokens_per_s"),
            "decode_fraction_of_bytes_bound": ours.get("fraction_of_bound"),
            # the highest generation ratio possible at all: the anchor's step time over our bytes-moved bound
            "gen_vs_fa2_ceiling_at_bound": round(rate("fa2-transformer", model, "decode_ms_per_step") / ours["decode_bound_ms"], 2)
            if rate("fa2-transformer", model, "decode_ms_per_step") else None,
        })
    by_model = {r["model"]: r for r in ratios}

    def check(model, key, target):
        v = by_model.get(model, {}).get(key)
        return v is not None and v >= target

    targets = {}
    for model, short in (("based-360m", "360m"), ("based-1b", "1b")):
        targets[f"decode >= 75% of bytes bound ({short})"] = check(model, "decode_fraction_of_bytes_bound", TARGET_DECODE)
        targets[f"generation >= {TARGET_GEN[model]:g}x FA2 Transformer ({short})"] = check(model, "gen_vs_fa2", TARGET_GEN[model])
        targets[f"prefill 32k x 16 >= 2x PyTorch BASED ({short})"] = check(model, "prefill_vs_torch_based", TARGET_PREFILL_TORCH)
        targets[f"prefill 32k x 16 >= 2.5x FA2 Transformer ({short})"] = check(model, "prefill_vs_fa2", TARGET_PREFILL_FA2)
        targets[f"prefill GEMMs >= 80% of measured cuBLAS peak ({short})"] = check(model, "prefill_gemm_fraction_of_peak", TARGET_GEMM_PEAK)
    notes = [
        "Random bf16 weights at the based-360m and based-1b shapes; generation = 16-token prompt, then greedy decode at batch 128; prefill = 16 x 32768 tokens from fresh states.",
        "every engine times all 1024 generated tokens (the Transformer's KV cache grows over them).",
        "fa2-transformer: same width and depth, SDPA forced to the FlashAttention backend, preallocated KV cache, eager PyTorch (no CUDA graphs).",
        "torch-based: our PyTorch BASED (recurrent decode, chunked prefill).",
        "based-360m-wmma: our fallback tensor-core GEMM (used where cuBLAS is missing, e.g. CI's nvcc): correct, far slower than cuBLAS at decode.",
        "gen_vs_fa2_ceiling_at_bound: the anchor's decode step over our bytes-moved bound, i.e. the generation ratio an engine reading only weights and state at full bandwidth would reach.",
        "profile: decode step time per kernel category (EVAPORATE_GPU_PROFILE=1, ungraphed, events between groups); prefill_profile: the 32k x 16 prefill per category (EVAPORATE_GPU_PROFILE=prefill), GEMM operations over GEMM time against a plain 8192^3 cuBLAS bf16 GEMM timed in the same process.",
        "prefill: linear attention is a chunked (64-token) tensor-core kernel with the fp32 state held in accumulator fragments, sliding-window attention a tensor-core kernel per 64-query block; EVAPORATE_GPU_PREFILL=simt selects the scalar kernels (row based-360m-simt).",
        "limit, decode (issue 21, unchanged this round): at 360m the step is 1.51 ms against a 0.54 ms bytes bound, so 75% needs 0.72 ms; the step's GEMMs alone take 0.63 ms graph-captured (gemm probe) and the five linear-attention layers must stream 0.8 GB of fp32 state (0.19 ms at the copy bandwidth), which leaves no room for the 55 norms, 17 convs and 5 window layers; at 1b, 75% needs 2.70 ms while the GEMMs take 2.1 ms and the linear-attention decode 7 x 112 us (76 us state-traffic bound each), 2.9 ms before anything else. Reaching it needs the GEMMs fused with their neighbours (a persistent per-layer kernel) and a smaller state (the window ring holds bf16 values in fp32), not tuning of the present kernels.",
        "limit, generation: the ratio moves with the anchor's own run-to-run spread (FA2 Transformer at 360m: 9595, 7468 and 9909 tokens/s in three runs of the same script), and each ceiling above is the anchor's step over our bytes bound in the same run; the papers' 24x came from a slower baseline stack.",
        "limit, prefill at 1b: GEMMs are 2.97 s of the 3.85 s profiled prefill (2049 TFLOP at 691 TFLOP/s = 0.875 of the cuBLAS peak measured in this run, 790 TFLOP/s); with every non-GEMM kernel free the ratio to our PyTorch BASED (7.65 s) would be 2.58x, and it measured 1.99x (also 1.99x in the run before, whose GEMMs ran at 716 TFLOP/s but whose linear attention was 73 ms slower). What is left outside the GEMMs at 1b: linear attention 264 ms (37 ms a layer: 256 (sequence, head) chains of 512 chunks, one 8-warp block per SM, latency-bound between barriers), window attention 203 ms, SwiGLU 162 ms and norms 105 ms (both at the copy bandwidth; only fusing them into the GEMMs' epilogues removes them), BaseConv 142 ms.",
        "(round of issue 10) bench/results/based-gpu-gemm-probe.txt (bench/gpu/gemm_probe.cu, graph-captured): the decode step's GEMMs take 0.63 ms (360m) and 2.1 ms (1b) of the 1.61 / 4.04 ms step; cuBLASLt's best heuristic algorithm saves 2-5%, so the rest of the step (norms, mixers, SwiGLU) is where the gap to the bound lies.",
    ]
    result = {
        "name": "based-gpu",
        "device": device,
        "command": "bash bench/gpu/run.sh on the GPU machine (device tool), then python3 bench/gpu/collect.py <its $OUT folders>",
        "targets": targets,
        "ratios": ratios,
        "notes": notes,
        "correctness": correctness,
        "profile": profile,
        "prefill_profile": prefill_profile,
        "rows": list(rows.values()),
    }
    here = os.path.dirname(os.path.abspath(__file__))
    dest = os.path.join(here, "..", "results", "based-gpu.json")
    with open(dest, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    for r in ratios:
        print(f"{r['model']}: generation {r['gen_vs_fa2']}x FA2 (ceiling at our bytes bound {r['gen_vs_fa2_ceiling_at_bound']}x, paper {r['paper_gen_vs_fa2']}x); "
              f"prefill {r['prefill_vs_fa2']}x FA2 (paper {r['paper_prefill_vs_fa2']}x), {r['prefill_vs_torch_based']}x PyTorch BASED; "
              f"decode {r['decode_fraction_of_bytes_bound']} of bytes bound; prefill GEMMs {r['prefill_gemm_tflops']} TFLOP/s = {r['prefill_gemm_fraction_of_peak']} of {r['cublas_peak_tflops']}")
    for k, v in targets.items():
        print("MET   " if v else "MISSED", k)
    print("->", os.path.relpath(dest))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
