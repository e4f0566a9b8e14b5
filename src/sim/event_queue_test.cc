#include "sim/event_queue.h"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace gimbal::sim {
namespace {

TEST(EventQueueTest, OrdersByTimeThenSequence) {
  EventQueue q;
  q.Push(2.0, 1, 10);
  q.Push(1.0, 1, 20);
  q.Push(2.0, 1, 30);
  q.Push(1.0, 1, 40);
  std::vector<int64_t> order;
  while (!q.empty()) order.push_back(q.Pop().arg);
  EXPECT_EQ(order, (std::vector<int64_t>{20, 40, 10, 30}));
  EXPECT_DOUBLE_EQ(q.now(), 2.0);
}

TEST(EventQueueTest, EventsAtNowRunAfterThoseAlreadyDue) {
  EventQueue q;
  q.Push(5.0, 0, 1);
  q.Push(5.0, 0, 2);
  EXPECT_EQ(q.Pop().arg, 1);
  q.Push(q.now(), 0, 3);  // scheduling at the current time is allowed
  EXPECT_EQ(q.Pop().arg, 2);
  const Event e = q.Pop();
  EXPECT_EQ(e.arg, 3);
  EXPECT_DOUBLE_EQ(e.time, 5.0);
  EXPECT_TRUE(q.empty());
}

// Scheduling into the past is a bug in the caller: the queue aborts with a message naming the
// times rather than moving the event to now() silently.
TEST(EventQueueDeathTest, PushBeforeNowAborts) {
  EventQueue q;
  q.Push(5.0, 0);
  q.Pop();
  EXPECT_DEATH(q.Push(1.0, 3), "check failed.*kind 3 at time 1 is not at or after now \\(5\\)");
  // A hair in the past is still the past.
  EXPECT_DEATH(q.Push(std::nextafter(5.0, 0.0), 0), "time must not run backwards");
}

TEST(EventQueueDeathTest, PushAtNaNAborts) {
  EventQueue q;
  EXPECT_DEATH(q.Push(std::numeric_limits<double>::quiet_NaN(), 0), "at time nan");
}

}  // namespace
}  // namespace gimbal::sim
