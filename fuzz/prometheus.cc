// Fuzz target: an engine's /metrics page, read as the router reads it: net::ParsePrometheusText
// then router::SnapshotFromMetrics (for the page's model, another model and any model).
// Invariants: never crashes; warnings and messages agree; sample names are metric names; a
// snapshot read is plausible (counts in range, KV usage in [0, 1]) starting from a default
// snapshot and from an odd previous one, and when none is read *out is untouched.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/engine_state.h"
#include "fuzz_check.h"
#include "net/prometheus_parser.h"
#include "router/engine_metrics.h"
#include "wire/engine_state.h"

namespace {

using gimbal::EngineSnapshot;
namespace router = gimbal::router;
namespace wire = gimbal::wire;

bool Plausible(const EngineSnapshot& s) {
  return s.waiting >= 0 && s.waiting <= wire::kMaxEngineRequests && s.running >= 0 &&
         s.running <= wire::kMaxEngineRequests && std::isfinite(s.kv_usage) && s.kv_usage >= 0 &&
         s.kv_usage <= 1 && s.kv_capacity_tokens >= 0 &&
         s.kv_capacity_tokens <= wire::kMaxEngineTokens &&
         (s.prefill_pending_tokens == -1 ||
          (s.prefill_pending_tokens >= 0 && s.prefill_pending_tokens <= wire::kMaxEngineTokens));
}

std::string Describe(const EngineSnapshot& s) {
  return "waiting=" + std::to_string(s.waiting) + " running=" + std::to_string(s.running) +
         " kv=" + std::to_string(s.kv_usage) + " cap=" + std::to_string(s.kv_capacity_tokens) +
         " pending=" + std::to_string(s.prefill_pending_tokens);
}

bool IsNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto page = gimbal::net::ParsePrometheusText(gimbal::fuzz::AsText(data, size));
  FUZZ_CHECK(page.warnings >= 0, std::to_string(page.warnings));
  FUZZ_CHECK(page.messages.size() <= static_cast<size_t>(page.warnings),
             std::to_string(page.messages.size()));
  FUZZ_CHECK(page.warnings == 0 || !page.messages.empty(), "warnings without a message");
  for (const auto& s : page.samples) {
    FUZZ_CHECK(!s.name.empty(), "a sample without a name");
    for (size_t i = 0; i < s.name.size(); ++i) {
      FUZZ_CHECK(IsNameChar(s.name[i], i == 0), s.name);
    }
  }

  EngineSnapshot odd;
  odd.waiting = 3;
  odd.running = 4;
  odd.kv_usage = 0.5;
  odd.kv_capacity_tokens = 1000;
  odd.prefill_pending_tokens = 7;
  odd.taken_at = -1;
  for (const char* model : {"m", "Qwen/Qwen3-30B-A3B", ""}) {
    for (const EngineSnapshot& prev : {EngineSnapshot{}, odd}) {
      EngineSnapshot s = prev;
      wire::ValueWarnings w;
      if (router::SnapshotFromMetrics(page, model, 5.0, &s, &w)) {
        FUZZ_CHECK(Plausible(s), Describe(s));
        FUZZ_CHECK(s.taken_at == 5.0, std::to_string(s.taken_at));
      } else {
        FUZZ_CHECK(s.waiting == prev.waiting && s.running == prev.running &&
                       s.taken_at == prev.taken_at && s.kv_usage == prev.kv_usage,
                   "a failed read changed the snapshot");
      }
      FUZZ_CHECK(w.count >= 0 && (w.count == 0) == w.first.empty(), w.first);
    }
  }
  return 0;
}
