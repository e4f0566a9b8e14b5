#include "router/prefix_cache.h"

#include <algorithm>
#include <cmath>

#include "core/block_hash.h"
#include "kvevents/subscriber.h"

namespace gimbal::router {

PrefixCache::PrefixCache(const PrefixCacheConfig& config, size_t engines)
    : config_(config),
      feed_of_(engines, -1),
      sent_(engines, static_cast<size_t>(std::max<int64_t>(1, config.capacity_blocks))) {}

PrefixCache::~PrefixCache() {
  Stop();
}

Result<std::unique_ptr<PrefixCache>> PrefixCache::Create(
    const PrefixCacheConfig& config, const std::vector<BackendConfig>& backends) {
  std::unique_ptr<PrefixCache> c(new PrefixCache(config, backends.size()));
  if (config.hash == PrefixCacheConfig::Hash::kVllm && config.index != PrefixIndexMode::kNone) {
    kvevents::VllmHashConfig h;
    h.algo = config.vllm_hash_algo;
    h.python_hash_seed = config.python_hash_seed;
    auto hasher = kvevents::VllmBlockHasher::Create(h);
    if (!hasher.ok()) {
      return Status(hasher.status().code(), "prefix_cache: " + hasher.status().message());
    }
    c->vllm_.emplace(std::move(*hasher));
  }
  if (config.index != PrefixIndexMode::kAuto) return c;
  kvevents::SubscriberOptions o;
  bool any_replay = false;
  for (size_t e = 0; e < backends.size(); ++e) {
    if (backends[e].kv_events.empty()) continue;
    c->feed_of_[e] = static_cast<int>(o.endpoints.size());
    o.endpoints.push_back(backends[e].kv_events);
    o.replay_endpoints.push_back(backends[e].kv_events_replay);
    any_replay |= !backends[e].kv_events_replay.empty();
  }
  if (o.endpoints.empty()) return c;
  if (!any_replay) o.replay_endpoints.clear();
  o.max_blocks_per_engine = static_cast<size_t>(std::max<int64_t>(1, config.capacity_blocks));
  o.catch_up_s = config.catch_up_s;
  o.max_message_bytes = config.event_max_message_bytes;
  o.rcv_hwm = static_cast<int>(config.event_queue_messages);
  o.replay_timeout_s = config.replay_timeout_s;
  o.expected_block_size = config.block_tokens;
  auto sub = kvevents::Subscriber::Create(std::move(o));
  if (!sub.ok()) {
    return Status(sub.status().code(),
                  "prefix_cache: KV-event subscriber: " + sub.status().message());
  }
  c->subscriber_ = std::move(*sub);
  return c;
}

void PrefixCache::Start() {
  if (subscriber_) subscriber_->Start();
}

void PrefixCache::Stop() {
  if (subscriber_) subscriber_->Stop();
}

wire::PromptBlockOptions PromptBlocksFor(const PrefixCacheConfig& config) {
  wire::PromptBlockOptions o;
  o.block_tokens = config.index == PrefixIndexMode::kNone ? 0 : config.block_tokens;
  o.chars_per_token = config.chars_per_token;
  o.keep_token_ids = o.block_tokens > 0 && config.hash == PrefixCacheConfig::Hash::kVllm;
  // Only a prompt's leading blocks matter; a huge prompt must not cost more, nor fill the record.
  o.max_blocks = std::max<int64_t>(1, config.capacity_blocks / 8);
  return o;
}

PromptBlocks PrefixCache::Blocks(const wire::CompletionRequest& request) const {
  PromptBlocks out;
  if (!enabled()) return out;
  if (vllm_ && !request.token_ids.empty()) {
    out.hashes = vllm_->Hashes(request.token_ids, config_.block_tokens);
    return out;
  }
  // Whole blocks of the prompt as the engine counts its tokens: chat separators are hashed with
  // the messages but are not prompt tokens, so a conversation's last hashed block may not exist
  // in the engine (the emulated engines trim the same way).
  const double text_chars = static_cast<double>(
      request.prompt_chars - wire::kChatMessageChars * std::max<int64_t>(0, request.messages));
  const auto tokens =
      request.prompt_token_ids +
      static_cast<int64_t>(std::ceil(std::max(0.0, text_chars) / config_.chars_per_token));
  std::span<const uint64_t> entries = request.block_hashes;
  const auto whole = static_cast<size_t>(std::max<int64_t>(0, tokens / config_.block_tokens));
  if (entries.size() > whole) entries = entries.first(whole);
  out.hashes = PrefixBlockChain(entries);
  out.match_events = !vllm_;  // a real vLLM's events never name text the router hashed
  return out;
}

void PrefixCache::Fill(std::span<const uint64_t> blocks, std::span<EngineView> views,
                       bool match_events) const {
  for (auto& v : views) v.cached_prompt_tokens = 0;
  if (!enabled() || blocks.empty()) return;
  MutexLock lock(mu_);
  for (size_t e = 0; e < views.size(); ++e) {
    const int feed = FeedOf(static_cast<int>(e));
    // The engine's own events while they are exact; the router's record otherwise.
    std::optional<size_t> held;
    if (match_events && feed >= 0 && subscriber_)
      held = subscriber_->MatchPrefixIfExact(feed, blocks);
    if (!held) held = sent_.Match(static_cast<int>(e), blocks);
    views[e].cached_prompt_tokens = static_cast<int64_t>(*held) * config_.block_tokens;
  }
}

void PrefixCache::Record(int e, std::span<const uint64_t> blocks, int64_t cached_tokens) {
  if (!enabled() || blocks.empty()) return;
  looked_up_ += static_cast<int64_t>(blocks.size());
  matched_ +=
      std::min<int64_t>(static_cast<int64_t>(blocks.size()), cached_tokens / config_.block_tokens);
  MutexLock lock(mu_);
  sent_.Record(e, blocks);
}

nlohmann::json PrefixCache::EngineJson(int e) const {
  if (!enabled()) return {{"source", "none"}};
  const int feed = FeedOf(e);
  nlohmann::json j;
  {
    MutexLock lock(mu_);
    j["approximate_blocks"] = sent_.size(e);
  }
  if (feed < 0 || !subscriber_) {
    j["source"] = "approximate";
    return j;
  }
  const kvevents::EngineKvStatus st = subscriber_->State(feed);
  j["source"] = st.block_size_mismatch ? "events (other block size: approximate)"
                : st.stale             ? "events (stale: approximate)"
                                       : "events";
  j["events"] = {{"blocks", st.blocks},
                 {"stale", st.stale},
                 {"batches", st.batches},
                 {"last_seq", st.last_seq},
                 {"gaps", st.gaps},
                 {"replays", st.replays},
                 {"resets", st.resets},
                 {"restarts", st.restarts},
                 {"duplicates", st.duplicates},
                 {"malformed", st.malformed},
                 {"block_size", st.block_size},
                 {"block_size_mismatch", st.block_size_mismatch},
                 {"block_size_mismatches", st.block_size_mismatches},
                 {"reconnects", st.reconnects},
                 {"last_problem", st.last_problem}};
  return j;
}

}  // namespace gimbal::router
