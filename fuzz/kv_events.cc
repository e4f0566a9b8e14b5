// Fuzz target: a KV-cache event batch as an engine (or anything that can reach the subscriber's
// socket) sends it: kvevents::DecodeBatch on the whole input, the batch applied to a small
// BlockIndex, and the input's 8-byte frames read as sequence numbers (DecodeSeq) and offered to a
// SequenceTracker as the subscriber offers them.
// Invariants: never crashes; a decoded batch encodes (EncodeBatch) and decodes back to itself; the
// index never holds more than its bound; the tracker's verdicts keep their contract (in order
// advances by one, a restart leaves the tracker alone, expected() never passes kMaxSeq + 1).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_check.h"
#include "kvevents/block_index.h"
#include "kvevents/events.h"

namespace {

namespace kv = gimbal::kvevents;

void CheckBatch(std::string_view payload) {
  const gimbal::Result<kv::EventBatch> batch = kv::DecodeBatch(payload);
  if (!batch.ok()) {
    FUZZ_CHECK(!batch.status().message().empty(), "a refused batch without a reason");
    return;
  }
  // Round trip. NaN timestamps compare unequal to themselves: compare the rest then.
  const std::string again = kv::EncodeBatch(*batch);
  const gimbal::Result<kv::EventBatch> back = kv::DecodeBatch(again);
  FUZZ_CHECK(back.ok(), "an encoded batch does not decode: " + back.status().message());
  kv::EventBatch a = *batch, b = *back;
  FUZZ_CHECK(
      std::memcmp(&a.ts, &b.ts, sizeof(double)) == 0 || (std::isnan(a.ts) && std::isnan(b.ts)),
      "the timestamp changed");
  a.ts = b.ts = 0;
  FUZZ_CHECK(a == b, "a batch encoded and decoded again differs");
  FUZZ_CHECK(kv::EncodeBatch(*back) == again, "encoding is not stable");

  constexpr size_t kBound = 16;
  kv::BlockIndex index(kBound);
  index.Apply(*batch);
  FUZZ_CHECK(index.size() <= kBound, std::to_string(index.size()));
  if (batch->events.empty()) return;
  // The last event decides what its hashes are now: a remove's are gone; of a store's, the last
  // kBound distinct ones are held (a store adds or refreshes, the bound drops the oldest).
  const kv::Event& last = batch->events.back();
  if (const auto* r = std::get_if<kv::BlockRemoved>(&last)) {
    for (uint64_t h : r->block_hashes) FUZZ_CHECK(!index.Contains(h), std::to_string(h));
  } else if (const auto* st = std::get_if<kv::BlockStored>(&last)) {
    std::vector<uint64_t> recent;
    for (auto it = st->block_hashes.rbegin();
         it != st->block_hashes.rend() && recent.size() < kBound; ++it) {
      if (std::find(recent.begin(), recent.end(), *it) == recent.end()) recent.push_back(*it);
    }
    for (uint64_t h : recent) FUZZ_CHECK(index.Contains(h), std::to_string(h));
  } else {
    FUZZ_CHECK(index.size() == 0, "a clear left blocks");
  }
}

void CheckSequences(std::string_view bytes) {
  kv::SequenceTracker t;
  for (size_t pos = 0; pos + 8 <= bytes.size(); pos += 8) {
    const std::optional<int64_t> seq = kv::DecodeSeq(bytes.substr(pos, 8));
    FUZZ_CHECK(seq.has_value(), "an 8-byte frame did not decode");
    FUZZ_CHECK(kv::EncodeSeq(*seq) == bytes.substr(pos, 8), "sequence frame round trip");
    if (!kv::SequenceTracker::InRange(*seq)) continue;  // the subscriber refuses these
    const int64_t before = t.expected();
    switch (t.Offer(*seq)) {
      case kv::SequenceTracker::Verdict::kInOrder:
        FUZZ_CHECK(*seq == before && t.expected() == before + 1, std::to_string(*seq));
        break;
      case kv::SequenceTracker::Verdict::kGap:
        FUZZ_CHECK(*seq > before && t.expected() == before, std::to_string(*seq));
        // Alternately recovered up to it and given up on, as the subscriber does.
        if (*seq % 2 == 0) t.SettleFrom(before);
        t.SkipTo(*seq);
        FUZZ_CHECK(t.expected() == *seq + 1, std::to_string(t.expected()));
        break;
      case kv::SequenceTracker::Verdict::kDuplicate:
        FUZZ_CHECK(*seq < before && t.expected() == before, std::to_string(*seq));
        break;
      case kv::SequenceTracker::Verdict::kRestart:
        FUZZ_CHECK(*seq < before && t.expected() == before, std::to_string(*seq));
        t.Reset();
        FUZZ_CHECK(t.expected() == 0, "Reset does not expect 0");
        break;
    }
    FUZZ_CHECK(t.expected() >= 0 && t.expected() <= kv::SequenceTracker::kMaxSeq + 1,
               std::to_string(t.expected()));
    if (*seq % 7 == 3) t.ForgetSettled();  // a disconnection now and then
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = gimbal::fuzz::AsText(data, size);
  CheckBatch(bytes);
  CheckSequences(bytes);
  return 0;
}
