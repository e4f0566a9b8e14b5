// The `usage` object of an OpenAI completion response, or of one streamed chunk:
//   {"usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}, ...}
// Read in one pass without building the document: every answer a front end relays may pass here.
#pragma once

#include <cstdint>
#include <string_view>

namespace gimbal::wire {

struct Usage {
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
};

// Reads the top-level `usage` object of a JSON object text into *out: false, and *out untouched,
// when the text is not one JSON object (a NUL byte included) or has no `usage` object (absent or
// null). Fields the object lacks, or gives as non-integers, keep their values in *out. Cheap when
// the text does not mention "usage".
bool FindUsage(std::string_view json_text, Usage* out);

}  // namespace gimbal::wire
