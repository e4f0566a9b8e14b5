// Errors on an OpenAI-compatible HTTP surface (the router's and the emulated engine's), in
// OpenAI's shape:
//   {"error": {"code": 400, "message": "...", "type": "invalid_request_error"}}
// One table maps Gimbal's error kinds to HTTP statuses, one maps statuses to OpenAI error types.
#pragma once

#include <string>

#include "core/status.h"
#include "net/http_types.h"

namespace gimbal::wire {

// The HTTP status for an error kind: kInvalidArgument 400, kNotFound 404, kResourceExhausted 429,
// kInternal 500, kUnsupported 501, kIo 502 (an upstream failed), kUnavailable 503,
// kDeadlineExceeded 504; kOk 200.
int HttpStatusFor(ErrorCode code);

// OpenAI's error type for an HTTP status (the error classes of OpenAI's client libraries):
//   401 authentication_error, 403 permission_error, 404 not_found_error, 408 timeout_error,
//   429 rate_limit_error, 503 service_unavailable_error, any other 5xx server_error, any other
//   status (400, 405, 409, 413, 415, 422, 431, ...) invalid_request_error.
const char* OpenAiErrorType(int status);

// The JSON error object for `status` (no trailing newline). Bytes of `message` that are not UTF-8
// are replaced (U+FFFD), so any message can be sent.
std::string OpenAiErrorJson(int status, const std::string& message);
// A JSON error response with `status`.
net::HttpResponse OpenAiError(int status, const std::string& message);
// A JSON error response for a non-ok Status.
net::HttpResponse OpenAiError(const Status& status);

}  // namespace gimbal::wire
