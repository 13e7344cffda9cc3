#pragma once
#include <stdexcept>
#include <string>

namespace based {

// A stable machine code plus a sentence; the N-API layer forwards both to TypeScript.
struct EngineError : std::runtime_error {
  std::string code;
  EngineError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

}  // namespace based
