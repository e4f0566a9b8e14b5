// Status and Result: recoverable errors as values.
//
// A Status is either ok or carries an error code and a message a user can act on
// ("scenario.yaml:12: key 'workload.rate': expected a positive number, got 'abc'"). Result<T> holds
// a T or a non-ok Status. Invariants are checked with GIMBAL_CHECK, which aborts with a message:
// those are bugs, not user errors.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gimbal {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,    // malformed input: config, trace, request, statistics
  kNotFound,           // unknown name, missing file
  kIo,                 // read or write failed
  kUnavailable,        // no backend can serve now
  kResourceExhausted,  // every backend past its limits; over a size limit
  kUnsupported,        // a build option or solver that is not present
  kDeadlineExceeded,   // a wait ran out of time (a peer that did not answer in time)
  kInternal,
};

const char* ErrorCodeName(ErrorCode code);

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>", or "ok".
  std::string ToString() const;
  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(const std::string& context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {ErrorCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) {
  return {ErrorCode::kNotFound, std::move(m)};
}
inline Status IoError(std::string m) {
  return {ErrorCode::kIo, std::move(m)};
}
inline Status Unsupported(std::string m) {
  return {ErrorCode::kUnsupported, std::move(m)};
}
inline Status Internal(std::string m) {
  return {ErrorCode::kInternal, std::move(m)};
}

// A value or an error. Construct from a T (success) or from a non-ok Status (failure).
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(ErrorCode::kInternal, "Result built from ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, const std::string& msg);

}  // namespace gimbal

// Aborts with file, line and message when `cond` is false. For invariants, not user input.
#define GIMBAL_CHECK(cond, msg)                                           \
  do {                                                                    \
    if (!(cond)) ::gimbal::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

// Evaluates a Status expression and returns it from the enclosing function when not ok.
#define GIMBAL_RETURN_IF_ERROR(expr) \
  do {                               \
    ::gimbal::Status _st = (expr);   \
    if (!_st.ok()) return _st;       \
  } while (0)
