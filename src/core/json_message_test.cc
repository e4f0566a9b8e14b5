#include "core/json_message.h"

#include <sstream>

#include <gtest/gtest.h>

#include "core/json_depth.h"

namespace gimbal {
namespace {

// Whether `s` is well-formed UTF-8 (the rest of the message is printed and dumped as JSON).
bool WellFormed(const std::string& s) {
  return !nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict).empty();
}

TEST(JsonForMessage, QuotesScalarsNamesContainersAndCutsOnACharacterBoundary) {
  EXPECT_EQ(JsonForMessage(nlohmann::json("abc")), "\"abc\"");
  EXPECT_EQ(JsonForMessage(nlohmann::json::array({1, 2})), "an array of 2 values");
  EXPECT_EQ(JsonForMessage(nlohmann::json::object()), "an object of 0 members");
  // Bytes that are not UTF-8 become U+FFFD (3 bytes each); a cut at byte 61 once split one.
  for (size_t lead = 0; lead < 4; ++lead) {
    const std::string out =
        JsonForMessage(nlohmann::json(std::string(lead, 'x') + std::string(40, '\xff')));
    EXPECT_LE(out.size(), 64u);
    EXPECT_EQ(out.substr(out.size() - 3), "...");
    EXPECT_NO_THROW(EXPECT_TRUE(WellFormed(out))) << lead;
  }
  // Nor inside an escape: a control character is written \u0001, six characters.
  for (size_t lead = 50; lead < 62; ++lead) {
    const std::string out =
        JsonForMessage(nlohmann::json(std::string(lead, 'x') + std::string(10, '\x01')));
    const size_t backslash = out.rfind('\\');
    EXPECT_TRUE(backslash == std::string::npos || out.size() - 3 - backslash == 6) << out;
  }
}

TEST(ParseJsonBounded, RefusesNestingPastTheLimitAndParsesTheRest) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto bad = ParseJsonBounded<nlohmann::ordered_json>(deep);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("nested deeper than 64 levels"), std::string::npos);
  std::istringstream in("{\"a\": {\"b\": [1, 2, {\"c\": null}]}}");
  auto good = ParseJsonBounded<nlohmann::json>(in);
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ((*good)["a"]["b"][1], 2);
  // Exactly the limit's depth parses; one more level does not.
  const std::string at = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(ParseJsonBounded<nlohmann::json>(at).ok());
  EXPECT_FALSE(ParseJsonBounded<nlohmann::json>("[" + at + "]").ok());
  auto malformed = ParseJsonBounded<nlohmann::json>(std::string("{\"a\": }"));
  ASSERT_FALSE(malformed.ok());
  EXPECT_NE(malformed.status().message().find("parse error"), std::string::npos);
}

}  // namespace
}  // namespace gimbal
