// Standalone GPU driver (no Node on the GPU machine):
//   based_gpu check  <modelDir> <cases.safetensors> [tol]   GPU logits against the PyTorch reference fixtures
//   based_gpu parity <modelDir>                             GPU against the CPU backend on the same weights
//   based_gpu residency <modelDir> [tol]                     device-resident states under churn against the CPU
//   based_gpu bench  <config.json> <label> [genBatch] [genSteps] [preBatch] [preLen]
//   based_gpu gemmcheck <config.json> [tol]                 our decode GEMM against cuBLAS at the model's shapes
// bench prints one JSON object per line (prefixed "RESULT ") for bench/gpu/run.sh to collect.
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "../src/engine.h"
#include "../src/errors.h"
#include "../src/safetensors.h"
#include "cuda_backend.h"

using namespace based;

static double relErr(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    const double d = double(a[i]) - b[i];
    num += d * d, den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

static int check(const std::string& dir, const std::string& cases, double tol) {
  auto model = loadModel(dir);
  auto gpu = makeCudaBackend(8, 1 << 14);
  SafetensorsDir st(cases.substr(0, cases.rfind('/')));
  double worst = 0;
  for (int i = 0;; ++i) {
    const std::string p = "case" + std::to_string(i) + ".";
    const TensorView* tk = st.find(p + "tokens");
    if (!tk) break;
    const TensorView* lg = st.find(p + "logits");
    const TensorView* pl = st.find(p + "prefix_len");
    std::vector<float> tf(tk->numel()), ref(lg->numel());
    std::memcpy(tf.data(), tk->data, tf.size() * 4);
    std::memcpy(ref.data(), lg->data, ref.size() * 4);
    std::vector<int32_t> toks(tf.begin(), tf.end());
    int plen = -1;
    if (pl) {
      float v;
      std::memcpy(&v, pl->data, 4);
      plen = int(v);
    }
    auto state = newState(model->cfg);
    std::vector<SeqRequest> b{{state.get(), toks.data(), int(toks.size()), plen}};
    std::vector<float> out;
    gpu->forward(*model, b, true, out);
    const double e = relErr(out, ref);
    gpu->release(state.get());
    std::printf("case %d: %zu tokens, rel err %.3e\n", i, toks.size(), e);
    if (!(e <= worst)) worst = e;
  }
  std::printf("GPU vs reference: worst rel err %.3e, tolerance %.1e: %s\n", worst, tol, worst <= tol ? "PASS" : "FAIL");
  return worst <= tol ? 0 : 1;
}

// The same model on both backends: a batch prefill, decode steps, and a ragged batch; then the fused decode
// path (graph replay) against decode through the prefill kernels.
static int parity(const std::string& dir, double tol) {
  auto model = loadModel(dir);
  const ModelConfig& c = model->cfg;
  auto cpu = makeCpuBackend(0);
  auto gpu = makeCudaBackend(8, 1 << 14);
  double worst = 0;
  auto compare = [&](const char* what, std::vector<std::vector<int32_t>>& seqs, std::vector<std::unique_ptr<SequenceState>>& cs,
                     std::vector<std::unique_ptr<SequenceState>>& gs, bool all) {
    std::vector<SeqRequest> cb, gb;
    for (size_t i = 0; i < seqs.size(); ++i) {
      cb.push_back({cs[i].get(), seqs[i].data(), int(seqs[i].size()), -1});
      gb.push_back({gs[i].get(), seqs[i].data(), int(seqs[i].size()), -1});
    }
    std::vector<float> lc, lg;
    cpu->forward(*model, cb, all, lc);
    gpu->forward(*model, gb, all, lg);
    const double e = relErr(lg, lc);
    std::printf("%-28s rel err %.3e\n", what, e);
    if (!(e <= worst)) worst = e;
  };
  std::vector<std::unique_ptr<SequenceState>> cs, gs;
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < 3; ++s) {
    cs.push_back(newState(c)), gs.push_back(newState(c));
    std::vector<int32_t> t;
    for (int i = 0; i < 150; ++i) t.push_back((i * 7919 + s * 104729 + 17) % c.vocab);
    seqs.push_back(t);
  }
  compare("prefill 3 x 150 (all rows)", seqs, cs, gs, true);
  for (int step = 0; step < 4; ++step) {
    for (int s = 0; s < 3; ++s) seqs[s] = {int32_t((step * 31 + s * 7 + 5) % c.vocab)};
    compare("decode step", seqs, cs, gs, false);
  }
  std::vector<std::vector<int32_t>> ragged{{1, 2, 3, 4, 5}, {9, 8, 7}};
  compare("ragged continuation", ragged, cs, gs, false);

  // fused decode kernels + CUDA graph against decode through the prefill kernels, on the device alone
  GpuEngine eng(*model, 4, 1 << 12);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 4 * 64; ++i) prompt.push_back((i * 131 + 7) % c.vocab);
  eng.forward(prompt.data(), 4, 64, nullptr, false, nullptr);
  std::vector<int32_t> first{11, 22, 33, 44};
  auto viaGraph = eng.generate(4, first.data(), 16, true);
  eng.resetSlots(4);
  eng.forward(prompt.data(), 4, 64, nullptr, false, nullptr);
  std::vector<int32_t> cur = first, viaPrefill;
  std::vector<float> lg;
  for (int s = 0; s < 16; ++s) {
    eng.forward(cur.data(), 4, 1, nullptr, false, &lg);
    for (int b = 0; b < 4; ++b) {
      int arg = 0;
      for (int v = 1; v < c.vocab; ++v)
        if (lg[size_t(b) * c.vocabPadded + v] > lg[size_t(b) * c.vocabPadded + arg]) arg = v;
      cur[b] = arg;
      viaPrefill.push_back(arg);
    }
  }
  int same = 0;
  for (size_t i = 0; i < viaGraph.size(); ++i) same += viaGraph[i] == viaPrefill[i];
  std::printf("greedy tokens, fused decode + graph vs prefill kernels: %d / %zu equal\n", same, viaGraph.size());
  const bool ok = worst <= tol && same >= int(viaGraph.size() * 0.9);
  std::printf("GPU vs CPU: worst rel err %.3e, tolerance %.1e: %s\n", worst, tol, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

// Device-resident states under churn: 10 sequences through a backend of 4 slots, each step a different subset in a
// different order (swaps, moves, evictions to the host and uploads back), states read back mid-way (syncToHost),
// released and replaced; logits and read-back states must match the CPU backend's.
static int residency(const std::string& dir, double tol) {
  auto model = loadModel(dir);
  const ModelConfig& c = model->cfg;
  auto cpu = makeCpuBackend(0);
  auto gpu = makeCudaBackend(4, 1 << 14);
  const int N = 10;
  std::vector<std::unique_ptr<SequenceState>> cs, gs;
  for (int i = 0; i < N; ++i) cs.push_back(newState(c)), gs.push_back(newState(c));
  uint64_t rng = 12345;
  auto next = [&](int n) { rng = rng * 6364136223846793005ULL + 1442695040888963407ULL; return int((rng >> 33) % uint64_t(n)); };
  double worst = 0, worstState = 0;
  auto flat = [](const SequenceState& s) {
    std::vector<float> v;
    for (auto& l : s.layers)
      for (auto* a : {&l.kv, &l.ksum, &l.conv, &l.keys, &l.values}) v.insert(v.end(), a->begin(), a->end());
    return v;
  };
  auto run = [&](const std::vector<int>& who, int len) {
    std::vector<std::vector<int32_t>> toks(who.size());
    std::vector<SeqRequest> cb, gb;
    for (size_t k = 0; k < who.size(); ++k) {
      const int n = len > 0 ? len : 3 + 4 * who[k];
      for (int t = 0; t < n; ++t) toks[k].push_back(next(c.vocab));
      cb.push_back({cs[who[k]].get(), toks[k].data(), n, -1});
      gb.push_back({gs[who[k]].get(), toks[k].data(), n, -1});
    }
    std::vector<float> lc, lg;
    cpu->forward(*model, cb, false, lc);
    gpu->forward(*model, gb, false, lg);
    worst = std::max(worst, relErr(lg, lc));
  };
  std::vector<int> all(N);
  for (int i = 0; i < N; ++i) all[i] = i;
  run(all, 0);  // ragged prefill, 3..39 tokens
  for (int step = 0; step < 60; ++step) {
    std::vector<int> pool = all, who;
    const int k = 1 + next(7);
    for (int j = 0; j < k; ++j) {
      const int at = next(int(pool.size()));
      who.push_back(pool[at]);
      pool.erase(pool.begin() + at);
    }
    run(who, step % 7 == 3 ? 2 : 1);
    if (step % 10 == 9) {
      const int i = next(N);
      gpu->syncToHost(*gs[i]);
      worstState = std::max(worstState, relErr(flat(*gs[i]), flat(*cs[i])));
      if (gs[i]->pos != cs[i]->pos) worstState = INFINITY;
      const int j = next(N);  // a sequence ends; a fresh one takes its place
      gpu->release(gs[j].get());
      gs[j] = newState(c), cs[j] = newState(c);
    }
  }
  for (auto& s : gs) gpu->release(s.get());
  std::printf("residency: logits worst rel err %.3e, read-back states worst rel err %.3e\n", worst, worstState);
  const bool ok = worst <= tol && worstState <= tol;
  std::printf("GPU resident states vs CPU: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

static std::string readFile(const std::string& p) {
  std::ifstream in(p);
  if (!in) throw EngineError("config_missing", "cannot read " + p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

static int bench(const std::string& cfgPath, const std::string& label, int genB, int genSteps, int preB, int preL) {
  auto model = randomModel(parseConfig(readFile(cfgPath)), 7);
  const ModelConfig& c = model->cfg;
  const double bw = GpuEngine::copyBandwidth();
  const char* profileMode = std::getenv("EVAPORATE_GPU_PROFILE");
  if (profileMode && std::string(profileMode) == "prefill") {  // where a preB x preL prefill's time goes
    GpuEngine eng(*model, preB, int64_t(preB) * preL);
    std::vector<int32_t> pre(size_t(preB) * preL);
    for (size_t i = 0; i < pre.size(); ++i) pre[i] = int32_t((i * 104729 + 5) % c.vocab);
    eng.forward(pre.data(), preB, std::min(preL, 1024), nullptr, false, nullptr);  // warm-up
    auto warm = eng.profileMs();
    eng.resetSlots(preB);
    eng.forward(pre.data(), preB, preL, nullptr, false, nullptr);
    auto after = eng.profileMs();
    const double peak = GpuEngine::gemmPeakTflops(8192);
    double total = 0, gemmMs = 0, gflop = 0;
    for (auto& [k, ms] : after) {
      const double v = ms - warm[k];
      if (k.rfind("gflop ", 0) == 0) gflop += v;
      else total += v, gemmMs += k.rfind("gemm", 0) == 0 ? v : 0;
    }
    std::string cats;
    for (auto& [k, ms] : after) {
      if (k.rfind("gflop ", 0) == 0 || k == "start") continue;
      const double v = ms - warm[k];
      std::printf("PREFILL %s %-18s %9.2f ms (%4.1f%%)\n", label.c_str(), k.c_str(), v, 100 * v / total);
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s\"%s\":%.2f", cats.empty() ? "" : ",", k.c_str(), v);
      cats += buf;
    }
    const double tflops = gflop / 1e3 / (gemmMs / 1e3);
    std::printf(
        "RESULT {\"engine\":\"evaporate-cuda-prefill-profile\",\"model\":\"%s\",\"prefill_batch\":%d,\"prefill_len\":%d,"
        "\"total_ms\":%.1f,\"gemm_ms\":%.1f,\"gemm_tflop\":%.1f,\"gemm_tflops\":%.1f,\"cublas_peak_tflops\":%.1f,"
        "\"gemm_fraction_of_peak\":%.3f,\"ms_by_category\":{%s}}\n",
        label.c_str(), preB, preL, total, gemmMs, gflop / 1e3, tflops, peak, peak > 0 ? tflops / peak : 0.0, cats.c_str());
    return 0;
  }
  if (profileMode) {  // where one decode step's time goes, per kernel category
    GpuEngine eng(*model, genB, int64_t(genB) * 16);
    std::vector<int32_t> prompt(size_t(genB) * 16, 7), first(genB, 11);
    eng.forward(prompt.data(), genB, 16, nullptr, false, nullptr);
    // warm: GEMM choices are timed on first use; and past the longest window, so window attention reads a full ring
    int window = 0;
    for (auto& L : c.layers) window = std::max(window, L.kind == MixerKind::SlidingWindow ? L.windowLeft + 1 : 0);
    eng.generate(genB, first.data(), std::max(4, window + 2), false);
    auto warm = eng.profileMs();
    eng.generate(genB, first.data(), 8, false);
    auto after = eng.profileMs();
    double total = 0;
    for (auto& [k, ms] : after) total += k.rfind("gflop ", 0) == 0 ? 0 : ms - warm[k];
    for (auto& [k, ms] : after)
      if (k.rfind("gflop ", 0) != 0) std::printf("PROFILE %s %-18s %.4f ms/step (%.0f%%)\n", label.c_str(), k.c_str(), (ms - warm[k]) / 8, 100 * (ms - warm[k]) / total);
    return 0;
  }
  const int64_t maxTokens = std::max<int64_t>(int64_t(preB) * preL, int64_t(genB) * 16);
  GpuEngine eng(*model, std::max(genB, preB), maxTokens);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  auto timeIt = [&](auto fn) {
    cudaEventRecord(e0);
    fn();
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    return double(ms) / 1e3;
  };
  // generation: a 16-token prompt per sequence, then genSteps greedy steps
  std::vector<int32_t> prompt(size_t(genB) * 16), first(genB);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 7919 + 3) % c.vocab);
  for (int b = 0; b < genB; ++b) first[b] = (b * 131 + 1) % c.vocab;
  eng.forward(prompt.data(), genB, 16, nullptr, false, nullptr);
  eng.generate(genB, first.data(), 8, true);  // warm-up and graph capture
  double best = 1e30, bestNoGraph = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    eng.resetSlots(genB);
    eng.forward(prompt.data(), genB, 16, nullptr, false, nullptr);
    best = std::min(best, timeIt([&] { eng.generate(genB, first.data(), genSteps, true); }));
  }
  eng.resetSlots(genB);
  eng.forward(prompt.data(), genB, 16, nullptr, false, nullptr);
  bestNoGraph = timeIt([&] { eng.generate(genB, first.data(), std::min(genSteps, 128), false); }) * genSteps / std::min(genSteps, 128);
  for (auto& [what, us] : eng.gemmChoices()) std::printf("GEMMTUNE %s %s: %.1f us\n", label.c_str(), what.c_str(), us);
  const double stepMs = 1e3 * best / genSteps;
  const double bytes = eng.decodeStepBytes(genB);
  const double boundMs = 1e3 * bytes / (bw * 1e9);
  // prefill: preB sequences of preL tokens from fresh states
  std::vector<int32_t> pre(size_t(preB) * preL);
  for (size_t i = 0; i < pre.size(); ++i) pre[i] = int32_t((i * 104729 + 5) % c.vocab);
  eng.resetSlots(preB);
  eng.forward(pre.data(), preB, std::min(preL, 1024), nullptr, false, nullptr);  // warm-up
  double preBest = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    eng.resetSlots(preB);
    preBest = std::min(preBest, timeIt([&] { eng.forward(pre.data(), preB, preL, nullptr, false, nullptr); }));
  }
  std::printf(
      "RESULT {\"engine\":\"evaporate-cuda\",\"model\":\"%s\",\"weight_mb\":%.1f,\"copy_bw_gbs\":%.1f,"
      "\"gen_batch\":%d,\"gen_steps\":%d,\"gen_tokens_per_s\":%.1f,\"decode_ms_per_step\":%.4f,"
      "\"decode_ms_per_step_no_graph\":%.4f,\"decode_bytes_per_step_mb\":%.1f,\"decode_bound_ms\":%.4f,"
      "\"fraction_of_bound\":%.3f,\"prefill_batch\":%d,\"prefill_len\":%d,\"prefill_tokens_per_s\":%.1f,\"prefill_s\":%.3f}\n",
      label.c_str(), eng.decodeStepBytes(0) / 1e6, bw, genB, genSteps, genB * genSteps / best, stepMs, 1e3 * bestNoGraph / genSteps,
      bytes / 1e6, boundMs, boundMs / stepMs, preB, preL, double(preB) * preL / preBest, preBest);
  return 0;
}

static int gemmcheck(const std::string& cfgPath, double tol) {
  setenv("EVAPORATE_GPU_SKINNY", "1", 1);  // what is checked is the opt-in GEMM
  auto model = randomModel(parseConfig(readFile(cfgPath)), 7);
  GpuEngine eng(*model, 128, 128 * 16);
  const double worst = eng.checkSkinnyGemm();
  const bool ok = worst >= 0 && worst <= tol;
  std::printf("skinny GEMM vs cuBLAS: worst rel err %.3e, tolerance %.1e: %s\n", worst, tol, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    if (!cudaDeviceAvailable()) {
      std::fprintf(stderr, "no CUDA device\n");
      return 2;
    }
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "check" && argc >= 4) return check(argv[2], argv[3], argc > 4 ? std::atof(argv[4]) : 2e-2);
    if (mode == "parity" && argc >= 3) return parity(argv[2], argc > 3 ? std::atof(argv[3]) : 2e-2);
    if (mode == "residency" && argc >= 3) return residency(argv[2], argc > 3 ? std::atof(argv[3]) : 2e-2);
    if (mode == "gemmcheck" && argc >= 3) return gemmcheck(argv[2], argc > 3 ? std::atof(argv[3]) : 2e-2);
    if (mode == "bench" && argc >= 4)
      return bench(argv[2], argv[3], argc > 4 ? std::atoi(argv[4]) : 128, argc > 5 ? std::atoi(argv[5]) : 1024,
                   argc > 6 ? std::atoi(argv[6]) : 16, argc > 7 ? std::atoi(argv[7]) : 32768);
    std::fprintf(stderr, "usage: based_gpu check|parity|bench ...\n");
    return 64;
  } catch (const EngineError& e) {
    std::fprintf(stderr, "%s: %s\n", e.code.c_str(), e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  }
}
