#include "wire/openai_error.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace gimbal::wire {
namespace {

TEST(OpenAiError, StatusesOfErrorKinds) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::kOk), 200);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnsupported), 501);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kIo), 502);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnavailable), 503);
}

TEST(OpenAiError, TypesOfStatuses) {
  const std::pair<int, const char*> table[] = {
      {400, "invalid_request_error"}, {401, "authentication_error"},
      {403, "permission_error"},      {404, "not_found_error"},
      {405, "invalid_request_error"}, {408, "timeout_error"},
      {409, "invalid_request_error"}, {413, "invalid_request_error"},
      {415, "invalid_request_error"}, {422, "invalid_request_error"},
      {429, "rate_limit_error"},      {431, "invalid_request_error"},
      {500, "server_error"},          {501, "server_error"},
      {502, "server_error"},          {503, "service_unavailable_error"},
      {504, "server_error"}};
  for (const auto& [status, type] : table) {
    EXPECT_STREQ(OpenAiErrorType(status), type) << status;
  }
}

TEST(OpenAiError, BodyHasOpenAisShape) {
  auto r = OpenAiError(Status(ErrorCode::kNotFound, "no \"x\""));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":{"code":404,"message":"no \"x\"","type":"not_found_error"}})");
  auto limited = OpenAiError(429, "busy");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(nlohmann::json::parse(limited.body)["error"]["type"], "rate_limit_error");
}

// A message may quote what a client sent (a request path): bytes that are not UTF-8 are replaced,
// never thrown on.
TEST(OpenAiError, MessagesThatAreNotUtf8AreReplaced) {
  const std::string body = OpenAiErrorJson(404, "no route for GET /\xff\xfe");
  auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["error"]["message"], "no route for GET /\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(j["error"]["code"], 404);
}

}  // namespace
}  // namespace gimbal::wire
