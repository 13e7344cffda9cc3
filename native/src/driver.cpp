// Standalone driver (no Node): parity against reference fixtures, and a throughput benchmark.
//   based_driver check <modelDir> <cases.safetensors> [tolerance]
//   based_driver bench <config.json> [prefillTokens] [decodeSteps] [batch] [threads]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "engine.h"
#include "errors.h"
#include "safetensors.h"

using namespace based;

static std::vector<float> asFloats(const TensorView& t) {
  std::vector<float> v(t.numel());
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

static int check(const std::string& dir, const std::string& cases, double tol) {
  auto e = openEngine(dir, 0);
  std::printf("backend: %s\n", e->backend->name());
  // cases.safetensors lives beside the weights' directory, so parse it on its own
  std::string tmpdir = cases.substr(0, cases.rfind('/'));
  SafetensorsDir st(tmpdir);
  int worst = 0;
  double worstErr = 0;
  for (int i = 0;; ++i) {
    std::string p = "case" + std::to_string(i) + ".";
    const TensorView* tk = st.find(p + "tokens");
    if (!tk) break;
    const TensorView* lg = st.find(p + "logits");
    const TensorView* pl = st.find(p + "prefix_len");
    std::vector<float> tf = asFloats(*tk), ref = asFloats(*lg);
    std::vector<int32_t> toks(tf.begin(), tf.end());
    auto state = newState(e->model->cfg);
    std::vector<SeqRequest> b{{state.get(), toks.data(), int(toks.size()), pl ? int(asFloats(*pl)[0]) : -1}};
    std::vector<float> out;
    auto t0 = std::chrono::steady_clock::now();
    e->backend->forward(*e->model, b, true, out);
    e->backend->release(state.get());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out.size() != ref.size()) {
      std::printf("case %d: size %zu vs reference %zu\n", i, out.size(), ref.size());
      return 2;
    }
    double num = 0, den = 0, maxAbs = 0;
    for (size_t j = 0; j < out.size(); ++j) {
      double dlt = double(out[j]) - ref[j];
      num += dlt * dlt, den += double(ref[j]) * ref[j];
      maxAbs = std::max(maxAbs, std::fabs(dlt));
      if (!std::isfinite(out[j])) num = INFINITY;
    }
    double rel = std::sqrt(num / std::max(den, 1e-30));
    std::printf("case %d: %zu tokens, rel err %.3e, max abs %.3e, %.2fs\n", i, toks.size(), rel, maxAbs, secs);
    if (!(rel <= worstErr)) worstErr = rel, worst = i;
  }
  std::printf("worst rel err %.3e (case %d), tolerance %.1e: %s\n", worstErr, worst, tol, worstErr <= tol ? "PASS" : "FAIL");
  return worstErr <= tol ? 0 : 1;
}

static int bench(const std::string& configPath, int prefill, int steps, int batch, int threads) {
  std::ifstream in(configPath);
  std::stringstream ss;
  ss << in.rdbuf();
  auto e = randomEngine(ss.str(), 7, threads);
  const ModelConfig& c = e->model->cfg;
  std::vector<int32_t> toks(prefill);
  for (int i = 0; i < prefill; ++i) toks[i] = (i * 7919) % c.vocab;
  auto st = newState(c);
  std::vector<float> out;
  std::vector<SeqRequest> b{{st.get(), toks.data(), prefill, -1}};
  auto t0 = std::chrono::steady_clock::now();
  e->backend->forward(*e->model, b, false, out);
  double pre = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::unique_ptr<SequenceState>> states;
  for (int i = 0; i < batch; ++i) states.push_back(std::make_unique<SequenceState>(*st));
  std::vector<int32_t> next(batch, 11);
  std::vector<SeqRequest> db;
  for (int i = 0; i < batch; ++i) db.push_back({states[i].get(), &next[i], 1, -1});
  e->backend->forward(*e->model, db, false, out);  // warm-up
  t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) e->backend->forward(*e->model, db, false, out);
  double dec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double bw = measureCopyBandwidth(size_t(512) << 20, threads, 5);
  double bytes = double(e->model->weightBytes) + double(stateBytes(c)) * batch;
  std::printf("backend %s, weights %.1f MB, state %.2f MB/seq\n", e->backend->name(), e->model->weightBytes / 1e6, stateBytes(c) / 1e6);
  std::printf("prefill %d tokens: %.1f tok/s\n", prefill, prefill / pre);
  std::printf("decode batch %d: %.2f ms/step, %.1f tok/s; bound %.2f ms/step at %.1f GB/s (%.0f%% of bound)\n", batch,
              1e3 * dec / steps, batch * steps / dec, 1e3 * bytes / (bw * 1e9), bw, 100.0 * (bytes / (bw * 1e9)) / (dec / steps));
  return 0;
}

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "check" && argc >= 4) return check(argv[2], argv[3], argc > 4 ? std::atof(argv[4]) : 1e-4);
    if (mode == "bench" && argc >= 3)
      return bench(argv[2], argc > 3 ? std::atoi(argv[3]) : 512, argc > 4 ? std::atoi(argv[4]) : 16,
                   argc > 5 ? std::atoi(argv[5]) : 1, argc > 6 ? std::atoi(argv[6]) : 0);
    std::fprintf(stderr, "usage: based_driver check <modelDir> <casesDir/cases.safetensors> [tol]\n"
                         "       based_driver bench <config.json> [prefill] [steps] [batch] [threads]\n");
    return 64;
  } catch (const EngineError& e) {
    std::fprintf(stderr, "%s: %s\n", e.code.c_str(), e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  }
}
