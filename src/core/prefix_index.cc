#include "core/prefix_index.h"

#include <algorithm>
#include <iterator>
#include <random>

#include "core/status.h"

namespace gimbal {
namespace {

uint64_t ProcessKey() {
  static const uint64_t key = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  return key;
}

}  // namespace

KeyedHash::KeyedHash() : key(ProcessKey()) {}

size_t KeyedHash::operator()(uint64_t h) const noexcept {
  // The key, then murmur3's 64-bit finaliser: every output bit depends on every input bit.
  uint64_t x = h ^ key;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<size_t>(x);
}

HashLru::HashLru(size_t capacity) : capacity_(capacity) {
  GIMBAL_CHECK(capacity >= 1, "a hash LRU needs room for at least one hash");
}

void HashLru::Store(uint64_t hash) {
  auto it = pos_.find(hash);
  if (it != pos_.end()) {
    order_.splice(order_.end(), order_, it->second);  // refreshed: now the most recent
    return;
  }
  if (pos_.size() >= capacity_) {
    pos_.erase(order_.front());
    order_.pop_front();
    ++bounded_drops_;
  }
  order_.push_back(hash);
  pos_.emplace(hash, std::prev(order_.end()));
}

void HashLru::Remove(uint64_t hash) {
  auto it = pos_.find(hash);
  if (it == pos_.end()) return;
  order_.erase(it->second);
  pos_.erase(it);
}

void HashLru::Clear() {
  order_.clear();
  pos_.clear();
}

size_t HashLru::MatchPrefix(std::span<const uint64_t> hashes) const {
  size_t n = 0;
  while (n < hashes.size() && Contains(hashes[n])) ++n;
  return n;
}

PrefixIndex::PrefixIndex(size_t engines, size_t capacity)
    : per_engine_(engines, HashLru(std::max<size_t>(1, capacity))) {}

HashLru& PrefixIndex::engine(int e) {
  GIMBAL_CHECK(e >= 0 && static_cast<size_t>(e) < per_engine_.size(), "engine out of range");
  return per_engine_[static_cast<size_t>(e)];
}

const HashLru& PrefixIndex::engine(int e) const {
  GIMBAL_CHECK(e >= 0 && static_cast<size_t>(e) < per_engine_.size(), "engine out of range");
  return per_engine_[static_cast<size_t>(e)];
}

void PrefixIndex::Record(int e, std::span<const uint64_t> hashes) {
  HashLru& lru = engine(e);
  for (const uint64_t h : hashes) lru.Store(h);
}

}  // namespace gimbal
