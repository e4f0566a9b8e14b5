#include "sim/event_queue.h"

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

TEST(EventQueueTest, PastEventsRunNowNotBackwards) {
  EventQueue q;
  q.Push(5.0, 0);
  q.Pop();
  q.Push(1.0, 0, 7);
  const Event e = q.Pop();
  EXPECT_DOUBLE_EQ(e.time, 5.0);
  EXPECT_EQ(e.arg, 7);
}

}  // namespace
}  // namespace gimbal::sim
