// Minimal JSON reader for config.json and safetensors headers; the engine needs no other parsing.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace based {

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;

  bool has(const std::string& k) const { return kind == Object && obj.count(k) > 0; }
  const Json* get(const std::string& k) const {
    if (kind != Object) return nullptr;
    auto it = obj.find(k);
    return it == obj.end() ? nullptr : &it->second;
  }
  double numberOr(const std::string& k, double fallback) const {
    const Json* v = get(k);
    if (!v) return fallback;
    if (v->kind == Number) return v->num;
    if (v->kind == Bool) return v->b ? 1 : 0;
    return fallback;
  }
  bool boolOr(const std::string& k, bool fallback) const {
    const Json* v = get(k);
    if (!v) return fallback;
    if (v->kind == Bool) return v->b;
    if (v->kind == Number) return v->num != 0;
    return fallback;
  }
  std::string stringOr(const std::string& k, const std::string& fallback) const {
    const Json* v = get(k);
    return v && v->kind == String ? v->str : fallback;
  }
};

// Throws std::runtime_error with the byte offset on malformed input.
Json parseJson(const char* data, size_t size);

}  // namespace based
