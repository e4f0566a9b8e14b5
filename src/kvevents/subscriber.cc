#include "kvevents/subscriber.h"

#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "kvevents/publisher.h"

namespace gimbal::kvevents {

namespace {

using Clock = std::chrono::steady_clock;

// How long after a disconnection ZeroMQ has to report that it retries the connection (it does at
// once) before the subscriber takes it as given up and connects again itself.
constexpr auto kRetryWait = std::chrono::seconds(1);

// How long a replay endpoint that did not answer is left alone: gaps meanwhile reset the index.
constexpr auto kReplayBackoff = std::chrono::seconds(10);
// The time one engine's messages may take of a round of the reading thread, at most (past it, the
// rest wait for the next round, after the other engines').
constexpr auto kRoundBudget = std::chrono::milliseconds(20);

// Reads one whole message: keeps its first Subscriber::kMaxFrames frames in `frames`, reads
// through (and drops) the rest, and counts them all in `total`. False when none was waiting.
bool RecvFrames(void* s, std::vector<std::string>& frames, size_t& total, int flags) {
  frames.clear();
  total = 0;
  int more = 1;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, total > 0 ? 0 : flags) < 0) {
      zmq_msg_close(&m);
      return total > 0;
    }
    ++total;
    if (frames.size() < Subscriber::kMaxFrames) {
      frames.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    }
    more = zmq_msg_more(&m);
    zmq_msg_close(&m);
  }
  return true;
}

bool RecvFrames(void* s, std::vector<std::string>& frames, int flags) {
  size_t total = 0;
  return RecvFrames(s, frames, total, flags);
}

}  // namespace

Result<std::unique_ptr<Subscriber>> Subscriber::Create(SubscriberOptions options) {
  if (options.endpoints.empty()) return InvalidArgument("a KV-event subscriber needs endpoints");
  if (!options.replay_endpoints.empty() &&
      options.replay_endpoints.size() != options.endpoints.size()) {
    return InvalidArgument("replay endpoints: give none or one per engine");
  }
  if (options.rcv_hwm < 0 || options.max_blocks_per_engine < 1 || !(options.replay_timeout_s > 0) ||
      options.max_message_bytes < 1) {
    return InvalidArgument(
        "KV-event subscriber: rcv_hwm >= 0, max_blocks >= 1, replay timeout > 0, "
        "max_message_bytes >= 1");
  }
  std::unique_ptr<Subscriber> s(new Subscriber(std::move(options)));
  for (size_t i = 0; i < s->options_.endpoints.size(); ++i) {
    s->engines_.push_back(std::make_unique<Engine>(s->options_.max_blocks_per_engine));
    Engine& en = *s->engines_.back();
    en.endpoint = s->options_.endpoints[i];
    GIMBAL_RETURN_IF_ERROR(s->OpenSub(en));
    if (!s->options_.replay_endpoints.empty()) en.replay_endpoint = s->options_.replay_endpoints[i];
    if (!en.replay_endpoint.empty()) GIMBAL_RETURN_IF_ERROR(s->ConnectReplay(en));
  }
  return s;
}

void Subscriber::CloseSub(Engine& e) {
  if (e.sub) {
    zmq_socket_monitor(e.sub, nullptr, 0);
    zmq_close(e.sub);
  }
  if (e.monitor) zmq_close(e.monitor);
  e.sub = e.monitor = nullptr;
}

Status Subscriber::OpenSub(Engine& e) {
  const int linger = 0;
  e.sub = zmq_socket(ZmqContext(), ZMQ_SUB);
  if (!e.sub) return Internal(std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  zmq_setsockopt(e.sub, ZMQ_RCVHWM, &options_.rcv_hwm, sizeof(int));
  zmq_setsockopt(e.sub, ZMQ_MAXMSGSIZE, &options_.max_message_bytes, sizeof(int64_t));
  zmq_setsockopt(e.sub, ZMQ_LINGER, &linger, sizeof(int));
  zmq_setsockopt(e.sub, ZMQ_SUBSCRIBE, options_.topic.data(), options_.topic.size());
  // A name of its own for every monitor of the process (a closed one may still hold its name).
  static std::atomic<uint64_t> monitors{0};
  const std::string name = "inproc://gimbal-kv-monitor-" + std::to_string(monitors.fetch_add(1));
  if (zmq_socket_monitor(e.sub, name.c_str(), ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED) !=
      0) {
    return Internal(std::string("zmq_socket_monitor: ") + zmq_strerror(zmq_errno()));
  }
  e.monitor = zmq_socket(ZmqContext(), ZMQ_PAIR);
  if (!e.monitor || zmq_connect(e.monitor, name.c_str()) != 0) {
    return Internal(std::string("monitor: ") + zmq_strerror(zmq_errno()));
  }
  zmq_setsockopt(e.monitor, ZMQ_LINGER, &linger, sizeof(int));
  if (zmq_connect(e.sub, e.endpoint.c_str()) != 0) {
    return InvalidArgument(std::string("cannot connect to ") + e.endpoint + ": " +
                           zmq_strerror(zmq_errno()));
  }
  return {};
}

Status Subscriber::ConnectReplay(Engine& e) {
  if (e.replay) zmq_close(e.replay);
  e.replay = zmq_socket(ZmqContext(), ZMQ_DEALER);
  if (!e.replay) return Internal(std::string("zmq_socket: ") + zmq_strerror(zmq_errno()));
  const int linger = 0;
  zmq_setsockopt(e.replay, ZMQ_LINGER, &linger, sizeof(int));
  zmq_setsockopt(e.replay, ZMQ_MAXMSGSIZE, &options_.max_message_bytes, sizeof(int64_t));
  if (zmq_connect(e.replay, e.replay_endpoint.c_str()) != 0) {
    return InvalidArgument(std::string("cannot connect to ") + e.replay_endpoint + ": " +
                           zmq_strerror(zmq_errno()));
  }
  return {};
}

Subscriber::~Subscriber() {
  Stop();
  for (auto& e : engines_) {
    CloseSub(*e);
    if (e->replay) zmq_close(e->replay);
  }
}

void Subscriber::Start() {
  std::lock_guard<std::mutex> lock(life_mu_);
  if (started_ || stopped_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void Subscriber::Stop() {
  std::lock_guard<std::mutex> lock(life_mu_);
  stopped_ = true;
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void Subscriber::Loop() {
  // SUB sockets first, then their monitors.
  const size_t n = engines_.size();
  std::vector<zmq_pollitem_t> items(2 * n);
  for (size_t i = 0; i < n; ++i) {
    items[i] = {engines_[i]->sub, 0, ZMQ_POLLIN, 0};
    items[n + i] = {engines_[i]->monitor, 0, ZMQ_POLLIN, 0};
  }
  std::vector<std::string> frames;
  size_t total = 0;
  for (auto& e : engines_) e->heard = Clock::now();
  const auto catch_up = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options_.catch_up_s));
  while (!stop_.load(std::memory_order_relaxed)) {
    const int ready = zmq_poll(items.data(), static_cast<int>(items.size()), 50);
    if (options_.catch_up_s > 0) {
      for (size_t i = 0; i < n; ++i) {
        Engine& e = *engines_[i];
        if (e.replay == nullptr || Clock::now() - e.heard < catch_up) continue;
        if (ready > 0 && (items[i].revents & ZMQ_POLLIN)) continue;  // news is waiting anyway
        CatchUp(e);
        e.heard = Clock::now();
      }
    }
    for (size_t i = 0; i < n; ++i) {
      Engine& e = *engines_[i];
      if (!e.dropped || Clock::now() - *e.dropped < kRetryWait) continue;
      // ZeroMQ gave this connection up for good (it does so on a protocol error, such as a frame
      // over max_message_bytes) instead of retrying it: connect again.
      e.dropped.reset();
      zmq_disconnect(e.sub, e.endpoint.c_str());  // forgets the dead connection, if it is known
      const bool ok = zmq_connect(e.sub, e.endpoint.c_str()) == 0;
      std::lock_guard<std::mutex> lock(e.mu);
      ProblemLocked(e,
                    std::string("the connection was dropped and not retried (a frame over "
                                "max_message_bytes, or another protocol error); ") +
                        (ok ? "connecting again" : "reconnecting failed"),
                    e.st.reconnects);
    }
    if (ready <= 0) continue;
    // Disconnections first: a restarted publisher's first batches may sit in the same round, and
    // must already read as a new process, not as duplicates of a settled range.
    for (size_t i = 0; i < n; ++i) {
      if (!(items[n + i].revents & ZMQ_POLLIN)) continue;
      Engine& e = *engines_[i];
      bool disconnected = false;
      while (RecvFrames(e.monitor, frames, ZMQ_DONTWAIT)) {
        // [event id (2 bytes) and value (4), endpoint]
        uint16_t event = 0;
        if (frames.empty() || frames[0].size() < sizeof(event)) continue;
        std::memcpy(&event, frames[0].data(), sizeof(event));
        if (event == ZMQ_EVENT_DISCONNECTED) {
          disconnected = true;
          e.dropped = Clock::now();
        } else if (event == ZMQ_EVENT_CONNECT_RETRIED) {
          e.dropped.reset();  // ZeroMQ is reconnecting by itself
        }
      }
      if (!disconnected) continue;
      // The publisher went away; ZeroMQ reconnects by itself. Whatever comes next is new: numbers
      // the last replay or reset settled no longer mark duplicates, so a restarted publisher's
      // small numbers read as the restart they are.
      std::lock_guard<std::mutex> lock(e.mu);
      ++e.st.reconnects;
      e.seq.ForgetSettled();
    }
    for (size_t i = 0; i < n; ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      const auto round_start = Clock::now();
      engines_[i]->heard = round_start;
      // A bounded number per engine per round, and a bounded time, so one busy engine cannot
      // starve the others.
      for (int k = 0; k < 256 && !stop_.load(std::memory_order_relaxed) &&
                      Clock::now() - round_start < kRoundBudget &&
                      RecvFrames(engines_[i]->sub, frames, total, ZMQ_DONTWAIT);
           ++k) {
        OnMessage(*engines_[i], frames, total);
      }
    }
  }
}

void Subscriber::ProblemLocked(Engine& e, const std::string& why, int64_t occurrence) {
  e.st.last_problem = why;
  if (LogThisOccurrence(occurrence)) spdlog::warn("kv-events from {}: {}", e.endpoint, why);
}

void Subscriber::ApplyLocked(Engine& e, std::unique_lock<std::mutex>& lock, int64_t seq,
                             const Result<EventBatch>& batch) {
  if (!batch.ok()) {
    // The batch is lost: whatever it stored or removed is missing from the index.
    e.st.stale = true;
    ProblemLocked(e, "batch " + std::to_string(seq) + " skipped: " + batch.status().message(),
                  ++e.st.malformed);
    return;
  }
  // The block size, judged before the batch is applied: Apply lets readers in while it runs, and
  // they must not take blocks of another size for the reader's own. Every stored event counts
  // (a batch may mix sizes); a size of 0 or less is no size the reader hashes in.
  bool stores = false;
  std::optional<int64_t> other;  // the first stored size that is not the expected one
  for (const Event& ev : batch->events) {
    if (const auto* stored = std::get_if<BlockStored>(&ev)) {
      e.st.block_size = stored->block_size;
      stores = true;
      if (!other && options_.expected_block_size > 0 &&
          stored->block_size != options_.expected_block_size) {
        other = stored->block_size;
      }
    }
  }
  if (stores) {
    const bool was = e.st.block_size_mismatch;
    e.st.block_size_mismatch = other.has_value();
    if (other) {
      ++e.st.block_size_mismatches;
      const std::string why =
          "the engine stores blocks of " + std::to_string(*other) +
          " tokens but prompts are hashed in blocks of " +
          std::to_string(options_.expected_block_size) +
          ": its events cannot match; set the router's prefix_cache.block_tokens to the engines' "
          "block size";
      // Said when it starts (also the engine's last_problem then) and every thousandth batch.
      if (!was) e.st.last_problem = why;
      if (!was || e.st.block_size_mismatches % 1000 == 0) {
        spdlog::warn("kv-events from {}: {} ({} batches so far)", e.endpoint, why,
                     e.st.block_size_mismatches);
      }
    }
  }
  e.index.Apply(*batch, [&] {
    // A mutex does not hand over to its waiters: re-locking at once would win every time. So the
    // readers waiting now get in first (up to a millisecond); later ones wait for the next pause.
    lock.unlock();
    const auto until = Clock::now() + std::chrono::milliseconds(1);
    while (e.readers_waiting.load(std::memory_order_acquire) > 0 && Clock::now() < until) {
      std::this_thread::yield();
    }
    lock.lock();
  });
  for (const Event& ev : batch->events) {
    if (std::holds_alternative<AllBlocksCleared>(ev)) e.st.stale = false;
  }
  ++e.st.batches;
  e.st.last_seq = seq;
  e.st.last_ts = batch->ts;
}

void Subscriber::OnMessage(Engine& e, const std::vector<std::string>& frames, size_t total) {
  std::optional<int64_t> seq;
  if (total == 3) seq = DecodeSeq(frames[1]);
  if (!seq || !SequenceTracker::InRange(*seq)) {
    std::lock_guard<std::mutex> lock(e.mu);
    ProblemLocked(e,
                  total != 3 ? "message of " + std::to_string(total) +
                                   " frame(s) skipped; expected [topic, sequence, payload]"
                             : std::string("message skipped: the sequence frame is not an 8-byte "
                                           "number in 0..") +
                                   std::to_string(SequenceTracker::kMaxSeq),
                  ++e.st.malformed);
    return;
  }
  const Result<EventBatch> batch = DecodeBatch(frames[2]);
  std::unique_lock<std::mutex> lock(e.mu);
  SequenceTracker::Verdict verdict = e.seq.Offer(*seq);
  if (verdict == SequenceTracker::Verdict::kRestart) {
    // A new process: nothing the old one cached survives. From 0 the index is exact at once; a
    // restart seen later is a gap back to 0, replayed or reported below like any other.
    ++e.st.restarts;
    e.index.Clear();
    e.st.stale = false;
    e.st.last_problem = "publisher restarted (sequence went back to " + std::to_string(*seq) + ")";
    spdlog::info("kv-events from {}: {}; index reset", e.endpoint, e.st.last_problem);
    e.seq.Reset();
    verdict = e.seq.Offer(*seq);
  }
  switch (verdict) {
    case SequenceTracker::Verdict::kInOrder:
      ApplyLocked(e, lock, *seq, batch);
      return;
    case SequenceTracker::Verdict::kDuplicate:
      ++e.st.duplicates;
      return;
    case SequenceTracker::Verdict::kRestart:  // cannot follow Reset(); listed for the switch
    case SequenceTracker::Verdict::kGap:
      break;
  }
  ++e.st.gaps;
  const int64_t missing_from = e.seq.expected();
  lock.unlock();
  const bool closed = e.replay && Replay(e, *seq);
  lock.lock();
  if (closed) {
    ++e.st.replays;
    if (e.seq.expected() > *seq) {
      ++e.st.duplicates;  // the replay already carried it
      return;
    }
  } else {
    e.index.Clear();
    e.st.stale = true;
    ++e.st.resets;
    e.seq.SettleFrom(missing_from);  // those batches, should they still come, are skipped
    ProblemLocked(e,
                  "batches " + std::to_string(missing_from) + ".." + std::to_string(*seq - 1) +
                      " lost" + (e.replay ? " and not replayed" : " (no replay endpoint)") +
                      "; index reset and marked stale",
                  e.st.resets);
  }
  e.seq.SkipTo(*seq);
  ApplyLocked(e, lock, *seq, batch);
}

void Subscriber::CatchUp(Engine& e) {
  // Backing off after an unanswered replay: the index was marked stale then.
  if (Clock::now() < e.replay_backoff_until) return;
  int64_t expected;
  {
    std::lock_guard<std::mutex> lock(e.mu);
    expected = e.seq.expected();
  }
  if (Replay(e, expected)) return;  // applied whatever was kept after the last batch (or nothing)
  std::lock_guard<std::mutex> lock(e.mu);
  e.st.stale = true;
  ProblemLocked(e,
                "catch-up from batch " + std::to_string(expected) +
                    " failed (the publisher no longer keeps it, or did not answer); index marked "
                    "stale",
                ++e.st.catch_up_failures);
}

bool Subscriber::Replay(Engine& e, int64_t live_seq) {
  // A publisher that did not answer lately is not asked again for a while: waiting on it holds up
  // every engine's events.
  if (Clock::now() < e.replay_backoff_until) return false;
  int64_t from;
  {
    std::lock_guard<std::mutex> lock(e.mu);
    from = e.seq.expected();
    e.seq.SettleFrom(from);
  }
  const std::string start = EncodeSeq(from);
  if (zmq_send(e.replay, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
      zmq_send(e.replay, start.data(), start.size(), ZMQ_DONTWAIT) < 0) {
    return false;
  }
  const auto timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options_.replay_timeout_s));
  const auto deadline = Clock::now() + timeout;
  std::vector<std::string> frames;
  bool hole = false;
  Clock::duration waited{0};  // on the publisher, not on decoding and applying its batches
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    zmq_pollitem_t item{e.replay, 0, ZMQ_POLLIN, 0};
    // Waits in short steps, so that Stop() need not wait out the timeout.
    const auto poll_start = Clock::now();
    const int ready = left.count() <= 0 || stop_.load(std::memory_order_relaxed)
                          ? -1
                          : zmq_poll(&item, 1, std::min<long>(left.count(), 50));
    waited += Clock::now() - poll_start;
    if (ready == 0) continue;
    if (ready < 0) {
      // No end marker in time: a fresh socket, so late answers cannot confuse the next replay.
      if (!ConnectReplay(e).ok()) {
        zmq_close(e.replay);
        e.replay = nullptr;
      }
      if (!stop_.load(std::memory_order_relaxed)) {
        e.replay_backoff_until = Clock::now() + kReplayBackoff;
        std::lock_guard<std::mutex> lock(e.mu);
        ++e.st.replay_timeouts;
        ProblemLocked(e,
                      "the replay endpoint did not answer; not asked again for " +
                          std::to_string(kReplayBackoff.count()) + " s",
                      e.st.replay_timeouts);
      }
      return false;
    }
    size_t total = 0;
    if (!RecvFrames(e.replay, frames, total, ZMQ_DONTWAIT)) continue;
    // [empty, topic, seq, payload]; the end marker carries sequence -1.
    const std::optional<int64_t> rseq = total == 4 ? DecodeSeq(frames[2]) : std::nullopt;
    {
      std::lock_guard<std::mutex> lock(e.mu);
      if (!rseq || (*rseq != -1 && !SequenceTracker::InRange(*rseq))) {
        ProblemLocked(e, "malformed replay message skipped", ++e.st.malformed);
        continue;
      }
      if (*rseq == -1) break;
      if (hole || *rseq < e.seq.expected()) continue;
      if (*rseq > e.seq.expected()) {
        hole = true;  // the publisher no longer keeps the batches we miss
        continue;
      }
    }
    // Decoded outside the lock, as in OnMessage: only this thread moves the sequence on.
    const Result<EventBatch> batch = DecodeBatch(frames[3]);
    std::unique_lock<std::mutex> lock(e.mu);
    ApplyLocked(e, lock, *rseq, batch);
    e.seq.SkipTo(*rseq);
  }
  std::lock_guard<std::mutex> lock(e.mu);
  if (waited > timeout / 4) {
    // Answered, but slowly: asked again at once, a publisher that answers each replay just in time
    // and makes a gap with each batch would hold the reading thread, and every engine's events,
    // for minutes. It is asked again after the same pause as a silent one. Only the time spent
    // waiting for the publisher counts, not this thread's own decoding and applying.
    e.replay_backoff_until = Clock::now() + kReplayBackoff;
    ProblemLocked(
        e,
        "the replay endpoint kept this subscriber waiting " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
            " ms; not asked again for " + std::to_string(kReplayBackoff.count()) + " s",
        ++e.st.slow_replays);
  }
  return !hole && e.seq.expected() >= live_seq;
}

namespace {

// A reader's hold on an engine's mutex, counted in readers_waiting while it waits for it.
template <typename E>
class ReaderLock {
 public:
  explicit ReaderLock(const E& e) : e_(e) {
    e_.readers_waiting.fetch_add(1, std::memory_order_acq_rel);
    e_.mu.lock();
    e_.readers_waiting.fetch_sub(1, std::memory_order_acq_rel);
  }
  ~ReaderLock() { e_.mu.unlock(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  const E& e_;
};

}  // namespace

size_t Subscriber::MatchPrefix(int engine, std::span<const uint64_t> hashes) const {
  if (engine < 0 || engine >= engines()) return 0;
  const Engine& e = *engines_[engine];
  ReaderLock lock(e);
  return e.index.MatchPrefix(hashes);
}

std::optional<size_t> Subscriber::MatchPrefixIfExact(int engine,
                                                     std::span<const uint64_t> hashes) const {
  if (engine < 0 || engine >= engines()) return std::nullopt;
  const Engine& e = *engines_[engine];
  ReaderLock lock(e);
  if (e.st.stale || e.st.block_size_mismatch) return std::nullopt;
  return e.index.MatchPrefix(hashes);
}

bool Subscriber::Contains(int engine, uint64_t hash) const {
  if (engine < 0 || engine >= engines()) return false;
  const Engine& e = *engines_[engine];
  ReaderLock lock(e);
  return e.index.Contains(hash);
}

EngineKvStatus Subscriber::State(int engine) const {
  if (engine < 0 || engine >= engines()) return {};
  const Engine& e = *engines_[engine];
  ReaderLock lock(e);
  EngineKvStatus s = e.st;
  s.blocks = e.index.size();
  s.bounded_drops = e.index.bounded_drops();
  return s;
}

std::vector<uint64_t> Subscriber::Hashes(int engine) const {
  if (engine < 0 || engine >= engines()) return {};
  const Engine& e = *engines_[engine];
  ReaderLock lock(e);
  return e.index.Hashes();
}

}  // namespace gimbal::kvevents
