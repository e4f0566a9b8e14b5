// vLLM 0.33's prefix-caching block hash, computed outside vLLM, so a router can match a prompt's
// blocks against the hashes a real vLLM engine sends in its BlockStored events (docs/kv-events.md,
// "Matching a real vLLM engine's events").
//
// vLLM hashes a prompt given as token ids in blocks of `block_size` tokens; only full blocks get a
// hash. Block i's digest is H(serialize((parent digest, token ids of block i, extra keys))), the
// parent of block 0 being the root digest H(serialize(seed)). H and serialize follow
// --prefix-caching-hash-algo: "sha256" (vLLM's default: pickle, SHA-256), "sha256_cbor" (canonical
// CBOR, SHA-256), "xxhash" (pickle, XXH3-128) and "xxhash_cbor" (CBOR, XXH3-128); all four are
// supported. The seed is PYTHONHASHSEED from the vLLM process's environment when set (any string,
// used as text, not as a number); unset, the sha256 algorithms use vLLM's fixed seed and the xxhash
// ones a random one per process, which no outside hasher can reproduce.
//
// Only prompts without extra keys match: no LoRA adapter, no multimodal input, no prompt
// embeddings, no cache_salt, and no speculative decoding that extends hashes with lookahead tokens
// (EAGLE's block drop). A prompt with any of these hashes differently in vLLM.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace gimbal::kvevents {

struct VllmHashConfig {
  // vLLM's --prefix-caching-hash-algo: "sha256", "sha256_cbor", "xxhash" or "xxhash_cbor".
  std::string algo = "sha256";
  // PYTHONHASHSEED exactly as set in every vLLM engine's environment; nullopt when it is unset.
  // Must be the same string on every engine (and here): "42" and "042" are different seeds.
  std::optional<std::string> python_hash_seed;
};

// Computes vLLM's block hashes for token-id prompts. Immutable after Create: every method is const
// and safe to call from many threads at once.
class VllmBlockHasher {
 public:
  // InvalidArgument for an unknown algo, an xxhash algo without a seed (vLLM then seeds at random),
  // or a seed that is not valid UTF-8 or longer than 255 bytes (PYTHONHASHSEED is a number or
  // "random" for Python to start at all).
  static Result<VllmBlockHasher> Create(const VllmHashConfig& config);

  // The hashes vLLM's BlockStored events carry for the full blocks of `token_ids` (a trailing
  // partial block has none), in prefix order, as DecodeBatch (events.h) yields them: the last 8
  // bytes of each digest, big-endian — the integer vLLM sends by default, and what the decoder
  // makes of the bytes it sends with VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0. `block_size` is
  // vLLM's hash block size (the event's block_size for a model with one KV-cache group;
  // docs/kv-events.md for hybrid models); the result is empty when it is not positive.
  std::vector<uint64_t> Hashes(std::span<const int64_t> token_ids, int64_t block_size) const;

  // The full digests (32 bytes for sha256, 16 for xxhash) of the same blocks, as vLLM keeps them.
  std::vector<std::string> Digests(std::span<const int64_t> token_ids, int64_t block_size) const;

  // The root digest every chain starts from (vLLM's NONE_HASH).
  const std::string& root_digest() const { return root_; }

  // The event hash of one digest: its last 8 bytes, big-endian.
  static uint64_t EventHash(std::string_view digest);

 private:
  enum class Algo { kSha256, kSha256Cbor, kXxhash, kXxhashCbor };
  VllmBlockHasher(Algo algo, std::string root) : algo_(algo), root_(std::move(root)) {}
  bool Cbor() const { return algo_ == Algo::kSha256Cbor || algo_ == Algo::kXxhashCbor; }
  std::string Hash(std::string_view serialized) const;
  std::string BlockDigest(std::string_view parent, std::span<const int64_t> tokens) const;

  Algo algo_;
  std::string root_;
};

}  // namespace gimbal::kvevents
