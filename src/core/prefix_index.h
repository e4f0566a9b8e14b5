// Bounded records of cached prefix blocks, by 64-bit hash.
//
// HashLru: a set of at most `capacity` block hashes that forgets the least recently stored first
// (counted in bounded_drops: the set then under-reports; it never holds a hash it was not given).
// A set, not a multiset: storing a held hash again only refreshes it. MatchPrefix counts the
// leading hashes of a chain (a prompt's chained block hashes, head first) that are held: the
// cached-prefix length in blocks. It is what one engine holds, whether learnt from the engine's
// KV-cache events (kvevents::BlockIndex) or from what a front end sent it (PrefixIndex below).
//
// PrefixIndex: a front end's own record of which prompt prefixes it sent to which engine — the
// approximate prefix index a router keeps when the engines do not tell it what they cache
// (llm-d's approximate prefix scorer, SGLang's cache-aware router keep one too). Record marks
// every hash of a dispatched prompt as used, so a prefix sent again stays; Match is what the
// front end believes the engine still caches. The belief is approximate in both directions: an
// engine may have evicted a block the index keeps (its cache is smaller or busier), or hold one
// the index forgot.
//
// Hashes are looked up through a per-process random key (KeyedHash): block hashes come from
// engines' KV-cache events and from clients' prompts, and with the identity hash an engine that
// sent multiples of the table's bucket count put every entry in one chain, so each store walked
// 65,536 entries while every dispatch waited.
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

// A hash's bucket: the hash mixed with a key drawn once per process, so nobody outside the
// process can choose hashes that share a bucket. Only lookups use it; nothing iterates the table,
// so no output depends on the key.
struct KeyedHash {
  KeyedHash();
  size_t operator()(uint64_t h) const noexcept;
  uint64_t key;  // the process's (read once here, not at every lookup)
};

class HashLru {
 public:
  // capacity >= 1.
  explicit HashLru(size_t capacity);

  void Store(uint64_t hash);
  void Remove(uint64_t hash);
  void Clear();

  bool Contains(uint64_t hash) const { return pos_.count(hash) != 0; }
  size_t MatchPrefix(std::span<const uint64_t> hashes) const;
  size_t size() const { return pos_.size(); }
  size_t capacity() const { return capacity_; }
  int64_t bounded_drops() const { return bounded_drops_; }
  // The held hashes, least recently stored first. O(size): for tests and dumps.
  std::vector<uint64_t> Hashes() const { return {order_.begin(), order_.end()}; }

 private:
  size_t capacity_;
  std::list<uint64_t> order_;  // least recently stored at the front
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator, KeyedHash> pos_;
  int64_t bounded_drops_ = 0;
};

class PrefixIndex {
 public:
  // `engines` engines, each remembering at most `capacity` hashes (a capacity below 1 counts as 1).
  PrefixIndex(size_t engines, size_t capacity);

  size_t engines() const { return per_engine_.size(); }
  size_t capacity() const { return per_engine_.empty() ? 0 : per_engine_.front().capacity(); }
  // Hashes currently held for engine e (at most capacity()).
  size_t size(int e) const { return engine(e).size(); }

  // The number of leading entries of `hashes` held for engine e. Does not change recency.
  size_t Match(int e, std::span<const uint64_t> hashes) const {
    return engine(e).MatchPrefix(hashes);
  }
  // Marks every entry of `hashes` as sent to engine e (most recent last), evicting the least
  // recently used beyond capacity. A prompt longer than the capacity keeps its last entries.
  void Record(int e, std::span<const uint64_t> hashes);
  // Forgets everything about engine e (it restarted, or cleared its cache).
  void Clear(int e) { engine(e).Clear(); }

 private:
  HashLru& engine(int e);
  const HashLru& engine(int e) const;

  std::vector<HashLru> per_engine_;
};

}  // namespace gimbal
