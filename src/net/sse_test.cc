#include "net/sse.h"

#include <gtest/gtest.h>

namespace gimbal::net {
namespace {

TEST(SseFormat, SplitsLinesIntoDataFields) {
  EXPECT_EQ(FormatSseEvent("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(FormatSseEvent("x\ny", "error"), "event: error\ndata: x\ndata: y\n\n");
}

TEST(SseParser, ParsesEventsSplitAcrossPieces) {
  const std::string stream =
      "data: {\"id\":1}\n\n: ping\n\nevent: e\ndata: a\ndata: b\n\ndata: [DONE]\n\n";
  // Every split point must give the same events, with raw bytes that concatenate to the input.
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    std::vector<SseEvent> evs;
    ASSERT_TRUE(p.Feed(std::string_view(stream).substr(0, cut), evs));
    ASSERT_TRUE(p.Feed(std::string_view(stream).substr(cut), evs));
    ASSERT_EQ(evs.size(), 4u) << "cut " << cut;
    EXPECT_EQ(evs[0].data, "{\"id\":1}");
    EXPECT_FALSE(evs[1].has_data);
    EXPECT_EQ(evs[2].event, "e");
    EXPECT_EQ(evs[2].data, "a\nb");
    EXPECT_EQ(evs[3].data, "[DONE]");
    std::string joined;
    for (const auto& e : evs) joined += e.raw;
    EXPECT_EQ(joined, stream);
    EXPECT_TRUE(p.pending().empty());
  }
}

TEST(SseParser, AcceptsCrLfAndByteAtATime) {
  const std::string stream = "data: one\r\n\r\ndata: two\r\r";
  SseParser p;
  std::vector<SseEvent> evs;
  for (char c : stream) p.Feed(std::string_view(&c, 1), evs);
  ASSERT_EQ(evs.size(), 1u);  // the final '\r' waits: a '\n' could still follow
  p.Feed("data: three\n", evs);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].data, "one");
  EXPECT_EQ(evs[0].raw, "data: one\r\n\r\n");
  EXPECT_EQ(evs[1].data, "two");
  EXPECT_EQ(p.pending(), "data: three\n");
}

TEST(SseParser, RejectsOversizedEvent) {
  SseParser p(16);
  std::vector<SseEvent> evs;
  EXPECT_FALSE(p.Feed("data: aaaaaaaaaaaaaaaaaaaaaaaaaa", evs));
  EXPECT_TRUE(p.Feed("data: ok\n\n", evs));
  ASSERT_EQ(evs.size(), 1u);
}

}  // namespace
}  // namespace gimbal::net
