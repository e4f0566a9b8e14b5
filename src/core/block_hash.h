// The chain of KV-block hashes an engine gives a prompt's blocks (the simulator's engine model and
// the emulated engines, whose KV-cache events carry them), shared with a router that matches those
// events against the prompts it sees.
//
// A prompt's prefix entries (Request::prefix_hashes, or the block hashes a router cuts from the
// prompt text, wire::PromptBlockOptions) each name the whole prefix up to their end. Block i's hash
// chains block i - 1's hash (kRootBlockHash for the first) with its content: for a block whose last
// token the entries cover, the covering entry and the index i (PrefixBlockHash). Blocks beyond the
// entries get content unique to their request (the engine model's business, not shared).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/hash.h"

namespace gimbal {

inline constexpr uint64_t kRootBlockHash = 0x67696d62616c0001ULL;   // the first block's parent
inline constexpr uint64_t kPrefixBlockTag = 0x67696d62616c0002ULL;  // content from prefix entries

// Block `index`'s hash after `parent`, its last token covered by prefix entry `entry`.
inline uint64_t PrefixBlockHash(uint64_t parent, uint64_t entry, int64_t index) {
  return HashCombine(
      parent, HashCombine(HashCombine(kPrefixBlockTag, entry), static_cast<uint64_t>(index)));
}

// The block hashes of a prompt whose entries each cover exactly one block (entries of the engine's
// block size): block i's entry is entries[i].
inline std::vector<uint64_t> PrefixBlockChain(std::span<const uint64_t> entries) {
  std::vector<uint64_t> out;
  out.reserve(entries.size());
  uint64_t parent = kRootBlockHash;
  for (size_t i = 0; i < entries.size(); ++i) {
    out.push_back(parent = PrefixBlockHash(parent, entries[i], static_cast<int64_t>(i)));
  }
  return out;
}

}  // namespace gimbal
