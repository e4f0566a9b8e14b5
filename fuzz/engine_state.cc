// Fuzz target: a gimbal engine's pushed state stream (/gimbal/state/stream), read as the router
// reads it: server-sent events (net::SseParser), each state event's data (wire::IsStateEvent)
// through wire::SnapshotFromPushed, the previous snapshot and MoE pressure carried from one to the
// next.
// Also each line of the input alone as one state's JSON.
// Invariants: never crashes; every snapshot read is plausible (counts in range, KV usage in
// [0, 1], MoE pressure finite and in (0, kMaxMoePressure]) and reads back the same once written
// (wire::EngineStateJson); a refused state changes nothing.
#include "core/engine_state.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "net/sse.h"
#include "wire/engine_state.h"

namespace {

using gimbal::EngineSnapshot;
namespace wire = gimbal::wire;

void CheckPlausible(const EngineSnapshot& s, double moe) {
  const std::string d =
      "waiting=" + std::to_string(s.waiting) + " running=" + std::to_string(s.running) +
      " kv=" + std::to_string(s.kv_usage) + " cap=" + std::to_string(s.kv_capacity_tokens) +
      " pending=" + std::to_string(s.prefill_pending_tokens) + " moe=" + std::to_string(moe);
  FUZZ_CHECK(s.waiting >= 0 && s.waiting <= wire::kMaxEngineRequests, d);
  FUZZ_CHECK(s.running >= 0 && s.running <= wire::kMaxEngineRequests, d);
  FUZZ_CHECK(std::isfinite(s.kv_usage) && s.kv_usage >= 0 && s.kv_usage <= 1, d);
  FUZZ_CHECK(s.kv_capacity_tokens >= 0 && s.kv_capacity_tokens <= wire::kMaxEngineTokens, d);
  FUZZ_CHECK(s.prefill_pending_tokens == -1 || (s.prefill_pending_tokens >= 0 &&
                                                s.prefill_pending_tokens <= wire::kMaxEngineTokens),
             d);
  FUZZ_CHECK(std::isfinite(moe) && moe > 0 && moe <= wire::kMaxMoePressure, d);
}

// Reads one state into (snap, moe), checking what comes out.
void ReadState(std::string_view json, double now, EngineSnapshot* snap, double* moe) {
  const EngineSnapshot before = *snap;
  const double moe_before = *moe;
  wire::ValueWarnings w;
  if (wire::SnapshotFromPushed(json, now, snap, moe, &w)) {
    FUZZ_CHECK(snap->taken_at == now, std::to_string(snap->taken_at));
    CheckPlausible(*snap, *moe);
    // What was read, written as an engine writes it, reads back the same.
    wire::EngineState state;
    state.load = *snap;
    state.moe_pressure = *moe;
    EngineSnapshot back;
    double back_moe = 1;
    FUZZ_CHECK(wire::SnapshotFromPushed(wire::EngineStateJson(state), now, &back, &back_moe),
               "a state written does not read back");
    FUZZ_CHECK(back.waiting == snap->waiting && back.running == snap->running &&
                   back.kv_usage == snap->kv_usage &&
                   back.kv_capacity_tokens == snap->kv_capacity_tokens &&
                   back.prefill_pending_tokens == snap->prefill_pending_tokens && back_moe == *moe,
               "a state written reads back different");
  } else {
    FUZZ_CHECK(snap->waiting == before.waiting && snap->running == before.running &&
                   snap->kv_usage == before.kv_usage && snap->taken_at == before.taken_at &&
                   *moe == moe_before,
               "a refused state changed the snapshot");
  }
  FUZZ_CHECK(w.count >= 0 && (w.count == 0) == w.first.empty(), w.first);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = gimbal::fuzz::AsText(data, size);

  // As an event stream, in pieces of up to 512 bytes (as reads would deliver it).
  gimbal::net::SseParser parser(1 << 20);
  std::vector<gimbal::net::SseEvent> events;
  EngineSnapshot snap;
  double moe = 1;
  double now = 0;
  for (size_t pos = 0; pos < bytes.size(); pos += 512) {
    events.clear();
    if (!parser.Feed(bytes.substr(pos, 512), events)) break;
    for (const auto& ev : events) {
      if (wire::IsStateEvent(ev)) ReadState(ev.data, now += 1, &snap, &moe);
    }
  }

  // Each line as one state's JSON.
  EngineSnapshot line_snap;
  double line_moe = 1;
  size_t start = 0;
  while (start <= bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) end = bytes.size();
    ReadState(bytes.substr(start, end - start), 1, &line_snap, &line_moe);
    start = end + 1;
  }
  return 0;
}
