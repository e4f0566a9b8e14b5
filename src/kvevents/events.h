// KV-cache events as vLLM publishes them (`--kv-events-config`), and their msgpack wire form.
//
// A batch is what one engine step emitted: a wall-clock timestamp, the events in order, and the
// data-parallel rank of the engine that emitted them. Three kinds of event change what a consumer
// knows about an engine's prefix cache:
//   - BlockStored: blocks with these content hashes are now cached (parent: the hash of the block
//     before the first one, absent for a prompt's first block);
//   - BlockRemoved: blocks with these hashes are no longer cached (evicted);
//   - AllBlocksCleared: the engine dropped its whole prefix cache.
// The wire form follows vLLM 0.33's msgspec encoding (docs/kv-events.md): the batch is a msgpack
// array [ts, events, data_parallel_rank]; each event a map whose "type" entry names its kind.
// Decoding also accepts the older array form of events (["BlockStored", hashes, parent, ...]).
//
// Block hashes are 64-bit. vLLM sends them as msgpack integers by default (the low 64 bits of its
// 32-byte hash, VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1) or as raw bytes; bytes decode to the same
// value vLLM's integer form would carry (the last 8 bytes, big-endian), and a negative integer to
// its two's-complement bit pattern, so both forms land in one uint64_t space.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace gimbal::kvevents {

struct BlockStored {
  std::vector<uint64_t> block_hashes;  // in prefix order
  std::optional<uint64_t> parent_block_hash;
  std::vector<int64_t> token_ids;  // may be empty (gimbal's emulated engines send none)
  int64_t block_size = 0;          // tokens per block
  std::optional<int64_t> lora_id;
  std::optional<std::string> medium;  // "GPU", "CPU", ...
  std::optional<std::string> lora_name;
  std::optional<int64_t> group_idx;  // KV-cache group; sent only when set
  bool operator==(const BlockStored&) const = default;
};

struct BlockRemoved {
  std::vector<uint64_t> block_hashes;
  std::optional<std::string> medium;
  std::optional<int64_t> group_idx;
  bool operator==(const BlockRemoved&) const = default;
};

struct AllBlocksCleared {
  bool operator==(const AllBlocksCleared&) const = default;
};

using Event = std::variant<BlockStored, BlockRemoved, AllBlocksCleared>;

struct EventBatch {
  double ts = 0;  // Unix seconds when the engine step published it
  std::vector<Event> events;
  std::optional<int64_t> data_parallel_rank;
  bool operator==(const EventBatch&) const = default;
};

// Gathers one engine step's cache changes into a batch, in order. Consecutive stores share one
// BlockStored (as vLLM stores a request's newly full blocks together), and consecutive removals
// one BlockRemoved (the same hashes as vLLM's one event per evicted block, with no allocation per
// block on the pool's eviction path). Not thread-safe.
class EventCollector {
 public:
  // `block_size`: tokens per block, sent in every BlockStored; `medium`: "GPU" as vLLM's GPU pool.
  explicit EventCollector(int64_t block_size, std::string medium = "GPU")
      : block_size_(block_size), medium_(std::move(medium)) {}
  void Stored(uint64_t hash);
  void Removed(uint64_t hash);
  bool empty() const { return events_.empty(); }
  // The events so far as a batch stamped `ts` (no rank: the publisher sets it); starts afresh.
  EventBatch Take(double ts);

 private:
  // Adds `hash` to the last event when it is an E, else to a new E made by `make`.
  template <typename E, typename Make>
  void Append(uint64_t hash, Make make);

  int64_t block_size_;
  std::string medium_;
  std::vector<Event> events_;
};

// The msgpack bytes vLLM 0.33's encoder produces for `batch` (same field order; fields vLLM omits
// when unset are omitted; a rank-less batch ends with nil, as vLLM's does).
std::string EncodeBatch(const EventBatch& batch);

// Array and map entries one batch may hold in all (block hashes, events, their fields): decoded,
// each costs about 24 bytes, so a batch costs at most about 50 MB however it is shaped.
inline constexpr uint64_t kMaxBatchEntries = uint64_t{1} << 21;

// Decodes one payload. Never throws: malformed, truncated, over-limit (arrays over 2^20 entries,
// more than kMaxBatchEntries entries in all, nesting over 16 levels, strings over 64 KiB) or
// trailing bytes give InvalidArgument with the reason. Unknown map keys inside an event are ignored
// (newer vLLM fields); an unknown event type is an error, since skipping it could leave an index
// wrong without anyone noticing.
Result<EventBatch> DecodeBatch(std::string_view payload);

// Sequence numbers travel as 8-byte big-endian frames.
std::string EncodeSeq(int64_t seq);
// The sequence number in an 8-byte frame, or nullopt when the frame is not 8 bytes.
std::optional<int64_t> DecodeSeq(std::string_view frame);

// Whether the `count`-th occurrence (from 1) of a repeated problem is logged: the first five, then
// one in a thousand, so a peer sending bad messages in a loop cannot fill the disk.
inline bool LogThisOccurrence(int64_t count) {
  return count <= 5 || count % 1000 == 0;
}

}  // namespace gimbal::kvevents
