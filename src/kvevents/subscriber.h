// Subscriber: listens to N engines' KV-cache event publishers (one per engine / DP rank, as vLLM
// runs them) and keeps, per engine, a bounded index of the block hashes it holds — what a router
// asks to learn how much of a prompt an engine has cached.
//
// One thread reads every engine's SUB socket (Start/Stop) and applies each batch to that engine's
// BlockIndex in sequence order. What can go wrong, and what it does:
//   - a gap in sequence numbers (a batch lost: the subscriber fell behind its high-water mark, the
//     publisher dropped one, a reconnect): with a replay endpoint for that engine it asks the
//     publisher's ROUTER for every batch from the first missing one and applies them; when the
//     replay cannot close the gap (too old for the publisher's buffer, no answer within
//     replay_timeout_s) or there is no replay endpoint, the engine's index is reset, marked stale
//     and a warning says so; after a replay not answered in time, or one that kept the subscriber
//     waiting for its answers more than a quarter of replay_timeout_s, that engine's publisher is
//     not asked again (gap or catch-up) for 10 s — its gaps reset the index at once — so that one
//     silent or slow publisher cannot hold up the other engines' events (a publisher that answered
//     each replay just in time, and caused a gap with each batch, held the reading thread for
//     minutes);
//   - numbers going back (the publisher restarted): the index is reset; seen from sequence 0 it is
//     exact at once, seen later the batches before are a gap back to 0 (replayed, or stale);
//   - batches out of order: one ahead of the expected number is a gap (above); one behind it,
//     inside a range already replayed or given up on, is skipped as a duplicate;
//   - AllBlocksCleared empties the index, which is then exact (stale cleared);
//   - a malformed message (wrong frame count, a sequence frame that is not 8 bytes or holds a
//     number outside 0..SequenceTracker::kMaxSeq, a payload that does not decode) is counted and
//     skipped, its reason logged (the first few per engine, then one in a thousand) and kept in the
//     engine's status; a lost payload marks the index stale.
// Catch-up: with a replay socket, an engine heard nothing from for catch_up_s is asked for the
// batches after the last one applied (a late joiner learns what was sent before it connected;
// found missing for good, the index is marked stale).
// A monitor hears when the connection to a publisher drops (it exited or restarted; ZeroMQ
// reconnects by itself, except after a protocol error such as a frame over max_message_bytes,
// when the subscriber connects again itself): from then on, numbers below the expected one mean a
// restart, even inside a range a replay had settled. Memory: each index holds at most
// max_blocks_per_engine hashes. ZeroMQ queues at most rcv_hwm messages per engine (beyond that the
// publisher side drops, which shows up as a gap), and no frame over max_message_bytes: a larger one
// makes ZeroMQ drop that connection (counted as a reconnect; it reconnects by itself, and the lost
// batch shows up as a gap). The subscriber keeps at most kMaxFrames frames of a message; one with
// more is read through, counted as malformed and skipped. ZeroMQ has no limit on the number of
// frames of a message and holds a message whole before handing it over, so a publisher sending a
// message of very many frames can still make it hold that many (each at most max_message_bytes): a
// bound only publishers that follow the protocol (3 frames) keep. A publisher is never slowed down:
// PUB sockets drop rather than wait.
//
// "Stale" means the index may lack blocks the engine holds, or hold blocks it dropped; a router
// should then weigh its answers less. An engine not yet heard from has an empty, non-stale index.
// Queries are thread-safe and take one engine's lock briefly.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "kvevents/block_index.h"

namespace gimbal::kvevents {

// The largest frame a subscriber accepts by default (vLLM's batches are far smaller).
inline constexpr int64_t kDefaultMaxMessageBytes = int64_t{16} << 20;

struct SubscriberOptions {
  std::vector<std::string> endpoints;         // engine e publishes at endpoints[e] (connected)
  std::vector<std::string> replay_endpoints;  // empty, or one per engine ("" = no replay)
  std::string topic;                          // subscription prefix; "" takes every topic
  int rcv_hwm = 1000;                         // messages ZeroMQ queues per engine
  // ZMQ_MAXMSGSIZE of the SUB and replay sockets: a frame larger than this drops the connection.
  int64_t max_message_bytes = kDefaultMaxMessageBytes;
  size_t max_blocks_per_engine = size_t{1} << 18;
  double replay_timeout_s = 0.5;
  // An engine quiet this long (seconds) is asked for any batches after the last one applied, when
  // it has a replay socket: a subscriber that joined after the last batches were sent, or lost
  // the tail of the stream, catches up without waiting for the next batch. 0 turns it off.
  double catch_up_s = 1.0;
  // The block size in tokens the reader hashes prompts in; 0: any. An engine whose BlockStored
  // events name another size (or none: 0 or less), in any event of a batch, stores blocks the
  // reader's hashes can never match: its index is not exact for this reader (MatchPrefixIfExact
  // answers nothing) until a batch stores only blocks of this size. Batches without stores keep
  // the verdict. The mismatch becomes the engine's last_problem and is logged when it starts,
  // then every thousandth such batch.
  int64_t expected_block_size = 0;
};

struct EngineKvStatus {
  size_t blocks = 0;                  // hashes in the index
  bool stale = false;                 // the index is known to be incomplete or out of date
  int64_t batches = 0;                // batches applied (live or replayed)
  int64_t last_seq = -1;              // last sequence number applied
  double last_ts = 0;                 // that batch's timestamp
  int64_t gaps = 0;                   // gaps seen
  int64_t replays = 0;                // gaps closed by a replay
  int64_t resets = 0;                 // index reset because batches were lost for good
  int64_t restarts = 0;               // publisher restarts seen
  int64_t duplicates = 0;             // batches skipped: already applied, or late after a reset
  int64_t malformed = 0;              // messages skipped as malformed
  int64_t bounded_drops = 0;          // hashes dropped to stay within max_blocks_per_engine
  int64_t reconnects = 0;             // connections to the publisher lost
  int64_t catch_up_failures = 0;      // catch-ups of a quiet engine that could not be served
  int64_t replay_timeouts = 0;        // replays not answered within replay_timeout_s
  int64_t slow_replays = 0;           // replays answered, but waited on > replay_timeout_s / 4
  int64_t block_size = 0;             // tokens per block in the latest BlockStored; 0: none yet
  bool block_size_mismatch = false;   // the latest batch that stored blocks had another size
  int64_t block_size_mismatches = 0;  // batches that stored blocks of another size
  std::string last_problem;           // the latest malformed message's reason or reset's cause
};

class Subscriber {
 public:
  // Frames kept of one message: vLLM sends 3 (topic, sequence, payload), a replay answer 4.
  static constexpr size_t kMaxFrames = 4;
  // Connects the sockets (not started); fails on no endpoints, bad sizes (max_message_bytes < 1)
  // or endpoints.
  static Result<std::unique_ptr<Subscriber>> Create(SubscriberOptions options);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Starts / stops (and joins) the reading thread. Both idempotent; no restart after Stop.
  void Start();
  void Stop();

  int engines() const { return static_cast<int>(engines_.size()); }
  // Leading blocks of `hashes` (chained, head first) that `engine` holds; 0 for a bad engine.
  size_t MatchPrefix(int engine, std::span<const uint64_t> hashes) const;
  // The same, under one lock with the staleness check: nullopt while `engine`'s index is stale or
  // its blocks are not expected_block_size tokens (or for a bad engine), when a caller should ask
  // another source.
  std::optional<size_t> MatchPrefixIfExact(int engine, std::span<const uint64_t> hashes) const;
  bool Contains(int engine, uint64_t hash) const;
  // A copy of `engine`'s state; default for a bad engine.
  EngineKvStatus State(int engine) const;
  // `engine`'s hashes, least recently stored first. For tests and dumps.
  std::vector<uint64_t> Hashes(int engine) const;

 private:
  struct Engine {
    explicit Engine(size_t max_blocks) : index(max_blocks) {}
    void* sub = nullptr;
    void* monitor = nullptr;  // PAIR hearing `sub`'s disconnections
    void* replay = nullptr;   // DEALER to the publisher's ROUTER
    std::string endpoint, replay_endpoint;
    mutable std::mutex mu;  // guards the fields below
    // Readers (MatchPrefix...) waiting for `mu`: ApplyLocked's pauses let them in first.
    mutable std::atomic<int> readers_waiting{0};
    BlockIndex index;
    SequenceTracker seq;
    EngineKvStatus st;
    std::chrono::steady_clock::time_point heard;  // last message or catch-up (reading thread)
    // When the connection dropped, until ZeroMQ reports retrying it (reading thread).
    std::optional<std::chrono::steady_clock::time_point> dropped;
    // No replay before this (reading thread): the last one was not answered in time.
    std::chrono::steady_clock::time_point replay_backoff_until{};
  };

  explicit Subscriber(SubscriberOptions options) : options_(std::move(options)) {}
  void Loop();
  // `frames`: the first kMaxFrames frames of a message of `total` frames.
  void OnMessage(Engine& e, const std::vector<std::string>& frames, size_t total);
  // Asks `e`'s publisher for batches from the first missing one; true when every batch before
  // `live_seq` was applied.
  bool Replay(Engine& e, int64_t live_seq);
  // Asks a quiet engine's publisher for batches after the last one applied (catch_up_s).
  void CatchUp(Engine& e);
  // Applies a batch under `lock` (on e.mu), releasing it for a moment every
  // BlockIndex::kPauseEvery hashes: dispatch reads the index under that lock (MatchPrefixIfExact,
  // from the router's pick), and one batch may carry millions of hashes. Only this thread writes
  // the index, so a reader at most sees part of a batch applied.
  void ApplyLocked(Engine& e, std::unique_lock<std::mutex>& lock, int64_t seq,
                   const Result<EventBatch>& batch);
  // Records `why` as the engine's last problem and logs it, rate-limited on `occurrence` (the
  // count of its kind so far: the first few, then one in a thousand).
  void ProblemLocked(Engine& e, const std::string& why, int64_t occurrence);
  gimbal::Status ConnectReplay(Engine& e);
  // Opens `e`'s SUB socket, with a monitor of its disconnections, and connects it.
  gimbal::Status OpenSub(Engine& e);
  void CloseSub(Engine& e);

  SubscriberOptions options_;
  std::vector<std::unique_ptr<Engine>> engines_;
  std::atomic<bool> stop_{false};
  bool started_ = false, stopped_ = false;
  std::mutex life_mu_;
  std::thread thread_;
};

}  // namespace gimbal::kvevents
