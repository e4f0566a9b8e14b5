// Priority tagging of a request body without building its document.
//
// A front end tags each forwarded request with vLLM's integer `priority`. Parsing the body into a
// document and serialising it again costs tens of times the body's size in memory and recurses as
// deep as the JSON nests; this rewrite scans the top level of the object once, keeps every other
// byte as sent, and writes only the one member. Nesting is skipped with a counter, not recursion.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "wire/completion_request.h"

namespace gimbal::wire {

// `body` with its top-level member "priority" set to `priority`: every top-level "priority"
// member's value is replaced (a key written with escapes counts), or, when there is none,
// `"priority":N` is inserted as the first member. Every other byte is kept. kInvalidArgument when
// `body` is not one JSON object (leading and trailing whitespace allowed) or nests deeper than
// kMaxJsonDepth; the check is structural (strings, brackets, separators), the values themselves
// are not validated: callers pass a body ParseCompletionRequest accepted.
Result<std::string> SetPriority(std::string_view body, int64_t priority);

// OK when `text`'s brackets (outside strings) nest at most `max_depth` deep; kInvalidArgument
// naming the byte where they go deeper. A cheap guard before handing text to code that recurses
// per level (nlohmann::json's dump); says nothing else about the text's validity.
Status CheckJsonNesting(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace gimbal::wire
