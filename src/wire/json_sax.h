// Internal to wire/: the value types nlohmann::json::sax_parse hands to a reader.
#pragma once

#include <nlohmann/json.hpp>

namespace gimbal::wire::internal {

struct SaxTypes {
  using number_integer_t = nlohmann::json::number_integer_t;
  using number_unsigned_t = nlohmann::json::number_unsigned_t;
  using number_float_t = nlohmann::json::number_float_t;
  using string_t = nlohmann::json::string_t;
  using binary_t = nlohmann::json::binary_t;
};

}  // namespace gimbal::wire::internal
