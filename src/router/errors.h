// Errors on the router's HTTP surface, in OpenAI's shape:
//   {"error": {"message": "...", "type": "invalid_request_error", "code": 400}}
#pragma once

#include <string>

#include "core/status.h"
#include "net/http_types.h"

namespace gimbal::router {

// The one mapping from error kinds to HTTP status codes.
int HttpStatusFor(ErrorCode code);

// OpenAI's error type for an HTTP status ("invalid_request_error", "authentication_error",
// "not_found_error", "rate_limit_error", "server_error", ...).
const char* OpenAiErrorType(int status);

// The JSON error object (no trailing newline).
std::string OpenAiErrorJson(int status, const std::string& message);
// A JSON error response with `status`.
net::HttpResponse OpenAiError(int status, const std::string& message);
// A JSON error response for a non-ok Status.
net::HttpResponse OpenAiError(const Status& status);

}  // namespace gimbal::router
