// PrefixIndex: a front end's own record of which prompt prefixes it sent to which engine, in
// bounded memory — the approximate prefix index a router keeps when the engines do not tell it
// what they cache (llm-d's approximate prefix scorer, SGLang's cache-aware router keep one too).
//
// A prefix is a chain of hashes, one per fixed-size block of prompt tokens, each identifying the
// whole prefix up to the end of its block (Request::prefix_hashes). Per engine the index holds at
// most `capacity` hashes and forgets the least recently used first; Record marks every hash of a
// dispatched prompt as used, so a prefix sent again stays. Match counts the leading hashes of a
// prompt found for an engine: the blocks the front end believes that engine still caches. The
// belief is approximate in both directions: an engine may have evicted a block the index keeps
// (its cache is smaller or busier), or hold one the index forgot.
//
// Not thread-safe: the owner serialises calls (the simulator is single-threaded; a router holds it
// under its dispatch lock). Engine indices must be in [0, engines()); anything else is a
// programming error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace gimbal {

class PrefixIndex {
 public:
  // `engines` engines, each remembering at most `capacity` hashes (>= 1).
  PrefixIndex(size_t engines, size_t capacity);

  size_t engines() const { return per_engine_.size(); }
  size_t capacity() const { return capacity_; }
  // Hashes currently held for engine e (at most capacity()).
  size_t size(int e) const;

  // The number of leading entries of `hashes` held for engine e. Does not change recency.
  size_t Match(int e, std::span<const uint64_t> hashes) const;
  // Marks every entry of `hashes` as sent to engine e (most recent last), evicting the least
  // recently used beyond capacity. A prompt longer than the capacity keeps its last entries.
  void Record(int e, std::span<const uint64_t> hashes);
  // Forgets everything about engine e (it restarted, or cleared its cache).
  void Clear(int e);

 private:
  struct Engine {
    std::list<uint64_t> lru;  // least recent first
    std::unordered_map<uint64_t, std::list<uint64_t>::iterator> where;
  };
  Engine& engine(int e);
  const Engine& engine(int e) const;

  size_t capacity_;
  std::vector<Engine> per_engine_;
};

}  // namespace gimbal
