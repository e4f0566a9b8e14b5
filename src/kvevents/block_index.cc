#include "kvevents/block_index.h"

#include <type_traits>

namespace gimbal::kvevents {

void BlockIndex::Apply(const EventBatch& batch, const std::function<void()>& pause) {
  size_t done = 0;
  auto step = [&] {
    if (++done % kPauseEvery == 0 && pause) pause();
  };
  for (const Event& e : batch.events) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, BlockStored>) {
            for (uint64_t h : x.block_hashes) {
              Store(h);
              step();
            }
          } else if constexpr (std::is_same_v<T, BlockRemoved>) {
            for (uint64_t h : x.block_hashes) {
              Remove(h);
              step();
            }
          } else {
            Clear();
            step();
          }
        },
        e);
  }
}

SequenceTracker::Verdict SequenceTracker::Offer(int64_t seq) {
  if (seq == next_) {
    if (next_ < INT64_MAX) ++next_;
    replay_floor_.reset();  // the stream is live again: anything older now means a restart
    return Verdict::kInOrder;
  }
  if (seq > next_) return Verdict::kGap;
  if (replay_floor_ && seq >= *replay_floor_) return Verdict::kDuplicate;
  return Verdict::kRestart;
}

void SequenceTracker::SkipTo(int64_t seq) {
  next_ = seq < INT64_MAX ? seq + 1 : INT64_MAX;
}

}  // namespace gimbal::kvevents
