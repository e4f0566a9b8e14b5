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

kvevents::EventBatch Stores(Hashes h, int64_t block_size = 16) {
  kvevents::EventBatch b;
  kvevents::BlockStored s;
  s.block_hashes = std::move(h);
  s.block_size = block_size;
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

// A KV-event publisher on an ephemeral TCP port, with a replay socket when `replay`.
std::unique_ptr<kvevents::Publisher> TcpPublisher(bool replay) {
  kvevents::PublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:0";
  if (replay) po.replay_endpoint = "tcp://127.0.0.1:0";
  auto pub = kvevents::Publisher::Create(po);
  EXPECT_TRUE(pub.ok()) << pub.status().ToString();
  return pub.ok() ? std::move(*pub) : nullptr;
}

TEST(PrefixCacheTest, AnEngineWithEventsIsAnsweredFromThemAndFromTheRecordWhileStale) {
  auto pub = TcpPublisher(/*replay=*/false);  // a subscriber that joins late is stale
  ASSERT_TRUE(pub);
  pub->Publish(Stores({7}));  // sent before the router listens: lost
  ASSERT_TRUE(pub->Flush(5));

  PrefixCacheConfig c;
  c.block_tokens = 16;
  auto b = Backends(2);
  b[0].kv_events = pub->endpoint();
  auto p = Make(c, b);
  ASSERT_TRUE(p);
  p->Start();
  ASSERT_TRUE(Synced(*pub, *p, 0));
  EXPECT_EQ(p->EngineJson(0)["source"], "events (stale: approximate)");
  EXPECT_EQ(p->EngineJson(1)["source"], "approximate");
  // Stale: the record answers for engine 0.
  p->Record(0, Hashes{1, 2}, 0);
  EXPECT_EQ(Cached(*p, {1, 2, 3}, 2), (std::vector<int64_t>{32, 0}));

  // A clear makes the feed exact; from then on engine 0 is answered by what it reports.
  kvevents::EventBatch clear;
  clear.events = {kvevents::AllBlocksCleared{}};
  pub->Publish(clear);
  pub->Publish(Stores({1, 2, 3}));
  ASSERT_TRUE(Synced(*pub, *p, 0));
  EXPECT_EQ(p->EngineJson(0)["source"], "events");
  EXPECT_EQ(p->EngineJson(0)["events"]["blocks"], 3);
  EXPECT_EQ(Cached(*p, {1, 2, 3, 4}, 2), (std::vector<int64_t>{48, 0}));
  kvevents::EventBatch evict;
  evict.events = {kvevents::BlockRemoved{{2}, std::nullopt, std::nullopt}};
  pub->Publish(evict);
  ASSERT_TRUE(Synced(*pub, *p, 0));
  // The engine dropped block 2: only block 1 is a cached prefix now, whatever was sent.
  EXPECT_EQ(Cached(*p, {1, 2, 3, 4}, 2), (std::vector<int64_t>{16, 0}));

  // The engine now stores blocks of 64 tokens (vLLM 0.34's default) while the router hashes in
  // 16: its events cannot name the router's blocks, so the record answers, and the engine's row
  // says why.
  pub->Publish(Stores({9}, 64));
  ASSERT_TRUE(Synced(*pub, *p, 0));
  const auto row = p->EngineJson(0);
  EXPECT_EQ(row["source"], "events (other block size: approximate)") << row.dump();
  EXPECT_EQ(row["events"]["block_size"], 64);
  EXPECT_EQ(row["events"]["block_size_mismatch"], true);
  EXPECT_NE(row["events"]["last_problem"].get<std::string>().find("block_tokens"),
            std::string::npos)
      << row.dump();
  EXPECT_EQ(Cached(*p, {1, 2, 3, 4}, 2), (std::vector<int64_t>{32, 0}));  // the record: {1, 2}
  p->Stop();
}

wire::CompletionRequest Parsed(const std::string& body, const PrefixCacheConfig& c) {
  auto r = wire::ParseCompletionRequest(body, false, PromptBlocksFor(c));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : wire::CompletionRequest{};
}

// In front of real vLLM engines: a prompt of token ids is named as vLLM names its blocks and
// matched against their events; a text prompt, which the router cannot tokenize, only against
// the router's own record.
TEST(PrefixCacheTest, VllmHashesMatchTokenIdPromptsAgainstTheEnginesEvents) {
  auto pub = TcpPublisher(/*replay=*/true);  // what the subscriber misses while joining is replayed
  ASSERT_TRUE(pub);
  PrefixCacheConfig c;
  c.block_tokens = 4;
  c.replay_timeout_s = 5;  // generous: the test machine is shared (a timeout marks it stale)
  c.hash = PrefixCacheConfig::Hash::kVllm;
  c.python_hash_seed = "0";
  auto b = Backends(2);
  b[0].kv_events = pub->endpoint();
  b[0].kv_events_replay = pub->replay_endpoint();
  auto p = Make(c, b);
  ASSERT_TRUE(p);
  p->Start();
  ASSERT_TRUE(Synced(*pub, *p, 0));

  const std::vector<int64_t> ids = {11, 12, 13, 14, 15, 16, 17, 18, 19};
  kvevents::VllmHashConfig hc;
  hc.python_hash_seed = "0";
  auto hasher = kvevents::VllmBlockHasher::Create(hc);
  ASSERT_TRUE(hasher.ok());
  const std::vector<uint64_t> engine_hashes = hasher->Hashes(ids, 4);
  ASSERT_EQ(engine_hashes.size(), 2u);
  pub->Publish(Stores(engine_hashes, 4));  // what the vLLM engine 0 cached, in blocks of 4
  ASSERT_TRUE(Synced(*pub, *p, 0));
  ASSERT_EQ(p->EngineJson(0)["source"], "events") << p->EngineJson(0).dump();

  const PromptBlocks as_ids =
      p->Blocks(Parsed(R"({"prompt":[11,12,13,14,15,16,17,18,19,20,21,22]})", c));
  EXPECT_TRUE(as_ids.match_events);
  ASSERT_EQ(as_ids.hashes.size(), 3u);
  EXPECT_EQ(as_ids.hashes[0], engine_hashes[0]);
  EXPECT_EQ(as_ids.hashes[1], engine_hashes[1]);
  std::vector<EngineView> views(2);
  p->Fill(as_ids.hashes, views, as_ids.match_events);
  EXPECT_EQ(views[0].cached_prompt_tokens, 8);
  EXPECT_EQ(views[1].cached_prompt_tokens, 0);

  const PromptBlocks as_text =
      p->Blocks(Parsed(std::string(R"({"prompt":")") + std::string(64, 'a') + "\"}", c));
  EXPECT_FALSE(as_text.match_events);
  EXPECT_EQ(as_text.hashes.size(), 4u);  // 64 characters at 4 per token: 4 blocks of 4 tokens
  p->Fill(as_text.hashes, views, as_text.match_events);
  EXPECT_EQ(views[0].cached_prompt_tokens, 0);
  p->Record(0, as_text.hashes, 0);
  p->Fill(as_text.hashes, views, as_text.match_events);
  EXPECT_EQ(views[0].cached_prompt_tokens, 16);  // the record answers for text
  p->Stop();
}

TEST(PrefixCacheTest, AVllmHashThatCannotBeReproducedIsAnError) {
  PrefixCacheConfig c;
  c.hash = PrefixCacheConfig::Hash::kVllm;
  c.vllm_hash_algo = "xxhash";  // seeded at random by vLLM without PYTHONHASHSEED
  auto p = PrefixCache::Create(c, Backends(1));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("prefix_cache"), std::string::npos) << p.status().message();
  c.python_hash_seed = "7";
  EXPECT_TRUE(PrefixCache::Create(c, Backends(1)).ok());
}

// A huge prompt counts only its leading capacity_blocks / 8 blocks: it costs no more to look up
// and cannot push other prompts out of an engine's record.
TEST(PrefixCacheTest, AHugePromptCountsOnlyItsLeadingBlocks) {
  PrefixCacheConfig c;
  c.index = PrefixIndexMode::kApproximate;
  c.block_tokens = 4;
  c.capacity_blocks = 80;  // 10 blocks a prompt
  auto p = Make(c, Backends(1));
  ASSERT_TRUE(p);
  const PromptBlocks huge = p->Blocks(Parsed(
      std::string(R"({"prompt":")") + std::string(16 * 1000, 'h') + "\"}", c));  // 1,000 blocks
  EXPECT_EQ(huge.hashes.size(), 10u);
  p->Record(0, Hashes{1, 2, 3}, 0);
  p->Record(0, huge.hashes, 0);
  EXPECT_EQ(Cached(*p, {1, 2, 3}, 1)[0], 12);  // still held: 13 of 80 used
}

// Chat separators are hashed but are not prompt tokens: only whole blocks of the prompt's tokens
// count, as the engine counts them.
TEST(PrefixCacheTest, ChatBlocksAreTheEnginesWholeBlocks) {
  PrefixCacheConfig c;
  c.index = PrefixIndexMode::kApproximate;
  c.block_tokens = 4;  // 16 characters
  auto p = Make(c, Backends(1));
  ASSERT_TRUE(p);
  auto chat = [&](int chars) {
    auto r =
        wire::ParseCompletionRequest(std::string(R"({"messages":[{"role":"user","content":")") +
                                         std::string(static_cast<size_t>(chars), 'c') + "\"}]}",
                                     true, PromptBlocksFor(c));
    EXPECT_TRUE(r.ok());
    return p->Blocks(*r).hashes.size();
  };
  // 8 separator characters + 56 = 64 hashed characters: 4 blocks hashed, but 56 characters are
  // 14 tokens, 3 whole blocks on the engine.
  EXPECT_EQ(chat(56), 3u);
  EXPECT_EQ(chat(64), 4u);
}

// The event subscriber's bounds come from the router's configuration: with a 4 KiB frame limit,
// a batch of 2,000 hashes (about 6 KiB) drops the connection instead of reaching the index, and
// the feed comes back for the small batches after it.
TEST(PrefixCacheTest, TheEventFrameLimitIsTheConfigured) {
  auto pub = TcpPublisher(/*replay=*/false);
  ASSERT_TRUE(pub);
  PrefixCacheConfig c;
  c.event_max_message_bytes = 4096;
  auto b = Backends(1);
  b[0].kv_events = pub->endpoint();
  auto p = Make(c, b);
  ASSERT_TRUE(p);
  p->Start();
  ASSERT_TRUE(Synced(*pub, *p, 0));
  Hashes big(2000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = 1000 + i;
  pub->Publish(Stores(big));
  pub->Publish(Stores({5}));
  ASSERT_TRUE(Synced(*pub, *p, 0));  // connected again
  const nlohmann::json j = p->EngineJson(0);
  EXPECT_GE(j["events"]["reconnects"].get<int64_t>(), 1) << j.dump();
  EXPECT_LE(j["events"]["blocks"].get<int64_t>(), 1) << j.dump();  // never the 2,000
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
