// vLLM's block hash: the two serialisations vLLM feeds its hash functions, written out for the few
// value types a block key holds (text, bytes, integers, None, tuples), and the digests over them.
//
// Pickle is CPython's protocol 5 as pickle.dumps(obj, HIGHEST_PROTOCOL) writes it: PROTO 5, then
// the opcodes in frames (a FRAME header and 8-byte length in front of every 64 KiB or more of
// opcodes, cut only where the next object's opcodes begin; a last frame under 4 bytes would get no
// header), then STOP inside the last frame. Strings, bytes and non-empty tuples are memoised
// (MEMOIZE after them); integers use the smallest of BININT1/BININT2/BININT, else LONG1 with the
// shortest little-endian two's complement. CBOR is cbor2's canonical form: arrays for tuples, the
// shortest argument for every head.
#include "kvevents/vllm_block_hash.h"

#include <xxhash.h>

#include <array>
#include <initializer_list>
#include <optional>
#include <utility>

#include <openssl/evp.h>

namespace gimbal::kvevents {
namespace {

constexpr size_t kFrameTarget = size_t{64} * 1024;  // CPython's FRAME_SIZE_TARGET
constexpr size_t kFrameMin = 4;                     // FRAME_SIZE_MIN
constexpr size_t kFrameHeader = 9;                  // FRAME opcode + 8-byte length
constexpr size_t kMaxSeedBytes = 255;               // SHORT_BINUNICODE's limit

// Pickle protocol 5 writer for one dumps() call.
class Pickle {
 public:
  Pickle() { out_ = {'\x80', '\x05'}; }  // PROTO 5, before framing starts

  void Text(std::string_view s) {  // str of at most 255 UTF-8 bytes
    Boundary();
    Write({'\x8c', static_cast<char>(s.size())});
    Write(s);
    Write("\x94");  // MEMOIZE
  }
  void Bytes(std::string_view b) {  // bytes of at most 255 bytes (a 16- or 32-byte digest)
    Boundary();
    Write({'C', static_cast<char>(b.size())});
    Write(b);
    Write("\x94");
  }
  void None() {
    Boundary();
    Write("N");
  }
  void Int(int64_t v) {
    Boundary();
    if (v >= 0 && v <= 0xff) {
      Write({'K', static_cast<char>(v)});
    } else if (v >= 0 && v <= 0xffff) {
      Write({'M', static_cast<char>(v & 0xff), static_cast<char>(v >> 8)});
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      const auto u = static_cast<uint32_t>(v);
      Write({'J', static_cast<char>(u), static_cast<char>(u >> 8), static_cast<char>(u >> 16),
             static_cast<char>(u >> 24)});
    } else {
      // LONG1: bytes = bit length of |v| / 8 + 1, one fewer when a negative value's top byte is
      // only sign extension (0xff over a byte whose high bit is set).
      const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
      const int bits = 64 - __builtin_clzll(mag);
      size_t n = static_cast<size_t>(bits) / 8 + 1;
      std::array<uint8_t, 9> le{};
      const auto u = static_cast<uint64_t>(v);
      for (size_t i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(u >> (8 * i));
      le[8] = v < 0 ? 0xff : 0;
      if (v < 0 && n > 1 && le[n - 1] == 0xff && (le[n - 2] & 0x80) != 0) --n;
      Write({'\x8a', static_cast<char>(n)});
      for (size_t i = 0; i < n; ++i) out_.push_back(static_cast<char>(le[i]));
    }
  }
  // A tuple: BeginTuple, its items, EndTuple(size).
  void BeginTuple(size_t size) {
    Boundary();
    if (size > 3) Write("(");  // MARK
  }
  void EndTuple(size_t size) {
    static constexpr char kOps[] = {')', '\x85', '\x86', '\x87'};  // EMPTY_TUPLE, TUPLE1..3
    if (size == 0) {
      Write(")");
    } else {
      Write(std::string_view(size <= 3 ? &kOps[size] : "t", 1));
      Write("\x94");
    }
  }
  std::string Finish() && {
    Write(".");  // STOP
    Commit();
    return std::move(out_);
  }

 private:
  void Write(std::string_view s) {
    if (!frame_start_) {
      frame_start_ = out_.size();
      out_.append(kFrameHeader, '\0');
    }
    out_.append(s);
  }
  void Write(std::initializer_list<char> s) { Write(std::string_view(s.begin(), s.size())); }
  // Called where an object's opcodes are about to begin: the frame is closed once it holds the
  // target (pickle checks before saving each object, not after).
  void Boundary() {
    if (frame_start_ && out_.size() - *frame_start_ - kFrameHeader >= kFrameTarget) Commit();
  }
  void Commit() {
    if (!frame_start_) return;
    const size_t start = *frame_start_;
    const uint64_t len = out_.size() - start - kFrameHeader;
    if (len >= kFrameMin) {
      out_[start] = '\x95';
      for (size_t i = 0; i < 8; ++i) out_[start + 1 + i] = static_cast<char>(len >> (8 * i));
    } else {
      out_.erase(start, kFrameHeader);
    }
    frame_start_.reset();
  }

  std::string out_;
  std::optional<size_t> frame_start_;
};

// Canonical CBOR heads and items.
void CborHead(std::string& out, uint8_t major, uint64_t arg) {
  const auto m = static_cast<char>(major << 5);
  if (arg < 24) {
    out.push_back(static_cast<char>(m | static_cast<char>(arg)));
    return;
  }
  int bytes = 8;
  char info = 27;
  if (arg <= 0xff) {
    bytes = 1;
    info = 24;
  } else if (arg <= 0xffff) {
    bytes = 2;
    info = 25;
  } else if (arg <= 0xffffffff) {
    bytes = 4;
    info = 26;
  }
  out.push_back(static_cast<char>(m | info));
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(arg >> (8 * i)));
}

void CborInt(std::string& out, int64_t v) {
  if (v >= 0) {
    CborHead(out, 0, static_cast<uint64_t>(v));
  } else {
    CborHead(out, 1, static_cast<uint64_t>(-(v + 1)));
  }
}

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Result<VllmBlockHasher> VllmBlockHasher::Create(const VllmHashConfig& config) {
  Algo algo;
  if (config.algo == "sha256") {
    algo = Algo::kSha256;
  } else if (config.algo == "sha256_cbor") {
    algo = Algo::kSha256Cbor;
  } else if (config.algo == "xxhash") {
    algo = Algo::kXxhash;
  } else if (config.algo == "xxhash_cbor") {
    algo = Algo::kXxhashCbor;
  } else {
    return InvalidArgument(std::string("unknown vLLM prefix-caching hash algo '") + config.algo +
                           "' (expected sha256, sha256_cbor, xxhash or xxhash_cbor)");
  }
  const bool xxhash = algo == Algo::kXxhash || algo == Algo::kXxhashCbor;
  if (xxhash && !config.python_hash_seed) {
    return InvalidArgument(std::string("vLLM's '") + config.algo +
                           "' hashes need PYTHONHASHSEED: without it each vLLM process seeds its "
                           "block hashes at random and no router can match them");
  }
  // vLLM's fixed seed for the sha256 algorithms when PYTHONHASHSEED is unset.
  const std::string seed = config.python_hash_seed.value_or("vllm-none-hash");
  if (seed.size() > kMaxSeedBytes || !ValidUtf8(seed)) {
    return InvalidArgument("PYTHONHASHSEED for vLLM block hashes must be valid UTF-8 of at most " +
                           std::to_string(kMaxSeedBytes) + " bytes");
  }
  VllmBlockHasher hasher(algo, "");
  std::string serialized;
  if (hasher.Cbor()) {
    CborHead(serialized, 3, seed.size());
    serialized += seed;
  } else {
    Pickle p;
    p.Text(seed);
    serialized = std::move(p).Finish();
  }
  hasher.root_ = hasher.Hash(serialized);
  return hasher;
}

std::string VllmBlockHasher::Hash(std::string_view serialized) const {
  if (algo_ == Algo::kSha256 || algo_ == Algo::kSha256Cbor) {
    std::string digest(32, '\0');
    unsigned int len = 0;
    const int ok =
        EVP_Digest(serialized.data(), serialized.size(),
                   reinterpret_cast<unsigned char*>(digest.data()), &len, EVP_sha256(), nullptr);
    GIMBAL_CHECK(ok == 1 && len == 32, "OpenSSL SHA-256 failed");
    return digest;
  }
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(serialized.data(), serialized.size()));
  return {reinterpret_cast<const char*>(canonical.digest), sizeof(canonical.digest)};
}

std::string VllmBlockHasher::BlockDigest(std::string_view parent,
                                         std::span<const int64_t> tokens) const {
  // The key (parent digest, tuple of token ids, None): None stands for "no extra keys".
  if (Cbor()) {
    std::string out;
    out.reserve(parent.size() + tokens.size() * 9 + 8);
    CborHead(out, 4, 3);
    CborHead(out, 2, parent.size());
    out += parent;
    CborHead(out, 4, tokens.size());
    for (int64_t t : tokens) CborInt(out, t);
    out.push_back('\xf6');  // null
    return Hash(out);
  }
  Pickle p;
  p.BeginTuple(3);
  p.Bytes(parent);
  p.BeginTuple(tokens.size());
  for (int64_t t : tokens) p.Int(t);
  p.EndTuple(tokens.size());
  p.None();
  p.EndTuple(3);
  return Hash(std::move(p).Finish());
}

std::vector<std::string> VllmBlockHasher::Digests(std::span<const int64_t> token_ids,
                                                  int64_t block_size) const {
  std::vector<std::string> digests;
  if (block_size <= 0) return digests;
  const auto size = static_cast<uint64_t>(block_size);
  const size_t blocks = token_ids.size() / size;
  digests.reserve(blocks);
  for (size_t i = 0; i < blocks; ++i) {
    const std::string& parent = i == 0 ? root_ : digests.back();
    digests.push_back(BlockDigest(parent, token_ids.subspan(i * size, size)));
  }
  return digests;
}

std::vector<uint64_t> VllmBlockHasher::Hashes(std::span<const int64_t> token_ids,
                                              int64_t block_size) const {
  std::vector<uint64_t> hashes;
  for (const std::string& d : Digests(token_ids, block_size)) hashes.push_back(EventHash(d));
  return hashes;
}

uint64_t VllmBlockHasher::EventHash(std::string_view digest) {
  uint64_t h = 0;
  for (size_t i = digest.size() > 8 ? digest.size() - 8 : 0; i < digest.size(); ++i) {
    h = (h << 8) | static_cast<uint8_t>(digest[i]);
  }
  return h;
}

}  // namespace gimbal::kvevents
