// The rule for a backend's (engine's) name. A name goes into response headers (X-Gimbal-Engine),
// metric labels, logs and `gimbal bench`'s JSON: letters, digits and . _ - : / @ + ~ only, at most
// 128 characters (a CR LF in one once injected a header into every answer). The router refuses a
// config naming a backend otherwise; `gimbal bench` keeps a router's X-Gimbal-Engine only when it
// is such a name.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace gimbal {

inline constexpr size_t kMaxBackendNameLength = 128;

// Empty when `name` is a valid backend name; else what is wrong with it ("is longer than ...",
// "has the character 0x0a: ..."), to follow the name in an error message. An empty name passes:
// callers that need one say so.
inline std::string BackendNameProblem(std::string_view name) {
  if (name.size() > kMaxBackendNameLength) {
    return fmt::format("is longer than {} characters", kMaxBackendNameLength);
  }
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (!std::isalnum(c) && std::string_view("._-:/@+~").find(ch) == std::string_view::npos) {
      return fmt::format("has the character {:#04x}: use letters, digits and . _ - : / @ + ~",
                         static_cast<unsigned>(c));
    }
  }
  return "";
}

}  // namespace gimbal
