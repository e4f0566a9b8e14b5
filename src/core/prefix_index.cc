#include "core/prefix_index.h"

#include <algorithm>

#include "core/status.h"

namespace gimbal {

PrefixIndex::PrefixIndex(size_t engines, size_t capacity)
    : capacity_(std::max<size_t>(1, capacity)), per_engine_(engines) {}

PrefixIndex::Engine& PrefixIndex::engine(int e) {
  GIMBAL_CHECK(e >= 0 && static_cast<size_t>(e) < per_engine_.size(), "engine out of range");
  return per_engine_[static_cast<size_t>(e)];
}

const PrefixIndex::Engine& PrefixIndex::engine(int e) const {
  GIMBAL_CHECK(e >= 0 && static_cast<size_t>(e) < per_engine_.size(), "engine out of range");
  return per_engine_[static_cast<size_t>(e)];
}

size_t PrefixIndex::size(int e) const {
  return engine(e).lru.size();
}

size_t PrefixIndex::Match(int e, std::span<const uint64_t> hashes) const {
  const Engine& en = engine(e);
  size_t n = 0;
  while (n < hashes.size() && en.where.count(hashes[n]) != 0) ++n;
  return n;
}

void PrefixIndex::Record(int e, std::span<const uint64_t> hashes) {
  Engine& en = engine(e);
  for (const uint64_t h : hashes) {
    auto it = en.where.find(h);
    if (it != en.where.end()) {
      en.lru.splice(en.lru.end(), en.lru, it->second);  // most recent now
      continue;
    }
    en.lru.push_back(h);
    en.where.emplace(h, std::prev(en.lru.end()));
    if (en.lru.size() > capacity_) {
      en.where.erase(en.lru.front());
      en.lru.pop_front();
    }
  }
}

void PrefixIndex::Clear(int e) {
  Engine& en = engine(e);
  en.lru.clear();
  en.where.clear();
}

}  // namespace gimbal
