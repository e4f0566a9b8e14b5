#include "wire/engine_state.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/sample_snapshot.h"

namespace gimbal::wire {
namespace {

// gimbal::testing::SampleSnapshot() stands for the snapshot the front end held before the report.
EngineState AState() {
  EngineState s;
  s.engine = 3;
  s.model = "m";
  s.load.waiting = 2;
  s.load.running = 5;
  s.load.kv_usage = 0.25;
  s.load.kv_capacity_tokens = 32000;
  s.load.prefill_pending_tokens = 1200;
  s.load.taken_at = 1.7e9;
  s.moe_pressure = 1.5;
  s.preemptions = 4;
  s.steps = 99;
  s.version = 12;
  return s;
}

TEST(EngineState, JsonHasEveryField) {
  const auto j = nlohmann::json::parse(EngineStateJson(AState()));
  namespace f = state_field;
  EXPECT_EQ(j.size(), 12u);
  EXPECT_EQ(j[f::kEngine], 3);
  EXPECT_EQ(j[f::kModel], "m");
  EXPECT_EQ(j[f::kWaiting], 2);
  EXPECT_EQ(j[f::kRunning], 5);
  EXPECT_EQ(j[f::kKvUsage], 0.25);
  EXPECT_EQ(j[f::kKvCapacityTokens], 32000);
  EXPECT_EQ(j[f::kPrefillPendingTokens], 1200);
  EXPECT_EQ(j[f::kTakenAt], 1.7e9);
  EXPECT_EQ(j[f::kMoePressure], 1.5);
  EXPECT_EQ(j[f::kPreemptions], 4);
  EXPECT_EQ(j[f::kSteps], 99);
  EXPECT_EQ(j[f::kVersion], 12);
}

// What an engine writes, a front end reads back: through the event stream, as the router does.
TEST(EngineState, EventsRoundTrip) {
  const std::string stream = EngineStateEvent(AState()) + ": ping\n\n" + EngineStateEvent(AState());
  EXPECT_EQ(stream.rfind("data: {", 0), 0u);
  net::SseParser parser;
  std::vector<net::SseEvent> events;
  ASSERT_TRUE(parser.Feed(stream, events));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(IsStateEvent(events[0]));
  EXPECT_FALSE(IsStateEvent(events[1]));  // a comment: no data
  EngineSnapshot s;
  double moe = 1;
  ValueWarnings w;
  ASSERT_TRUE(SnapshotFromPushed(events[2].data, 4.0, &s, &moe, &w));
  EXPECT_EQ(s.waiting, 2);
  EXPECT_EQ(s.running, 5);
  EXPECT_EQ(s.kv_usage, 0.25);
  EXPECT_EQ(s.kv_capacity_tokens, 32000);
  EXPECT_EQ(s.prefill_pending_tokens, 1200);
  EXPECT_EQ(s.taken_at, 4.0);
  EXPECT_EQ(moe, 1.5);
  EXPECT_EQ(w.count, 0);
  net::SseEvent named;
  named.has_data = true;
  named.data = events[0].data;
  named.event = "placement";
  EXPECT_FALSE(IsStateEvent(named));
  named.event = "message";
  EXPECT_TRUE(IsStateEvent(named));
}

TEST(EngineState, PlausibilityBounds) {
  EXPECT_TRUE(Plausible(0, 10));
  EXPECT_TRUE(Plausible(10, 10));
  EXPECT_FALSE(Plausible(-1, 10));
  EXPECT_FALSE(Plausible(11, 10));
  EXPECT_FALSE(Plausible(std::nan(""), 10));
  EXPECT_TRUE(PlausibleUsage(-kUsageTolerance));
  EXPECT_TRUE(PlausibleUsage(1 + kUsageTolerance));
  EXPECT_FALSE(PlausibleUsage(1.5));
  ValueWarnings w;
  w.Add("waiting", -1);
  w.Add("running", -2);
  EXPECT_EQ(w.count, 2);
  EXPECT_EQ(w.first, "waiting = -1");
}

TEST(SnapshotFromPushed, ADeeplyNestedStateIsRefusedUnread) {
  EngineSnapshot s;
  double moe = 0;
  const std::string state = R"({"waiting":2,"running":5,"kv_usage":0.25,"x":)";
  EXPECT_TRUE(SnapshotFromPushed(state + "[[1]]}", 1.0, &s, &moe, nullptr));
  std::string deep = state + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_FALSE(SnapshotFromPushed(deep, 1.0, &s, &moe, nullptr));
}

TEST(SnapshotFromPushed, ReadsAState) {
  EngineSnapshot s;
  double moe = 1;
  ValueWarnings w;
  ASSERT_TRUE(
      SnapshotFromPushed(R"({"waiting":2,"running":5,"kv_usage":0.25,"kv_capacity_tokens":32000,)"
                         R"("prefill_pending_tokens":1200,"moe_pressure":1.5,"taken_at":99})",
                         4.0, &s, &moe, &w));
  EXPECT_EQ(s.waiting, 2);
  EXPECT_EQ(s.running, 5);
  EXPECT_EQ(s.kv_usage, 0.25);
  EXPECT_EQ(s.kv_capacity_tokens, 32000);
  EXPECT_EQ(s.prefill_pending_tokens, 1200);
  EXPECT_EQ(s.taken_at, 4.0);  // arrival, not the engine's stamp
  EXPECT_EQ(moe, 1.5);
  EXPECT_EQ(w.count, 0);
  // Optional fields absent: their defaults.
  ASSERT_TRUE(SnapshotFromPushed(R"({"waiting":0,"running":1,"kv_usage":0})", 5, &s, &moe));
  EXPECT_EQ(s.kv_capacity_tokens, 0);
  EXPECT_EQ(s.prefill_pending_tokens, -1);
  EXPECT_EQ(moe, 1);
}

TEST(SnapshotFromPushed, NotAStateIsRefused) {
  EngineSnapshot s = gimbal::testing::SampleSnapshot();
  double moe = 2;
  for (const char* data : {"", "nope", "[1,2]", R"({"waiting":1,"running":1})",
                           R"({"waiting":"1","running":1,"kv_usage":0})", "NaN",
                           R"({"waiting":NaN,"running":1,"kv_usage":0})"}) {
    SCOPED_TRACE(data);
    EXPECT_FALSE(SnapshotFromPushed(data, 4, &s, &moe));
  }
  EXPECT_EQ(s.waiting, 7);
  EXPECT_EQ(moe, 2);
}

TEST(SnapshotFromPushed, ImplausibleFieldsAreDroppedKeepingThePreviousValues) {
  for (std::string bad :
       {"-1e308", "1e300", "-3", "2e12", "18446744073709551615", "-9223372036854775808"}) {
    SCOPED_TRACE(bad);
    EngineSnapshot s = gimbal::testing::SampleSnapshot();
    double moe = 1.25;
    ValueWarnings w;
    ASSERT_TRUE(SnapshotFromPushed(
        R"({"waiting":)" + bad + R"(,"running":4,"kv_usage":)" + bad + R"(,"kv_capacity_tokens":)" +
            bad + R"(,"prefill_pending_tokens":)" + bad + R"(,"moe_pressure":)" + bad + "}",
        4.0, &s, &moe, &w));
    EXPECT_EQ(s.waiting, 7);
    EXPECT_EQ(s.running, 4);
    EXPECT_EQ(s.kv_usage, 0.4);
    EXPECT_EQ(s.kv_capacity_tokens, 5000);
    EXPECT_EQ(s.prefill_pending_tokens, 900);
    EXPECT_EQ(moe, 1.25);
    EXPECT_EQ(s.taken_at, 4.0);
    EXPECT_EQ(w.count, 5);
    EXPECT_EQ(w.first.rfind("waiting = ", 0), 0u) << w.first;
  }
  // Out-of-range literals (JSON has no NaN or Inf): never a value.
  EngineSnapshot s = gimbal::testing::SampleSnapshot();
  double moe = 1.25;
  SnapshotFromPushed(R"({"waiting":1e999,"running":4,"kv_usage":0})", 4.0, &s, &moe);
  EXPECT_EQ(s.waiting, 7);
  // Both request counts implausible: refused, nothing touched.
  ValueWarnings w;
  EXPECT_FALSE(
      SnapshotFromPushed(R"({"waiting":-1,"running":1e300,"kv_usage":0})", 5, &s, &moe, &w));
  EXPECT_EQ(s.taken_at, 1);
  EXPECT_EQ(w.count, 2);
}

TEST(SnapshotFromPushed, ReadsClassLocalityAndKeepsThePreviousOnAMalformedOne) {
  EngineState st;
  st.class_locality = {0.25, 1.0, 0.0};
  const std::string json = EngineStateJson(st);
  EngineSnapshot snap;
  double moe = 1;
  std::vector<double> loc;
  ASSERT_TRUE(SnapshotFromPushed(json, 1, &snap, &moe, nullptr, &loc));
  EXPECT_EQ(loc, (std::vector<double>{0.25, 1.0, 0.0}));
  const std::string head = R"({"waiting":0,"running":0,"kv_usage":0,"class_locality":)";
  for (const std::string& bad :
       {std::string("[0.5, 1.5]"), std::string("[0.5, -0.1]"), std::string("[0.5, \"x\"]"),
        std::string("{\"a\":1}"), std::string("0.5")}) {
    ValueWarnings w;
    ASSERT_TRUE(SnapshotFromPushed(head + bad + "}", 2, &snap, &moe, &w, &loc)) << bad;
    EXPECT_EQ(loc, (std::vector<double>{0.25, 1.0, 0.0})) << bad;  // the previous array
    EXPECT_EQ(w.count, 1) << bad;
  }
  ASSERT_TRUE(SnapshotFromPushed(R"({"waiting":0,"running":0,"kv_usage":0})", 3, &snap, &moe,
                                 nullptr, &loc));
  EXPECT_TRUE(loc.empty());  // no longer reported
  EXPECT_EQ(EngineStateJson(EngineState{}).find("class_locality"), std::string::npos);
}

}  // namespace
}  // namespace gimbal::wire
