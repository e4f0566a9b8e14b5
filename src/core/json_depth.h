// ParseJsonBounded: JSON from a file the user (or anyone) hands us, refused when nested deeper than
// kMaxJsonDepth.
//
// nlohmann::json parses iteratively, but dump(), copies and comparisons recurse once per nesting
// level: a 400 KB file of 200,000 brackets parsed fine and then overflowed the stack in whatever
// touched it next (a merge writing results.json, a report copying a live result). No file of
// ours nests beyond a handful of levels.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace gimbal {

inline constexpr int kMaxJsonDepth = 64;

// Parses `in` (a stream or a string) into Json (nlohmann::json or ordered_json). The error says
// what is wrong (nlohmann's parse error, or the nesting) without naming the input: callers add
// the file's name.
template <class Json, class Input>
Result<Json> ParseJsonBounded(Input&& in) {
  struct TooDeep : std::runtime_error {
    TooDeep() : std::runtime_error("nested deeper than the limit") {}
  };
  auto limit = [](int depth, typename Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth) {
      throw TooDeep();
    }
    return true;
  };
  try {
    return Json::parse(std::forward<Input>(in), limit);
  } catch (const TooDeep&) {
    return InvalidArgument("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(e.what());
  }
}

}  // namespace gimbal
