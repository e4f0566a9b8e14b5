#include "wire/openai_error.h"

#include <nlohmann/json.hpp>

namespace gimbal::wire {

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kIo:
      return 502;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kResourceExhausted:
      return 429;
    case ErrorCode::kUnsupported:
      return 501;
    case ErrorCode::kDeadlineExceeded:
      return 504;
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

const char* OpenAiErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 408:
      return "timeout_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string OpenAiErrorJson(int status, const std::string& message) {
  nlohmann::json j = {
      {"error", {{"message", message}, {"type", OpenAiErrorType(status)}, {"code", status}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

net::HttpResponse OpenAiError(int status, const std::string& message) {
  return net::MakeResponse(status, "application/json", OpenAiErrorJson(status, message));
}

net::HttpResponse OpenAiError(const Status& status) {
  return OpenAiError(HttpStatusFor(status.code()), status.message());
}

}  // namespace gimbal::wire
