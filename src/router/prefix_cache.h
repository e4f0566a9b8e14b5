// PrefixCache: what the router believes each engine holds in its prefix cache, so that dispatch
// sees EngineView::cached_prompt_tokens as the simulator's stacks do (docs/router.md,
// "Prefix-aware dispatch").
//
// A request's prompt is cut into blocks and hashed by the wire reader (wire::PromptBlockOptions,
// `block_tokens` and `chars_per_token` of PrefixCacheConfig), and chained as the engines chain
// their KV blocks (core/block_hash.h); an engine's cached prefix is the number of leading blocks
// it holds times block_tokens. Two sources, per engine:
//   - events: the engine's KV-cache events (kvevents::Subscriber over the backend's `kv_events`
//     endpoint, with catch-up and replay through `kv_events_replay`). Exact when the engine hashes
//     blocks as the router does: the emulated engines do; a real vLLM hashes token ids, which the
//     router has only for prompts sent as ids, matched with hash kVllm (docs/kv-events.md);
//   - approximate: the router's own bounded LRU record of the blocks it sent to the engine
//     (core/prefix_index.h). Kept for every engine, so an engine whose event feed is stale (lost
//     batches it could not replay) is answered from it until the feed is exact again.
// Index mode kNone turns both off (every answer 0, nothing recorded); kApproximate ignores events.
// With hash kVllm the engines are real vLLM engines: a prompt sent as token ids is hashed as vLLM
// hashes it (kvevents::VllmBlockHasher) and matched against their events; any other prompt (text,
// chat: the router has no tokenizer or chat template) is answered from the approximate record.
//
// Memory is bounded by capacity_blocks hashes per engine per index, and a prompt counts at most
// capacity_blocks / 8 leading blocks (PromptBlocksFor). A prompt's blocks are recorded once its
// engine has accepted it (the proxy calls Record on the engine's 200), not at the pick: an engine
// that failed or refused the request holds none of it. Thread-safe: the approximate
// record has its own mutex (callers may hold the engine table's lock: it is only ever taken
// after that one), the subscriber locks per engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/engine_state.h"
#include "core/prefix_index.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "kvevents/vllm_block_hash.h"
#include "router/config.h"
#include "wire/completion_request.h"

namespace gimbal::kvevents {
class Subscriber;
}

namespace gimbal::router {

// How the wire reader cuts prompts for `config`; block_tokens 0 when the index is kNone.
wire::PromptBlockOptions PromptBlocksFor(const PrefixCacheConfig& config);

// A prompt's KV blocks as the engines name them, and whether their KV-cache events can be
// matched against them (false: only the approximate record can answer).
struct PromptBlocks {
  std::vector<uint64_t> hashes;
  bool match_events = true;
};

class PrefixCache {
 public:
  // One entry of `backends` per engine; connects (but does not start) the event subscriber when
  // the mode is kAuto and some backend names kv_events. Fails on an endpoint ZeroMQ refuses.
  static Result<std::unique_ptr<PrefixCache>> Create(const PrefixCacheConfig& config,
                                                     const std::vector<BackendConfig>& backends);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // Starts / stops the event subscriber's thread (no-ops without one). Idempotent.
  void Start();
  void Stop();

  bool enabled() const { return config_.index != PrefixIndexMode::kNone; }

  // The blocks of a request read with PromptBlocksFor(config): the wire reader's block hashes
  // chained as the engines chain them (core/block_hash.h), or with hash kVllm vLLM's hashes of
  // its token ids. Empty when disabled.
  PromptBlocks Blocks(const wire::CompletionRequest& request) const;

  // Sets views[e].cached_prompt_tokens for every engine: the leading blocks of `blocks` engine e
  // holds, times block_tokens; from the approximate record only when !match_events. views.size()
  // must equal the engine count.
  void Fill(std::span<const uint64_t> blocks, std::span<EngineView> views,
            bool match_events = true) const;
  // Records that engine `e` accepted a prompt of `blocks` (the approximate record), whose index
  // held `cached_tokens` of them when it was picked (counted in matched_blocks).
  void Record(int e, std::span<const uint64_t> blocks, int64_t cached_tokens);

  // For /admin/engines: the engine's source ("none", "approximate", "events", or
  // "events (stale: approximate)"), its indices' sizes and, with events, the feed's counters.
  nlohmann::json EngineJson(int e) const;
  // Counts since the start: prompt blocks looked up for the engine picked, and of those, blocks
  // its index held (the router's own hit-rate estimate).
  int64_t looked_up_blocks() const { return looked_up_.load(); }
  int64_t matched_blocks() const { return matched_.load(); }

 private:
  PrefixCache(const PrefixCacheConfig& config, size_t engines);
  // Engine e's subscriber slot, or -1 when it has no event feed.
  int FeedOf(int e) const { return feed_of_[static_cast<size_t>(e)]; }

  PrefixCacheConfig config_;
  std::vector<int> feed_of_;
  std::optional<kvevents::VllmBlockHasher> vllm_;  // hash kVllm
  std::unique_ptr<kvevents::Subscriber> subscriber_;
  mutable Mutex mu_;
  PrefixIndex sent_ GIMBAL_GUARDED_BY(mu_);
  std::atomic<int64_t> looked_up_{0};
  std::atomic<int64_t> matched_{0};
};

}  // namespace gimbal::router
