#include "router/prefix_cache.h"

#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "kvevents/publisher.h"
#include "net/eventually.h"

namespace gimbal::router {
namespace {

using Hashes = std::vector<uint64_t>;
using namespace std::chrono_literals;

std::vector<BackendConfig> Backends(int n) {
  std::vector<BackendConfig> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    out[static_cast<size_t>(i)].name = std::string("e") + std::to_string(i);
  return out;
}

std::unique_ptr<PrefixCache> Make(const PrefixCacheConfig& c, const std::vector<BackendConfig>& b) {
  auto p = PrefixCache::Create(c, b);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(*p) : nullptr;
}

std::vector<int64_t> Cached(const PrefixCache& p, const Hashes& blocks, size_t engines) {
  std::vector<EngineView> views(engines);
  for (auto& v : views) v.cached_prompt_tokens = 12345;  // overwritten
  p.Fill(blocks, views);
  std::vector<int64_t> out;
  for (const auto& v : views) out.push_back(v.cached_prompt_tokens);
  return out;
}

TEST(PrefixCacheTest, TheApproximateRecordAnswersWhatWasSentWhere) {
  PrefixCacheConfig c;
  c.index = PrefixIndexMode::kApproximate;
  c.block_tokens = 16;
  auto p = Make(c, Backends(2));
  ASSERT_TRUE(p);
  EXPECT_EQ(Cached(*p, {1, 2, 3}, 2), (std::vector<int64_t>{0, 0}));
  p->Record(0, Hashes{1, 2, 3}, 0);
  EXPECT_EQ(Cached(*p, {1, 2, 3, 4}, 2), (std::vector<int64_t>{48, 0}));
  EXPECT_EQ(Cached(*p, {1, 9, 3}, 2), (std::vector<int64_t>{16, 0}));  // a prefix: stops at 9
  EXPECT_EQ(Cached(*p, {}, 2), (std::vector<int64_t>{0, 0}));
  p->Record(1, Hashes{1, 2, 3, 4}, 48);
  EXPECT_EQ(p->looked_up_blocks(), 7);
  EXPECT_EQ(p->matched_blocks(), 3);
  EXPECT_EQ(p->EngineJson(0)["source"], "approximate");
  EXPECT_EQ(p->EngineJson(1)["approximate_blocks"], 4);
  EXPECT_EQ(PromptBlocksFor(c).block_tokens, 16);
}

TEST(PrefixCacheTest, TheRecordIsBoundedAndForgetsTheOldestFirst) {
  PrefixCacheConfig c;
  c.index = PrefixIndexMode::kApproximate;
  c.block_tokens = 4;
  c.capacity_blocks = 2;
  auto p = Make(c, Backends(1));
  ASSERT_TRUE(p);
  p->Record(0, Hashes{1, 2, 3}, 0);
  EXPECT_EQ(p->EngineJson(0)["approximate_blocks"], 2);
  EXPECT_EQ(Cached(*p, {1, 2, 3}, 1)[0], 0);  // block 1 was forgotten: no prefix held
  EXPECT_EQ(Cached(*p, {2, 3}, 1)[0], 8);
}

TEST(PrefixCacheTest, IndexNoneKnowsNothing) {
  PrefixCacheConfig c;
  c.index = PrefixIndexMode::kNone;
  auto b = Backends(1);
  b[0].kv_events = "tcp://127.0.0.1:1";  // ignored: no subscriber is made
  auto p = Make(c, b);
  ASSERT_TRUE(p);
  p->Record(0, Hashes{1, 2}, 0);
  EXPECT_EQ(Cached(*p, {1, 2}, 1)[0], 0);
  EXPECT_EQ(p->looked_up_blocks(), 0);
  EXPECT_EQ(p->EngineJson(0)["source"], "none");
  EXPECT_EQ(PromptBlocksFor(c).block_tokens, 0);
}

kvevents::EventBatch Stores(Hashes h) {
  kvevents::EventBatch b;
  kvevents::BlockStored s;
  s.block_hashes = std::move(h);
  s.block_size = 16;
  b.events.emplace_back(std::move(s));
  return b;
}

// Publishes empty batches until engine e's feed has applied one published after the call began.
bool Synced(kvevents::Publisher& pub, const PrefixCache& p, int e) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < end) {
    const int64_t seq = pub.next_seq();
    pub.Publish(kvevents::EventBatch{});
    if (gimbal::testutil::Eventually(
            [&] { return p.EngineJson(e)["events"]["last_seq"].get<int64_t>() >= seq; }, 200ms,
            2ms)) {
      return true;
    }
  }
  return false;
}

TEST(PrefixCacheTest, AnEngineWithEventsIsAnsweredFromThemAndFromTheRecordWhileStale) {
  kvevents::PublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:0";  // no replay: a subscriber that joins late is stale
  auto pub = kvevents::Publisher::Create(po);
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  (*pub)->Publish(Stores({7}));  // sent before the router listens: lost
  ASSERT_TRUE((*pub)->Flush(5));

  PrefixCacheConfig c;
  c.block_tokens = 16;
  auto b = Backends(2);
  b[0].kv_events = (*pub)->endpoint();
  auto p = Make(c, b);
  ASSERT_TRUE(p);
  p->Start();
  ASSERT_TRUE(Synced(**pub, *p, 0));
  EXPECT_EQ(p->EngineJson(0)["source"], "events (stale: approximate)");
  EXPECT_EQ(p->EngineJson(1)["source"], "approximate");
  // Stale: the record answers for engine 0.
  p->Record(0, Hashes{1, 2}, 0);
  EXPECT_EQ(Cached(*p, {1, 2, 3}, 2), (std::vector<int64_t>{32, 0}));

  // A clear makes the feed exact; from then on engine 0 is answered by what it reports.
  kvevents::EventBatch clear;
  clear.events = {kvevents::AllBlocksCleared{}};
  (*pub)->Publish(clear);
  (*pub)->Publish(Stores({1, 2, 3}));
  ASSERT_TRUE(Synced(**pub, *p, 0));
  EXPECT_EQ(p->EngineJson(0)["source"], "events");
  EXPECT_EQ(p->EngineJson(0)["events"]["blocks"], 3);
  EXPECT_EQ(Cached(*p, {1, 2, 3, 4}, 2), (std::vector<int64_t>{48, 0}));
  kvevents::EventBatch evict;
  evict.events = {kvevents::BlockRemoved{{2}, std::nullopt, std::nullopt}};
  (*pub)->Publish(evict);
  ASSERT_TRUE(Synced(**pub, *p, 0));
  // The engine dropped block 2: only block 1 is a cached prefix now, whatever was sent.
  EXPECT_EQ(Cached(*p, {1, 2, 3, 4}, 2), (std::vector<int64_t>{16, 0}));
  p->Stop();
}

TEST(PrefixCacheTest, ABadEventEndpointIsAnErrorNamingIt) {
  PrefixCacheConfig c;
  auto b = Backends(1);
  b[0].kv_events = "tcp://no-such-host.invalid:x";
  auto p = PrefixCache::Create(c, b);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("prefix_cache"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace gimbal::router
