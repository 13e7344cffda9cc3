// Run-time choice of backend. The CUDA backend is built as its own library where nvcc exists (CMake, at npm
// install), so one addon binary serves machines with and without a GPU, and loads no CUDA code on the latter.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend.h"
#include "errors.h"

namespace based {
namespace {

using AbiFn = int (*)();
using CountFn = int (*)();
using MakeFn = Backend* (*)(int, long long);

// Where libbased_cuda.so may be: named by the environment, beside this module, in the CMake build folder of a
// source checkout (this module being native/build/Release/based_engine.node), or on the loader's path.
std::vector<std::string> candidatePaths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("EVAPORATE_CUDA_LIB")) paths.emplace_back(env);
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&candidatePaths), &info) && info.dli_fname) {
    std::string dir(info.dli_fname);
    dir = dir.substr(0, dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
    if (dir.empty()) dir = ".";
    paths.push_back(dir + "/libbased_cuda.so");
    paths.push_back(dir + "/../../build-cuda/libbased_cuda.so");
  }
  paths.emplace_back("libbased_cuda.so");
  return paths;
}

// The CUDA backend, or null with the reason in `why`.
std::unique_ptr<Backend> tryCuda(std::string& why) {
  why = "libbased_cuda.so was not built (no nvcc at install) or not found";
  for (const std::string& path : candidatePaths()) {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed: the backend's code lives in it
    if (!lib) continue;
    auto abi = reinterpret_cast<AbiFn>(dlsym(lib, "based_cuda_abi"));
    auto count = reinterpret_cast<CountFn>(dlsym(lib, "based_cuda_device_count"));
    auto make = reinterpret_cast<MakeFn>(dlsym(lib, "based_cuda_make_backend"));
    if (!abi || !count || !make) {
      why = path + " is not the engine's CUDA library";
      continue;
    }
    if (abi() != kBackendAbi) {
      why = path + " was built from other sources (ABI " + std::to_string(abi()) + ", expected " + std::to_string(kBackendAbi) + "); rebuild it";
      continue;
    }
    if (count() <= 0) {
      why = "no CUDA device is visible";
      return nullptr;
    }
    int maxBatch = 64;
    long long maxTokens = 1 << 16;
    if (const char* b = std::getenv("EVAPORATE_LOCAL_GPU_SLOTS")) maxBatch = std::max(1, std::atoi(b));
    if (const char* t = std::getenv("EVAPORATE_LOCAL_GPU_TOKENS")) maxTokens = std::max(1LL, std::atoll(t));
    return std::unique_ptr<Backend>(make(maxBatch, maxTokens));
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Backend> makeBackend(int threads) {
  const char* env = std::getenv("EVAPORATE_LOCAL_DEVICE");
  const std::string device = env && *env ? env : "auto";
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw EngineError("bad_argument", "EVAPORATE_LOCAL_DEVICE must be cpu, cuda or auto, not \"" + device + "\"");
  if (device != "cpu") {
    std::string why;
    if (auto gpu = tryCuda(why)) return gpu;
    if (device == "cuda") throw EngineError("cuda_unavailable", "EVAPORATE_LOCAL_DEVICE=cuda, but " + why);
  }
  return makeCpuBackend(threads);
}

}  // namespace based
