#include "safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "errors.h"
#include "json.h"

namespace based {

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw EngineError("weights_unreadable", "cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw EngineError("weights_unreadable", "cannot stat " + path);
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      throw EngineError("weights_unreadable", "cannot map " + path);
    }
    data_ = static_cast<uint8_t*>(m);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) munmap(data_, size_);
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t man = h & 0x3FF;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {
      // subnormal half: renormalize into a float exponent
      int e = -1;
      do { ++e; man <<= 1; } while ((man & 0x400) == 0);
      man &= 0x3FF;
      u = sign | (uint32_t(127 - 15 - e) << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7F800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static void parseFile(const MappedFile& f, const std::string& path, std::map<std::string, TensorView>& out) {
  if (f.size() < 8) throw EngineError("weights_invalid", path + " is too small to be a safetensors file");
  uint64_t n;
  std::memcpy(&n, f.data(), 8);
  if (n > f.size() - 8) throw EngineError("weights_invalid", path + " has a header longer than the file");
  Json header;
  try {
    header = parseJson(reinterpret_cast<const char*>(f.data() + 8), size_t(n));
  } catch (const std::exception& e) {
    throw EngineError("weights_invalid", path + ": " + e.what());
  }
  if (header.kind != Json::Object) throw EngineError("weights_invalid", path + ": header is not an object");
  const uint8_t* base = f.data() + 8 + n;
  size_t avail = f.size() - 8 - n;
  for (auto& [name, info] : header.obj) {
    if (name == "__metadata__") continue;
    std::string dt = info.stringOr("dtype", "");
    TensorView t;
    size_t elem;
    if (dt == "F32") t.dtype = DType::F32, elem = 4;
    else if (dt == "F16") t.dtype = DType::F16, elem = 2;
    else if (dt == "BF16") t.dtype = DType::BF16, elem = 2;
    else continue;  // integer buffers (e.g. step counters) are not weights
    const Json* shape = info.get("shape");
    const Json* offs = info.get("data_offsets");
    if (!shape || !offs || offs->kind != Json::Array || offs->arr.size() != 2)
      throw EngineError("weights_invalid", path + ": tensor " + name + " lacks shape or offsets");
    for (auto& s : shape->arr) t.shape.push_back(int64_t(s.num));
    size_t a = size_t(offs->arr[0].num), b = size_t(offs->arr[1].num);
    if (b < a || b > avail || (b - a) != size_t(t.numel()) * elem)
      throw EngineError("weights_invalid", path + ": tensor " + name + " has inconsistent offsets");
    t.data = base + a;
    t.bytes = b - a;
    out[name] = t;
  }
}

SafetensorsDir::SafetensorsDir(const std::string& dir) {
  std::vector<std::string> paths;
  DIR* d = opendir(dir.c_str());
  if (!d) throw EngineError("model_not_found", "model directory " + dir + " cannot be read");
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) paths.push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(paths.begin(), paths.end());
  if (paths.empty())
    throw EngineError("weights_missing", "no .safetensors file in " + dir +
                                             " (convert a PyTorch .bin checkpoint with native/reference/convert_bin.py)");
  for (auto& p : paths) {
    files_.push_back(std::make_unique<MappedFile>(p));
    parseFile(*files_.back(), p, tensors_);
  }
}

const TensorView* SafetensorsDir::find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return &it->second;
  // checkpoints saved from a Lightning module carry a "model." prefix
  it = tensors_.find("model." + name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> v;
  for (auto& [k, _] : tensors_) v.push_back(k);
  return v;
}

}  // namespace based
