// `gimbal engine`'s emulator publishing KV-cache events: a subscriber's per-engine index matches
// what each rank cached, and a shared prompt prefix is the same block hashes on every rank.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "engine/emulator.h"
#include "kvevents/subscriber.h"
#include "net/eventually.h"

namespace gimbal::kvevents {
namespace {

// Up to 20 s: under the sanitizers the emulator's steps and ZeroMQ's connects are slow.
bool WaitUntil(const std::function<bool()>& done) {
  return testutil::Eventually(done, std::chrono::seconds(20), std::chrono::milliseconds(5));
}

Result<std::unique_ptr<engine::Emulator>> CreateEmulator(const std::string& endpoint,
                                                         bool prefix_caching) {
  auto spec = engine::ClusterFromCatalog("qwen3-30b-a3b", "h100-sxm", "hgx-8gpu", 2);
  if (!spec.ok()) return spec.status();
  engine::EmulatorOptions o;
  o.cluster = *spec;
  o.cluster.engine.enable_prefix_caching = prefix_caching;
  o.cluster.engine.block_size = 16;  // the figures below count blocks of 16 tokens
  o.time_scale = 0;
  o.kv_events_endpoint = endpoint;
  o.kv_events_replay_endpoint = "tcp://127.0.0.1:0";
  return engine::Emulator::Create(o);
}

std::unique_ptr<engine::Emulator> MakeEmulator(const std::string& endpoint, bool prefix_caching) {
  auto e = CreateEmulator(endpoint, prefix_caching);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(*e) : nullptr;
}

// Runs one request to completion.
void RunRequest(engine::Emulator& emu, int engine, std::vector<uint64_t> prefix) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  engine::Submission s;
  s.engine = engine;
  s.prompt_tokens = 200;
  s.output_tokens = 20;
  s.prefix_hashes = std::move(prefix);
  emu.Submit(s, [&](const engine::Update& u) {
    std::lock_guard<std::mutex> lock(mu);
    done = done || u.finished;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return done; }));
}

TEST(EngineKvEventsTest, EachRankPublishesWhatItCachedAndSharedPrefixesMatch) {
  auto emu = MakeEmulator("tcp://127.0.0.1:0", true);
  ASSERT_TRUE(emu);
  SubscriberOptions so;
  // Generous: the test machine is shared (a replay that times out marks the index stale).
  so.replay_timeout_s = 5;
  for (int r = 0; r < emu->ranks(); ++r) {
    so.endpoints.push_back(emu->kv_events_endpoint(r));
    so.replay_endpoints.push_back(emu->kv_events_replay_endpoint(r));
  }
  ASSERT_NE(so.endpoints[0], so.endpoints[1]);
  auto sub = Subscriber::Create(so);
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  (*sub)->Start();
  emu->Start();

  std::vector<uint64_t> prefix;
  for (uint64_t i = 0; i < 12; ++i) prefix.push_back(0xabc000 + i);  // 12 blocks of 16 tokens
  RunRequest(*emu, 0, prefix);
  // 200 prompt + 20 output tokens: 13 full blocks, all cached on rank 0, none on rank 1. Events
  // published before the subscriber connected come back through its catch-up replay.
  ASSERT_TRUE(WaitUntil([&] { return (*sub)->State(0).blocks >= 13; })) << (*sub)->State(0).blocks;
  EXPECT_EQ((*sub)->State(1).blocks, 0u);
  EXPECT_FALSE((*sub)->State(0).stale);

  RunRequest(*emu, 1, prefix);
  ASSERT_TRUE(WaitUntil([&] { return (*sub)->State(1).blocks >= 13; }));
  const auto h0 = (*sub)->Hashes(0);
  const auto h1 = (*sub)->Hashes(1);
  std::set<uint64_t> a(h0.begin(), h0.end());
  size_t common = 0;
  for (uint64_t h : h1) common += a.count(h);
  // The 12 prompt blocks covered by the shared prefix hashes are the same blocks on both ranks;
  // the blocks holding output tokens belong to each request.
  EXPECT_EQ(common, 12u);
  EXPECT_EQ((*sub)->State(0).malformed + (*sub)->State(1).malformed, 0);
  emu->Stop();
}

TEST(EngineKvEventsTest, NeedsPrefixCachingAndAValidEndpoint) {
  auto no_cache = CreateEmulator("tcp://127.0.0.1:0", false);
  ASSERT_FALSE(no_cache.ok());
  EXPECT_NE(no_cache.status().message().find("need prefix caching"), std::string::npos)
      << no_cache.status().message();
  auto bad = CreateEmulator("not-an-endpoint", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot bind not-an-endpoint"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace gimbal::kvevents
