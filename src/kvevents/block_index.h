// BlockIndex: what one engine has cached, as learnt from its KV-cache events; and SequenceTracker,
// which decides what a batch's sequence number means for that index.
//
// BlockIndex keeps a bounded set of 64-bit block hashes. Stores add (or refresh) hashes, removes
// drop them, AllBlocksCleared empties it. When a store would go past `max_blocks` the hash stored
// least recently is dropped (counted in `bounded_drops`): the index then under-reports, it never
// claims a block the engine does not have because of the bound. A set, not a multiset: vLLM sends a
// BlockStored again when a request reuses cached blocks, so counting stores would be wrong.
//
// SequenceTracker follows one publisher's sequence numbers (0, 1, 2, ... per publisher process):
//   - the expected number: apply the batch;
//   - a larger one: a gap (batches lost), the caller asks for a replay or resets;
//   - a smaller one inside a range already settled (re-sent by a replay, or arriving late after
//     the caller gave up on it): skip it;
//   - any other smaller one: the publisher restarted; the caller resets the index and the tracker
//     (Reset), and offers the number again: 0 is in order, a later one a gap back to 0.
// Not thread-safe: the owner serialises access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "core/prefix_index.h"
#include "kvevents/events.h"

namespace gimbal::kvevents {

// What one engine holds (core/prefix_index.h's HashLru), kept by its KV-cache events.
class BlockIndex : public HashLru {
 public:
  // max_blocks >= 1.
  explicit BlockIndex(size_t max_blocks) : HashLru(max_blocks) {}
  // Applies every event of `batch` in order: stores add (or refresh), removes drop, a clear
  // empties. `pause`, when set, is called after every kPauseEvery hashes: a batch may carry
  // millions, and the caller lets readers of the index in between (Subscriber releases its lock).
  static constexpr size_t kPauseEvery = 4096;
  void Apply(const EventBatch& batch, const std::function<void()>& pause = {});
};

class SequenceTracker {
 public:
  enum class Verdict {
    kInOrder,    // apply; the tracker has advanced
    kGap,        // batches [expected(), seq) are missing; call Resolve... then decide
    kDuplicate,  // in a settled range (replayed, or given up on and now late): skip
    kRestart,    // the publisher restarted: reset the index and the tracker, offer seq again
  };
  // The largest sequence number a tracker takes (one more must still be a number); callers
  // reject larger ones as malformed. Offer and SkipTo saturate rather than overflow past it.
  static constexpr int64_t kMaxSeq = INT64_MAX - 1;
  // Whether the tracker takes `seq` (0..kMaxSeq); callers reject others as malformed.
  static constexpr bool InRange(int64_t seq) { return seq >= 0 && seq <= kMaxSeq; }
  // Classifies `seq`; for kInOrder advances past it. kRestart leaves the tracker as it was.
  Verdict Offer(int64_t seq);
  // Forgets the old publisher: expects 0 next.
  void Reset() {
    next_ = 0;
    replay_floor_.reset();
  }
  // After a gap: the caller recovered (replayed) every batch up to `seq` - 1 and applies `seq`
  // itself, or gave up and reset; either way the stream continues after `seq`.
  void SkipTo(int64_t seq);
  // Numbers from `first` up to expected() are settled — about to be replayed, or given up on:
  // seen again before the next in-order batch, they are duplicates, not a restart.
  void SettleFrom(int64_t first) { replay_floor_ = first; }
  // The connection dropped: nothing settled can still arrive, so numbers going back mean a restart.
  void ForgetSettled() { replay_floor_.reset(); }
  int64_t expected() const { return next_; }

 private:
  int64_t next_ = 0;
  std::optional<int64_t> replay_floor_;
};

}  // namespace gimbal::kvevents
