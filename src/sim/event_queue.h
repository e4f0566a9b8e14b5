// EventQueue: the simulator's agenda, ordered by (time, sequence number).
//
// Events scheduled for the same time run in the order they were scheduled, so a run is
// deterministic by construction. An event is a small tagged value; the simulator dispatches on
// the kind. Time never runs backwards: scheduling an event before now() (or at a NaN time) is a
// bug in the caller and aborts with a message (GIMBAL_CHECK), rather than being moved silently.
// Not thread-safe: one queue per simulation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <queue>
#include <vector>

#include <fmt/format.h>

#include "core/status.h"

namespace gimbal::sim {

struct Event {
  double time = 0;
  uint64_t seq = 0;
  int kind = 0;
  int64_t arg = 0;
};

class EventQueue {
 public:
  // Schedules an event; returns its sequence number. `time` must be >= now() (checked).
  uint64_t Push(double time, int kind, int64_t arg = 0) {
    GIMBAL_CHECK(time >= now_, fmt::format("EventQueue::Push: event of kind {} at time {} is "
                                           "not at or after now ({}); time must not run backwards",
                                           kind, time, now_));
    const uint64_t s = next_seq_++;
    heap_.push(Event{time, s, kind, arg});
    return s;
  }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  // Removes and returns the earliest event, advancing now() to its time.
  Event Pop() {
    Event e = heap_.top();
    heap_.pop();
    now_ = e.time;
    return e;
  }
  const Event& Top() const { return heap_.top(); }
  double now() const { return now_; }

 private:
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };
  std::priority_queue<Event, std::vector<Event>, Later> heap_;
  uint64_t next_seq_ = 0;
  double now_ = 0;
};

}  // namespace gimbal::sim
