// JsonForMessage: a JSON value as an error message may quote it.
//
// nlohmann::json's dump() recurses once per nesting level, so quoting a hostile value (a file with
// 100,000 nested brackets) overflows the stack. Scalars are dumped (cut to 64 characters);
// containers are named by kind and size, never dumped. Control characters are escaped.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace gimbal {

inline std::string JsonForMessage(const nlohmann::json& v) {
  if (v.is_object()) return "an object of " + std::to_string(v.size()) + " members";
  if (v.is_array()) return "an array of " + std::to_string(v.size()) + " values";
  // Bytes that are not UTF-8 (a string from a binary format) as U+FFFD: a strict dump throws.
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 64) {
    // Cut on a character boundary (not inside a multi-byte character, nor a \ escape).
    size_t cut = 61;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
    const size_t escape = s.rfind('\\', cut);
    if (escape != std::string::npos && cut - escape < 6) cut = escape;
    s = s.substr(0, cut) + "...";
  }
  return s;
}

}  // namespace gimbal
