// ScanJsonObject: reads a JSON object whose bulk is one key's nested array of numbers (routing
// statistics' `counts`, a placement's `phy2log`) without building a document for it.
//
// nlohmann's DOM takes 16 bytes and more per value, with vector slack on top, against one or two
// bytes of text per small number: a 300 MB file of single-digit counts took 9 GB. The scan keeps
// the array's numbers flat (8 bytes each, at most `max_values` of them), its shape as the length
// of every array at each level, and the object's other top-level values when they are scalars.
// Arrays and objects under other keys are read and dropped (placements carry derived `log2phy`
// and `source_routes`, which no reader needs). An element that is not what its level holds is
// read through (the first is kept with its index path), so the caller knows every array's length
// and every other key, and can report the first fault in the order a reader walks the document:
// an array's length before its elements.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace gimbal {

struct NestedNumbers {
  bool present = false;                     // the key is in the object
  std::optional<nlohmann::json> not_array;  // its value when that is not an array ({} for objects)
  std::vector<double> values;               // the numbers at the innermost level, in document order
  // The first of them beyond 2^53 in magnitude, which a double does not hold exactly: its place in
  // `values` and its value as written (for messages).
  std::optional<std::pair<size_t, nlohmann::json>> first_inexact;
  // lengths[k]: the length of each element at nesting level k (0: the key's own array), in
  // document order; -1 for an element that is not an array (a misfit, below).
  std::vector<std::vector<int64_t>> lengths;
  // The first element, in document order, that is not what its level holds (a number or an object
  // above the innermost level; at it, an array, an object, a non-number, or a non-integer where
  // integers are asked for): its index at each level down to it, and the value ([] or {} for an
  // array or object). Later misfits are counted in their arrays and not kept.
  std::optional<std::pair<std::vector<int64_t>, nlohmann::json>> bad;
};

struct JsonObjectScan {
  nlohmann::json scalars = nlohmann::json::object();  // the other top-level keys ([] / {} stand in)
  NestedNumbers field;
  std::optional<nlohmann::json> not_object;  // the document when it is not an object
};

// Scans `text`. `key`'s value must be arrays nested `depth` deep (depth >= 1) with numbers
// innermost (integers only when `integers`). InvalidArgument, starting with `name`, for malformed
// JSON, `key` given twice (a document would keep the last), or more than `max_values` numbers or
// `max_arrays` arrays and misfits above the innermost level in `key`.
Result<JsonObjectScan> ScanJsonObject(const std::string& text, const std::string& name,
                                      std::string_view key, int depth, bool integers,
                                      int64_t max_values, int64_t max_arrays);

}  // namespace gimbal
