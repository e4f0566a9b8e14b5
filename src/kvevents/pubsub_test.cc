// Publisher -> subscriber over real ZeroMQ sockets (tcp on ephemeral ports, inproc): the index
// follows an engine's block pool; gaps, replays, late joins, out-of-order and malformed messages,
// publisher restarts, AllBlocksCleared and a subscriber that falls behind.
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "kvevents/publisher.h"
#include "kvevents/subscriber.h"
#include "net/eventually.h"
#include "sim/block_pool.h"

namespace gimbal::kvevents {
namespace {

using Hashes = std::vector<uint64_t>;
using Clock = std::chrono::steady_clock;

using testutil::Eventually;
using namespace std::chrono_literals;

EventBatch Stores(Hashes h) {
  EventBatch b;
  BlockStored s;
  s.block_hashes = std::move(h);
  s.block_size = 16;
  b.events.emplace_back(std::move(s));
  return b;
}

EventBatch Removes(Hashes h) {
  EventBatch b;
  b.events.emplace_back(BlockRemoved{std::move(h), std::nullopt, std::nullopt});
  return b;
}

std::unique_ptr<Publisher> MakePublisher(PublisherOptions o) {
  auto p = Publisher::Create(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(*p) : nullptr;
}

std::unique_ptr<Subscriber> MakeSubscriber(SubscriberOptions o) {
  o.replay_timeout_s = 5;  // generous: the test machine is shared
  auto s = Subscriber::Create(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

// A started subscriber of `pub` (and of its replay socket when `replay`).
std::unique_ptr<Subscriber> Listen(const Publisher& pub, bool replay) {
  SubscriberOptions so;
  so.endpoints = {pub.endpoint()};
  if (replay) so.replay_endpoints = {pub.replay_endpoint()};
  auto sub = MakeSubscriber(so);
  if (sub) sub->Start();
  return sub;
}

// Publishes empty batches until the subscriber has applied one published after the call began.
bool SyncOnce(Publisher& pub, Subscriber& sub, int engine) {
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < end) {
    const int64_t seq = pub.next_seq();
    pub.Publish(EventBatch{});
    if (Eventually([&] { return sub.State(engine).last_seq >= seq; }, 200ms, 2ms)) return true;
  }
  return false;
}

// The subscriber is connected and caught up, and its counters are settled. Twice: a replay can
// apply the first round's batch before it has finished (and counted itself); the second round's
// batch, published after that, is applied only once that replay has returned.
bool Sync(Publisher& pub, Subscriber& sub, int engine = 0) {
  return SyncOnce(pub, sub, engine) && SyncOnce(pub, sub, engine);
}

// Mirrors a block pool's observer calls into an EventCollector, one batch per "step".
struct PoolObserver : sim::BlockPoolObserver {
  EventCollector collector{16};
  void OnStored(uint64_t h) override { collector.Stored(h); }
  void OnRemoved(uint64_t h) override { collector.Removed(h); }
};

TEST(KvEventsPubSubTest, IndexEqualsTheEnginesCachedBlocks) {
  PublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:0";
  po.replay_endpoint = "tcp://127.0.0.1:0";
  auto pub = MakePublisher(po);
  ASSERT_TRUE(pub);
  auto sub = Listen(*pub, /*replay=*/true);
  ASSERT_TRUE(sub);

  // Requests of 1..6 blocks over a small pool; hashes from a small universe so that blocks are
  // cached, shared, evicted and cached again.
  sim::BlockPool pool(24);
  PoolObserver obs;
  pool.SetObserver(&obs);
  std::mt19937_64 rng(7);
  std::vector<std::vector<int32_t>> held;
  int64_t stored = 0, removed = 0;
  for (int step = 0; step < 400; ++step) {
    if (!held.empty() && (rng() % 3 == 0 || pool.num_free() < 6)) {
      const size_t i = rng() % held.size();
      pool.Free(held[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      std::vector<int32_t> blocks;
      pool.Allocate(static_cast<int64_t>(1 + rng() % 6), blocks);
      for (size_t k = 0; k + 1 < blocks.size(); ++k) pool.Cache(blocks[k], 1000 + rng() % 40);
      held.push_back(std::move(blocks));
    }
    if (obs.collector.empty()) continue;
    EventBatch b = obs.collector.Take(step);
    for (const Event& e : b.events) {
      stored += std::holds_alternative<BlockStored>(e);
      removed += std::holds_alternative<BlockRemoved>(e);
    }
    pub->Publish(std::move(b));
  }
  ASSERT_GT(stored, 20);
  ASSERT_GT(removed, 20);
  ASSERT_TRUE(Sync(*pub, *sub));
  size_t cached = 0;
  for (uint64_t h = 1000; h < 1040; ++h) {
    EXPECT_EQ(sub->Contains(0, h), pool.Lookup(h) >= 0) << h;
    cached += pool.Lookup(h) >= 0;
  }
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.blocks, cached);
  EXPECT_FALSE(st.stale);  // a late join is closed by the replay from sequence 0
  EXPECT_EQ(st.resets, 0);
  EXPECT_EQ(st.malformed, 0);
}

// A router that hashes prompts in blocks of 64 tokens (vLLM 0.34's default) behind engines that
// still store blocks of 16: their hashes can never be the router's, so the index is not answered
// from (the router falls back to its own record), and the problem says what to set.
TEST(KvEventsPubSubTest, EventsOfAnotherBlockSizeAreNotMatched) {
  PublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:0";
  po.replay_endpoint = "tcp://127.0.0.1:0";  // what a subscriber misses while joining is replayed
  auto pub = MakePublisher(po);
  ASSERT_TRUE(pub);
  SubscriberOptions so;
  so.endpoints = {pub->endpoint()};
  so.replay_endpoints = {pub->replay_endpoint()};
  so.expected_block_size = 64;
  auto sub = MakeSubscriber(so);
  ASSERT_TRUE(sub);
  sub->Start();
  ASSERT_TRUE(Sync(*pub, *sub));
  const Hashes chain = {11, 12, 13};
  EXPECT_EQ(sub->MatchPrefixIfExact(0, chain), std::optional<size_t>(0));  // exact and empty

  pub->Publish(Stores(chain));  // blocks of 16 tokens
  ASSERT_TRUE(Sync(*pub, *sub));
  EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.block_size, 16);
  EXPECT_TRUE(st.block_size_mismatch);
  EXPECT_EQ(st.block_size_mismatches, 1);  // one batch stored such blocks
  EXPECT_NE(st.last_problem.find("blocks of 16 tokens"), std::string::npos) << st.last_problem;
  EXPECT_NE(st.last_problem.find("block_tokens"), std::string::npos) << st.last_problem;
  EXPECT_EQ(sub->MatchPrefix(0, chain), 3u);                   // the index holds them
  EXPECT_EQ(sub->MatchPrefixIfExact(0, chain), std::nullopt);  // but they are not the reader's

  // The engine restarted with 64-token blocks: its events match again.
  EventBatch b = Stores({21, 22});
  std::get<BlockStored>(b.events[0]).block_size = 64;
  pub->Publish(std::move(b));
  ASSERT_TRUE(Sync(*pub, *sub));
  st = sub->State(0);
  EXPECT_EQ(st.block_size, 64);
  EXPECT_FALSE(st.block_size_mismatch);
  EXPECT_EQ(sub->MatchPrefixIfExact(0, Hashes{21, 22}), std::optional<size_t>(2));

  // One batch that mixes sizes is judged by every block it stores, not by its last one.
  EventBatch mixed = Stores({31});
  std::get<BlockStored>(mixed.events[0]).block_size = 16;
  mixed.events.push_back(Stores({32}).events[0]);
  std::get<BlockStored>(mixed.events[1]).block_size = 64;
  pub->Publish(std::move(mixed));
  ASSERT_TRUE(Sync(*pub, *sub));
  EXPECT_TRUE(sub->State(0).block_size_mismatch);
  EXPECT_EQ(sub->MatchPrefixIfExact(0, Hashes{21, 22}), std::nullopt);
  // A batch that only removes blocks says nothing about their size: the verdict stays.
  pub->Publish(Removes({31}));
  ASSERT_TRUE(Sync(*pub, *sub));
  EXPECT_TRUE(sub->State(0).block_size_mismatch);
  // A size of 0 is no size the router hashes in: still not matched.
  EventBatch zero = Stores({41});
  std::get<BlockStored>(zero.events[0]).block_size = 0;
  pub->Publish(std::move(zero));
  ASSERT_TRUE(Sync(*pub, *sub));
  st = sub->State(0);
  EXPECT_TRUE(st.block_size_mismatch);
  EXPECT_EQ(st.block_size_mismatches, 3);  // the 16-token batch, the mixed one, the zero one
  // The problem was set when the mismatch began and is not rewritten by every batch after it.
  EXPECT_NE(st.last_problem.find("blocks of 16 tokens"), std::string::npos) << st.last_problem;
  EventBatch again = Stores({51});
  std::get<BlockStored>(again.events[0]).block_size = 64;
  pub->Publish(std::move(again));
  ASSERT_TRUE(Sync(*pub, *sub));
  EXPECT_FALSE(sub->State(0).block_size_mismatch);
  EXPECT_EQ(sub->MatchPrefixIfExact(0, Hashes{51}), std::optional<size_t>(1));

  // Without an expected size, any size is matched.
  auto pub2 = MakePublisher(po);
  ASSERT_TRUE(pub2);
  SubscriberOptions any;
  any.endpoints = {pub2->endpoint()};
  any.replay_endpoints = {pub2->replay_endpoint()};
  auto open = MakeSubscriber(any);
  ASSERT_TRUE(open);
  open->Start();
  ASSERT_TRUE(Sync(*pub2, *open));
  pub2->Publish(Stores(chain));
  ASSERT_TRUE(Sync(*pub2, *open));
  EXPECT_FALSE(open->State(0).block_size_mismatch);
  EXPECT_EQ(open->MatchPrefixIfExact(0, chain), std::optional<size_t>(3));
}

TEST(KvEventsPubSubTest, ALateJoinerRecoversTheHistoryByReplay) {
  PublisherOptions po;
  po.endpoint = "inproc://kv-late";
  po.replay_endpoint = "inproc://kv-late-replay";
  auto pub = MakePublisher(po);
  ASSERT_TRUE(pub);
  // Published before anyone listens: only a replay can bring these back.
  pub->Publish(Stores({1, 2, 3}));
  pub->Publish(Removes({2}));
  ASSERT_TRUE(pub->Flush(5));
  auto sub = Listen(*pub, /*replay=*/true);
  ASSERT_TRUE(sub);
  ASSERT_TRUE(Sync(*pub, *sub));
  EXPECT_EQ(sub->Hashes(0), (Hashes{1, 3}));
  const EngineKvStatus st = sub->State(0);
  EXPECT_GE(st.gaps, 1);
  EXPECT_GE(st.replays, 1);
  EXPECT_FALSE(st.stale);
  EXPECT_GE(pub->replays_served(), 1);
  const Hashes prompt{1, 3, 4};
  EXPECT_EQ(sub->MatchPrefix(0, prompt), 2u);
  EXPECT_EQ(sub->MatchPrefix(1, prompt), 0u);  // no such engine
}

// A peer sending replay requests without pause cannot hold up the live stream: the publisher
// serves one request per round, as vLLM does. Before, it served every request waiting, and a
// flood let 0 live batches out in 10 s.
TEST(KvEventsPubSubTest, AFloodOfReplayRequestsDoesNotHoldUpLiveBatches) {
  PublisherOptions po;
  po.endpoint = "inproc://kv-flood";
  po.replay_endpoint = "inproc://kv-flood-replay";
  auto pub = MakePublisher(po);
  ASSERT_TRUE(pub);
  void* dealer = zmq_socket(ZmqContext(), ZMQ_DEALER);
  ASSERT_NE(dealer, nullptr);
  int unlimited = 0;
  zmq_setsockopt(dealer, ZMQ_SNDHWM, &unlimited, sizeof(unlimited));
  ASSERT_EQ(zmq_connect(dealer, pub->replay_endpoint().c_str()), 0);
  constexpr int kRequests = 5000;
  const std::string from_zero = EncodeSeq(0);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_GE(zmq_send(dealer, "", 0, ZMQ_SNDMORE), 0);
    ASSERT_GE(zmq_send(dealer, from_zero.data(), from_zero.size(), 0), 0);
  }
  ASSERT_TRUE(Eventually([&] { return pub->replays_served() >= 1; }, 5s));
  pub->Publish(Stores({1}));
  ASSERT_TRUE(pub->Flush(5));
  // Served one a round (a round every 2 ms while idle): far from all of them by now.
  EXPECT_LT(pub->replays_served(), kRequests / 2);
  zmq_close(dealer);
}

TEST(KvEventsPubSubTest, ALateJoinerCatchesUpWithoutAnotherBatch) {
  // Everything was published before the subscriber connected, and nothing follows: no gap ever
  // shows, so only the catch-up of a quiet engine can bring the index up to date.
  for (const double catch_up : {0.2, 0.0}) {
    PublisherOptions po;
    po.endpoint = catch_up > 0 ? "inproc://kv-catchup" : "inproc://kv-nocatchup";
    po.replay_endpoint = po.endpoint + "-replay";
    auto pub = MakePublisher(po);
    ASSERT_TRUE(pub);
    pub->Publish(Stores({1, 2, 3}));
    ASSERT_TRUE(pub->Flush(5));
    SubscriberOptions so;
    so.endpoints = {pub->endpoint()};
    so.replay_endpoints = {pub->replay_endpoint()};
    so.catch_up_s = catch_up;
    auto sub = MakeSubscriber(so);
    ASSERT_TRUE(sub);
    sub->Start();
    if (catch_up > 0) {
      ASSERT_TRUE(Eventually([&] { return sub->State(0).blocks == 3; }));
      EXPECT_EQ(sub->Hashes(0), (Hashes{1, 2, 3}));
      EXPECT_FALSE(sub->State(0).stale);
      // Counted after the replay's end marker went out: the subscriber can be a moment ahead.
      EXPECT_TRUE(Eventually([&] { return pub->replays_served() >= 1; }));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      EXPECT_EQ(sub->State(0).blocks, 0u);  // off: the late joiner does not know what it missed
    }
  }
}

TEST(KvEventsPubSubTest, AGapWithoutReplayResetsTheIndexAndMarksItStale) {
  PublisherOptions po;
  po.endpoint = "inproc://kv-noreplay";
  auto pub = MakePublisher(po);
  pub->Publish(Stores({1, 2, 3}));
  ASSERT_TRUE(pub->Flush(5));
  auto sub = Listen(*pub, /*replay=*/false);
  ASSERT_TRUE(sub);
  ASSERT_TRUE(Sync(*pub, *sub));
  EXPECT_TRUE(sub->Hashes(0).empty());
  EngineKvStatus st = sub->State(0);
  EXPECT_TRUE(st.stale);
  EXPECT_EQ(st.resets, 1);
  EXPECT_NE(st.last_problem.find("no replay endpoint"), std::string::npos) << st.last_problem;
  // AllBlocksCleared makes the index exact again.
  EventBatch clear;
  clear.events = {AllBlocksCleared{}};
  pub->Publish(clear);
  pub->Publish(Stores({9}));
  ASSERT_TRUE(Sync(*pub, *sub));
  st = sub->State(0);
  EXPECT_FALSE(st.stale);
  EXPECT_EQ(sub->Hashes(0), Hashes{9});
}

TEST(KvEventsPubSubTest, AReplayBufferTooShortForTheGapResets) {
  PublisherOptions po;
  po.endpoint = "inproc://kv-short";
  po.replay_endpoint = "inproc://kv-short-replay";
  po.buffer_steps = 2;
  auto pub = MakePublisher(po);
  for (uint64_t h = 1; h <= 10; ++h) pub->Publish(Stores({h}));
  ASSERT_TRUE(pub->Flush(5));
  auto sub = Listen(*pub, /*replay=*/true);
  ASSERT_TRUE(sub);
  ASSERT_TRUE(Sync(*pub, *sub));
  const EngineKvStatus st = sub->State(0);
  EXPECT_TRUE(st.stale);
  EXPECT_EQ(st.resets, 1);
  EXPECT_EQ(st.replays, 0);
  EXPECT_FALSE(sub->Contains(0, 1));  // batch 0 was no longer kept
}

TEST(KvEventsPubSubTest, APublisherRestartResetsThatEnginesIndexOnly) {
  PublisherOptions a0, b0;
  a0.endpoint = "tcp://127.0.0.1:0";
  b0.endpoint = "tcp://127.0.0.1:0";
  b0.data_parallel_rank = 1;
  auto a = MakePublisher(a0);
  auto b = MakePublisher(b0);
  SubscriberOptions so;
  so.endpoints = {a->endpoint(), b->endpoint()};
  auto sub = MakeSubscriber(so);
  ASSERT_TRUE(sub);
  sub->Start();
  ASSERT_TRUE(Sync(*a, *sub, 0));
  ASSERT_TRUE(Sync(*b, *sub, 1));
  for (int i = 0; i < 500; ++i) a->Publish(Stores({100 + static_cast<uint64_t>(i % 5)}));
  b->Publish(Stores({200}));
  ASSERT_TRUE(Sync(*a, *sub, 0));
  ASSERT_TRUE(Sync(*b, *sub, 1));
  ASSERT_TRUE(sub->Contains(0, 104));

  // Engine 0 restarts on the same port: its numbering starts again at 0.
  const int64_t gaps_before = sub->State(0).gaps;
  const std::string endpoint = a->endpoint();
  a.reset();
  PublisherOptions again;
  again.endpoint = endpoint;
  a = MakePublisher(again);
  ASSERT_TRUE(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the subscriber reconnects
  ASSERT_TRUE(Eventually([&] {
    a->Publish(Stores({300}));
    // Batch 300 is applied last, after the restart, the gap and the reset are all counted.
    return Eventually([&] { return sub->Contains(0, 300); }, 50ms, 2ms);
  }));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.restarts, 1);
  EXPECT_FALSE(sub->Contains(0, 104));  // what the old process cached is gone
  EXPECT_TRUE(sub->Contains(0, 300));
  // Exact when the restart was seen from its first batch; a gap back to 0 without a replay
  // endpoint otherwise, and then stale.
  EXPECT_EQ(st.stale, st.gaps > gaps_before) << st.last_problem;
  EXPECT_TRUE(sub->Contains(1, 200));  // the other engine is untouched
  EXPECT_EQ(sub->State(1).restarts, 0);
}

TEST(KvEventsPubSubTest, ARestartSeenLateIsReplayedFromZero) {
  PublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:0";
  po.replay_endpoint = "tcp://127.0.0.1:0";
  auto pub = MakePublisher(po);
  auto sub = Listen(*pub, /*replay=*/true);
  ASSERT_TRUE(sub);
  // Far ahead of what the new process will reach while the subscriber reconnects: the protocol
  // has no epoch, so only a number going back tells a restart. Published before the subscriber
  // listens, these come by replay, which settles 0..500: only the disconnection tells the
  // subscriber that small numbers afterwards are a restart, not late duplicates.
  for (uint64_t h = 1; h <= 500; ++h) pub->Publish(Stores({h}));
  ASSERT_TRUE(Sync(*pub, *sub));
  ASSERT_TRUE(sub->Contains(0, 500));

  po.endpoint = pub->endpoint();
  po.replay_endpoint = pub->replay_endpoint();
  pub.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the engine comes back
  pub = MakePublisher(po);
  ASSERT_TRUE(pub);
  // Sent while the subscriber is most likely still reconnecting: lost live, kept for replay.
  for (uint64_t h = 10001; h <= 10005; ++h) pub->Publish(Stores({h}));
  ASSERT_TRUE(pub->Flush(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(Eventually([&] {  // until the subscriber is back
    pub->Publish(Stores({10006}));
    return Eventually([&] { return sub->Contains(0, 10006); }, 50ms, 2ms);
  }));
  const EngineKvStatus st = sub->State(0);
  // One restart, or two when live copies of the old process's batches (already replayed) were
  // still queued behind the disconnection: read after it, they go back too. Either way the index
  // ends exact with the new process's blocks only (below).
  EXPECT_GE(st.restarts, 1);
  EXPECT_LE(st.restarts, 2);
  EXPECT_GE(st.reconnects, 1);
  EXPECT_FALSE(st.stale) << st.last_problem;
  EXPECT_EQ(st.blocks, 6u);
  for (uint64_t h = 10001; h <= 10006; ++h) EXPECT_TRUE(sub->Contains(0, h)) << h;
  EXPECT_FALSE(sub->Contains(0, 500));
}

TEST(KvEventsPubSubTest, ASlowSubscriberLosesBatchesNotThePublishersTime) {
  for (const bool replay : {false, true}) {
    SCOPED_TRACE(replay ? "with replay" : "without replay");
    PublisherOptions po;
    po.endpoint = replay ? "inproc://kv-slow-r" : "inproc://kv-slow";
    if (replay) po.replay_endpoint = "inproc://kv-slow-r-replay";
    po.hwm = 10;
    SubscriberOptions so;
    auto pub = MakePublisher(po);
    so.endpoints = {pub->endpoint()};
    if (replay) so.replay_endpoints = {pub->replay_endpoint()};
    so.rcv_hwm = 10;
    auto sub = MakeSubscriber(so);  // connected, but not reading yet
    ASSERT_TRUE(sub);
    const auto t0 = Clock::now();
    constexpr uint64_t kBatches = 2000;
    for (uint64_t h = 0; h < kBatches; ++h) ASSERT_TRUE(pub->Publish(Stores({h})));
    ASSERT_TRUE(pub->Flush(10));  // everything went out although nobody read it
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
    EXPECT_EQ(pub->sent(), static_cast<int64_t>(kBatches));
    EXPECT_EQ(pub->dropped(), 0);

    sub->Start();
    ASSERT_TRUE(Sync(*pub, *sub));
    const EngineKvStatus st = sub->State(0);
    EXPECT_GE(st.gaps, 1);
    if (replay) {
      EXPECT_EQ(st.blocks, kBatches);  // the replay brought back every dropped batch
      EXPECT_FALSE(st.stale);
      EXPECT_GE(st.replays, 1);
    } else {
      EXPECT_LT(st.blocks, 100u);  // at most what the high-water marks held
      EXPECT_TRUE(st.stale);
      EXPECT_GE(st.resets, 1);
    }
  }
}

TEST(KvEventsPubSubTest, APublisherQueueThatOverflowsDropsAndTheGapShows) {
  PublisherOptions po;
  po.endpoint = "inproc://kv-overflow";
  po.max_queue = 1;
  auto pub = MakePublisher(po);
  int64_t dropped = 0;
  for (int i = 0; i < 5000; ++i) dropped += pub->Publish(Stores({1})) ? 0 : 1;
  EXPECT_EQ(pub->dropped(), dropped);
  EXPECT_EQ(pub->next_seq(), 5000);  // dropped batches keep their numbers
  ASSERT_TRUE(pub->Flush(5));
  EXPECT_EQ(pub->sent() + pub->dropped(), 5000);
}

// The endpoint a socket bound last, with its port.
std::string LastEndpoint(void* s) {
  char buf[256];
  size_t len = sizeof(buf);
  zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, buf, &len);
  return std::string(buf, len - 1);
}

// A raw PUB socket, to send what a correct publisher never would.
class RawPub {
 public:
  RawPub() {
    s_ = zmq_socket(ZmqContext(), ZMQ_PUB);
    EXPECT_EQ(zmq_bind(s_, "tcp://127.0.0.1:0"), 0);
    endpoint_ = LastEndpoint(s_);
  }
  ~RawPub() { zmq_close(s_); }
  void Send(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      zmq_send(s_, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0);
    }
  }
  void Batch(int64_t seq, const EventBatch& b) { Send({"", EncodeSeq(seq), EncodeBatch(b)}); }
  // Sends empty batches numbered from `seq` until the subscriber applied one; the next number.
  int64_t Connect(Subscriber& sub, int engine = 0) {
    int64_t seq = 0;
    while (seq < 5000) {
      Batch(seq, EventBatch{});
      if (Eventually([&] { return sub.State(engine).batches > 0; }, 20ms, 2ms)) return seq + 1;
      ++seq;
    }
    ADD_FAILURE() << "subscriber never connected";
    return seq;
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void* s_;
  std::string endpoint_;
};

// A started subscriber of a raw publisher (no replay).
std::unique_ptr<Subscriber> Listen(const RawPub& raw) {
  SubscriberOptions so;
  so.endpoints = {raw.endpoint()};
  auto sub = MakeSubscriber(so);
  if (sub) sub->Start();
  return sub;
}

// A raw publisher and a started subscriber that has heard from it: `seq` is the next number to
// send, `before` the subscriber's counters at that point.
class KvEventsRawFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sub = Listen(raw);
    ASSERT_TRUE(sub);
    seq = raw.Connect(*sub);
    before = sub->State(0);
  }
  RawPub raw;
  std::unique_ptr<Subscriber> sub;
  int64_t seq = 0;
  EngineKvStatus before;
};

// A ROUTER socket on an ephemeral loopback port, standing in for a publisher's replay endpoint
// that a test answers itself, late or never.
class RawRouter {
 public:
  RawRouter() {
    s_ = zmq_socket(ZmqContext(), ZMQ_ROUTER);
    EXPECT_EQ(zmq_bind(s_, "tcp://127.0.0.1:0"), 0);
    endpoint_ = LastEndpoint(s_);
  }
  ~RawRouter() { zmq_close(s_); }
  RawRouter(const RawRouter&) = delete;
  RawRouter& operator=(const RawRouter&) = delete;
  void* socket() const { return s_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void* s_;
  std::string endpoint_;
};

// A started subscriber with `so` as given (MakeSubscriber sets a replay timeout of its own).
std::unique_ptr<Subscriber> StartAsGiven(const SubscriberOptions& so) {
  auto created = Subscriber::Create(so);
  EXPECT_TRUE(created.ok()) << created.status().ToString();
  if (!created.ok()) return nullptr;
  (*created)->Start();
  return std::move(*created);
}

TEST_F(KvEventsRawFeedTest, MalformedMessagesAreCountedAndSkipped) {
  raw.Send({"", EncodeSeq(seq)});                                // two frames
  raw.Send({"", "1234567", EncodeBatch(EventBatch{})});          // a 7-byte sequence
  raw.Send({"", EncodeSeq(seq++), "\xc1 not msgpack"});          // a payload that does not decode
  raw.Send({"", EncodeSeq(seq++), std::string("\x92\xcb", 2)});  // truncated
  raw.Batch(seq++, Stores({77}));
  ASSERT_TRUE(Eventually([&] { return sub->Contains(0, 77); }));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.malformed, 4);
  EXPECT_TRUE(st.stale);  // two payloads were lost
  EXPECT_EQ(st.last_seq, seq - 1);
  EXPECT_FALSE(st.last_problem.empty());
}

TEST(KvEventsPubSubTest, AFrameOverTheByteLimitDropsTheConnectionNotTheSubscriber) {
  RawPub raw;
  SubscriberOptions so;
  so.endpoints = {raw.endpoint()};
  so.max_message_bytes = 64 << 10;
  auto sub = MakeSubscriber(so);
  ASSERT_TRUE(sub);
  sub->Start();
  int64_t seq = raw.Connect(*sub);
  Hashes big(20000);  // about 180 KB of msgpack
  for (size_t i = 0; i < big.size(); ++i) big[i] = 100000 + i;
  raw.Batch(seq++, Stores(big));
  // ZeroMQ drops the connection and reconnects by itself; batches sent meanwhile are lost.
  const auto end = Clock::now() + 10s;
  while (!sub->Contains(0, 77) && Clock::now() < end) {
    raw.Batch(seq++, Stores({77}));
    Eventually([&] { return sub->Contains(0, 77); }, 20ms, 2ms);
  }
  ASSERT_TRUE(sub->Contains(0, 77));
  // The batch sent last may still be on its way when an earlier one brought 77 in.
  EXPECT_TRUE(Eventually([&] { return sub->State(0).last_seq == seq - 1; }));
  const EngineKvStatus st = sub->State(0);
  EXPECT_FALSE(sub->Contains(0, big[0]));
  EXPECT_GE(st.reconnects, 1);
  EXPECT_GE(st.gaps, 1);  // the oversized batch (at least) is missing
  EXPECT_TRUE(st.stale);
  EXPECT_EQ(st.last_seq, seq - 1);
}

TEST_F(KvEventsRawFeedTest, AMessageOfManyFramesIsReadThroughAndSkipped) {
  std::vector<std::string> flood(1000, std::string(16, 'x'));
  flood[1] = EncodeSeq(seq);
  raw.Send(flood);
  raw.Batch(seq, Stores({78}));
  ASSERT_TRUE(Eventually([&] { return sub->Contains(0, 78); }));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.malformed, 1);
  EXPECT_NE(st.last_problem.find("message of 1000 frame(s) skipped"), std::string::npos)
      << st.last_problem;
  EXPECT_EQ(st.last_seq, seq);
  EXPECT_EQ(st.gaps - before.gaps, 0);
  EXPECT_EQ(st.resets - before.resets, 0);
}

TEST_F(KvEventsRawFeedTest, ASequenceNumberWithNoSuccessorIsMalformed) {
  raw.Batch(INT64_MAX, Stores({5}));
  raw.Batch(seq, Stores({6}));
  raw.Batch(seq + 1, Stores({7}));
  ASSERT_TRUE(Eventually([&] { return sub->State(0).last_seq == seq + 1; }));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.malformed, 1);
  EXPECT_EQ(st.gaps - before.gaps, 0);
  EXPECT_EQ(st.resets - before.resets, 0);
  EXPECT_EQ(sub->Hashes(0), (Hashes{6, 7}));
}

TEST(KvEventsPubSubTest, ASilentReplayEndpointDoesNotHoldUpTheOtherEngines) {
  // Engine 0's replay endpoint is a ROUTER that never answers; engine 1 is healthy.
  RawRouter silent;
  RawPub raw0, raw1;
  SubscriberOptions so;
  so.endpoints = {raw0.endpoint(), raw1.endpoint()};
  so.replay_endpoints = {silent.endpoint(), ""};
  so.replay_timeout_s = 0.5;
  so.catch_up_s = 0;
  auto sub = StartAsGiven(so);
  ASSERT_TRUE(sub);
  int64_t s0 = raw0.Connect(*sub, 0);
  const int64_t s1 = raw1.Connect(*sub, 1);
  const EngineKvStatus before = sub->State(0);
  // Twenty gaps on engine 0: one replay at most waits out its timeout, the rest reset at once.
  for (int k = 0; k < 20; ++k) {
    s0 += 2;
    raw0.Batch(s0, Stores({static_cast<uint64_t>(500 + k)}));
  }
  raw1.Batch(s1, Stores({99}));
  EXPECT_TRUE(Eventually([&] { return sub->Contains(1, 99); }, 3s));
  ASSERT_TRUE(Eventually([&] { return sub->State(0).last_seq == s0; }, 5s));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(st.gaps - before.gaps, 20);
  EXPECT_EQ(st.resets - before.resets, 20);
  EXPECT_EQ(st.replays, 0);
  EXPECT_GE(st.replay_timeouts, 1);
  EXPECT_LE(st.replay_timeouts - before.replay_timeouts, 1);
  EXPECT_TRUE(st.stale);
  EXPECT_TRUE(sub->Contains(0, 519));
}

// A replay endpoint that answers every request, but only just before the timeout, is treated
// as a silent one once it was slow: before, each of a publisher's gaps waited out such a replay,
// and the one reading thread left every other engine's events unread for minutes.
TEST(KvEventsPubSubTest, ASlowReplayEndpointIsAskedOnceNotAtEveryGap) {
  RawRouter router;
  void* slow = router.socket();
  std::atomic<int> asked{0};
  std::atomic<bool> done{false};
  // Answers each request with the end marker (nothing kept) after 1 s of the 3 s allowed: slow
  // (over a quarter), and far from the timeout on a loaded machine.
  std::thread answerer([&] {
    while (!done) {
      zmq_pollitem_t item{slow, 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 20) <= 0) continue;
      std::vector<std::string> frames;
      int more = 1;
      while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, slow, 0) < 0) break;
        frames.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
      }
      ++asked;
      std::this_thread::sleep_for(1s);
      const std::string end = EncodeSeq(-1);
      zmq_send(slow, frames[0].data(), frames[0].size(), ZMQ_SNDMORE);
      zmq_send(slow, "", 0, ZMQ_SNDMORE);
      zmq_send(slow, "", 0, ZMQ_SNDMORE);
      zmq_send(slow, end.data(), end.size(), ZMQ_SNDMORE);
      zmq_send(slow, "", 0, 0);
    }
  });
  RawPub raw;
  SubscriberOptions so;
  so.endpoints = {raw.endpoint()};
  so.replay_endpoints = {router.endpoint()};
  so.replay_timeout_s = 3;
  so.catch_up_s = 0;
  auto sub = StartAsGiven(so);
  ASSERT_TRUE(sub);
  int64_t seq = raw.Connect(*sub, 0);
  const EngineKvStatus before = sub->State(0);
  // Ten gaps: the first is replayed (slowly; or a gap while connecting was); the rest, within the
  // pause, reset at once.
  for (int k = 0; k < 10; ++k) {
    seq += 2;
    raw.Batch(seq, Stores({static_cast<uint64_t>(500 + k)}));
  }
  ASSERT_TRUE(Eventually([&] { return sub->State(0).last_seq == seq; }, 10s));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(asked.load(), 1);
  EXPECT_EQ(st.slow_replays, 1);
  EXPECT_EQ(st.replay_timeouts, 0);
  EXPECT_EQ(st.gaps - before.gaps, 10);
  EXPECT_TRUE(st.stale);
  EXPECT_TRUE(sub->Contains(0, 509));
  sub.reset();
  done = true;
  answerer.join();
}

TEST(KvEventsPubSubTest, StopDoesNotWaitOutAReplay) {
  RawRouter silent;
  RawPub raw;
  SubscriberOptions so;
  so.endpoints = {raw.endpoint()};
  so.replay_endpoints = {silent.endpoint()};
  so.replay_timeout_s = 30;
  so.catch_up_s = 0;
  auto sub = StartAsGiven(so);
  ASSERT_TRUE(sub);
  // Batches from 5 on: the first one heard is a gap, and its replay waits on the silent ROUTER.
  for (int64_t seq = 5; sub->State(0).gaps == 0 && seq < 5000; ++seq) {
    raw.Batch(seq, EventBatch{});
    Eventually([&] { return sub->State(0).gaps > 0; }, 20ms, 2ms);
  }
  ASSERT_EQ(sub->State(0).gaps, 1);
  const auto t0 = Clock::now();
  sub->Stop();
  EXPECT_LT(Clock::now() - t0, 2s);
}

TEST_F(KvEventsRawFeedTest, OutOfOrderBatchesAreAGapThenLateDuplicates) {
  raw.Batch(seq, Stores({10}));
  raw.Batch(seq + 2, Stores({12}));  // ahead: a gap (no replay): reset, stale
  raw.Batch(seq + 1, Stores({11}));  // late: skipped, not a restart
  raw.Batch(seq + 3, Stores({13}));
  ASSERT_TRUE(Eventually([&] { return sub->State(0).last_seq == seq + 3; }));
  const EngineKvStatus st = sub->State(0);
  EXPECT_EQ(sub->Hashes(0), (Hashes{12, 13}));
  EXPECT_EQ(st.gaps - before.gaps, 1);
  EXPECT_EQ(st.resets - before.resets, 1);
  EXPECT_EQ(st.duplicates - before.duplicates, 1);
  EXPECT_EQ(st.restarts, 0);
  EXPECT_TRUE(st.stale);
}

TEST(KvEventsPubSubTest, EndpointsPerRankFollowVllm) {
  EXPECT_EQ(*EndpointForRank("tcp://*:5557", 0), "tcp://*:5557");
  EXPECT_EQ(*EndpointForRank("tcp://127.0.0.1:5557", 3), "tcp://127.0.0.1:5560");
  EXPECT_EQ(*EndpointForRank("tcp://127.0.0.1:0", 3), "tcp://127.0.0.1:0");
  EXPECT_EQ(*EndpointForRank("inproc://cache", 2), "inproc://cache_dp2");
  EXPECT_FALSE(EndpointForRank("tcp://127.0.0.1:x", 1).ok());
  EXPECT_FALSE(EndpointForRank("udp://host:1", 1).ok());
  EXPECT_FALSE(EndpointForRank("tcp://h:65535", 1).ok());
  EXPECT_FALSE(Publisher::Create(PublisherOptions{}).ok());
  PublisherOptions bad;
  bad.endpoint = "nonsense";
  EXPECT_FALSE(Publisher::Create(bad).ok());
  EXPECT_FALSE(Subscriber::Create(SubscriberOptions{}).ok());
}

}  // namespace
}  // namespace gimbal::kvevents
