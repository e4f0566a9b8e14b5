#include "kvevents/block_index.h"

#include <type_traits>

namespace gimbal::kvevents {

BlockIndex::BlockIndex(size_t max_blocks) : max_blocks_(max_blocks) {
  GIMBAL_CHECK(max_blocks >= 1, "BlockIndex needs room for at least one block");
}

void BlockIndex::Store(uint64_t hash) {
  auto it = pos_.find(hash);
  if (it != pos_.end()) {
    order_.splice(order_.end(), order_, it->second);  // refreshed: now the most recent
    return;
  }
  if (pos_.size() >= max_blocks_) {
    pos_.erase(order_.front());
    order_.pop_front();
    ++bounded_drops_;
  }
  order_.push_back(hash);
  pos_.emplace(hash, std::prev(order_.end()));
}

void BlockIndex::Remove(uint64_t hash) {
  auto it = pos_.find(hash);
  if (it == pos_.end()) return;
  order_.erase(it->second);
  pos_.erase(it);
}

void BlockIndex::Clear() {
  order_.clear();
  pos_.clear();
}

void BlockIndex::Apply(const EventBatch& batch) {
  for (const Event& e : batch.events) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, BlockStored>) {
            for (uint64_t h : x.block_hashes) Store(h);
          } else if constexpr (std::is_same_v<T, BlockRemoved>) {
            for (uint64_t h : x.block_hashes) Remove(h);
          } else {
            Clear();
          }
        },
        e);
  }
}

size_t BlockIndex::MatchPrefix(std::span<const uint64_t> hashes) const {
  size_t n = 0;
  while (n < hashes.size() && Contains(hashes[n])) ++n;
  return n;
}

std::vector<uint64_t> BlockIndex::Hashes() const {
  return {order_.begin(), order_.end()};
}

SequenceTracker::Verdict SequenceTracker::Offer(int64_t seq) {
  if (seq == next_) {
    ++next_;
    replay_floor_.reset();  // the stream is live again: anything older now means a restart
    return Verdict::kInOrder;
  }
  if (seq > next_) return Verdict::kGap;
  if (replay_floor_ && seq >= *replay_floor_) return Verdict::kDuplicate;
  return Verdict::kRestart;
}

void SequenceTracker::SkipTo(int64_t seq) {
  next_ = seq + 1;
}

}  // namespace gimbal::kvevents
