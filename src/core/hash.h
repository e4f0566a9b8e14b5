// 64-bit hash mixing shared by everything that derives identities from numbers: rendezvous
// hashing in dispatch, the engines' chained KV-block hashes, the session workloads' prefix hashes.
#pragma once

#include <cstdint>

namespace gimbal {

// splitmix64's output function: a bijection on 64-bit values that spreads every input bit.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// An order-dependent combination: a chain's next hash from its parent and the new content.
inline uint64_t HashCombine(uint64_t parent, uint64_t content) {
  return Mix64(Mix64(parent) ^ content);
}

}  // namespace gimbal
