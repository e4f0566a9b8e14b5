#include "router/engine_metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <fmt/format.h>

namespace gimbal::router {

namespace {

using wire::Plausible;

void Warn(wire::ValueWarnings* w, std::string_view what, double v) {
  if (w != nullptr) w->Add(what, v);
}

// One snapshot field read from several samples; dropped as a whole when any one is implausible
// (a sum missing one engine's part would be wrong too).
struct Field {
  double value = 0;
  bool seen = false;
  bool bad = false;

  bool usable() const { return seen && !bad; }
  // The field's value, `previous` when it was dropped, `absent` when no sample had it. Only
  // plausible values reach llround, so it is never out of range.
  int64_t Count(int64_t previous, int64_t absent) const {
    return bad ? previous : seen ? static_cast<int64_t>(std::llround(value)) : absent;
  }
};

// A label's integer. kNone when it is no integer at all (vLLM writes "None" before profiling):
// that is no value, not an implausible one.
enum class LabelInt { kNone, kOk, kOutOfRange };
LabelInt ParseLabelInt(std::string_view s, int64_t* v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  if (ec == std::errc::result_out_of_range) return LabelInt::kOutOfRange;
  if (ec != std::errc() || end != s.data() + s.size()) return LabelInt::kNone;
  return LabelInt::kOk;
}

}  // namespace

bool SnapshotFromMetrics(const net::PromParseResult& page, const std::string& model, double now,
                         EngineSnapshot* out, wire::ValueWarnings* warnings) {
  Field waiting, running, kv_new, kv_old, capacity, pending;
  auto add = [&](Field& f, const net::PromSample& m, double max) {
    f.seen = true;
    if (!Plausible(m.value, max)) {
      f.bad = true;
      Warn(warnings, m.name, m.value);
    } else {
      f.value += m.value;
    }
  };
  auto add_usage = [&](Field& f, const net::PromSample& m) {
    f.seen = true;
    if (!wire::PlausibleUsage(m.value)) {
      f.bad = true;
      Warn(warnings, m.name, m.value);
    } else {
      f.value = std::max(f.value, m.value);
    }
  };
  for (const auto& m : page.samples) {
    std::string_view mn = m.Label("model_name");
    if (!mn.empty() && !model.empty() && mn != model) continue;
    if (m.name == "vllm:num_requests_waiting") {
      add(waiting, m, wire::kMaxEngineRequests);
    } else if (m.name == "vllm:num_requests_running") {
      add(running, m, wire::kMaxEngineRequests);
    } else if (m.name == "vllm:kv_cache_usage_perc") {
      add_usage(kv_new, m);
    } else if (m.name == "vllm:gpu_cache_usage_perc") {
      add_usage(kv_old, m);
    } else if (m.name == "vllm:cache_config_info") {
      int64_t b = 0, z = 0;
      LabelInt pb = ParseLabelInt(m.Label("num_gpu_blocks"), &b);
      LabelInt pz = ParseLabelInt(m.Label("block_size"), &z);
      if (pb == LabelInt::kNone || pz == LabelInt::kNone) continue;
      // In double: b × z may not fit an int64_t.
      const double tokens = static_cast<double>(b) * static_cast<double>(z);
      if (pb == LabelInt::kOutOfRange || pz == LabelInt::kOutOfRange || b < 0 || z < 0 ||
          tokens > wire::kMaxEngineTokens) {
        capacity.seen = capacity.bad = true;
        Warn(warnings, "vllm:cache_config_info num_gpu_blocks × block_size",
             pb == LabelInt::kOutOfRange || pz == LabelInt::kOutOfRange ? HUGE_VAL : tokens);
      } else if (b > 0 && z > 0) {
        capacity.seen = true;
        capacity.value += tokens;
      }
    } else if (m.name == "gimbal:prefill_pending_tokens") {
      if (m.value != -1) add(pending, m, wire::kMaxEngineTokens);  // -1: not reported
    }
  }
  // Sums of plausible parts can still be implausible.
  struct Sum {
    Field* field;
    std::string_view name;
    double max;
  };
  for (const Sum& sum : {Sum{&waiting, "vllm:num_requests_waiting", wire::kMaxEngineRequests},
                         Sum{&running, "vllm:num_requests_running", wire::kMaxEngineRequests},
                         Sum{&capacity, "vllm:cache_config_info", wire::kMaxEngineTokens},
                         Sum{&pending, "gimbal:prefill_pending_tokens", wire::kMaxEngineTokens}}) {
    if (sum.field->usable() && sum.field->value > sum.max) {
      sum.field->bad = true;
      Warn(warnings, fmt::format("{} (sum over engines)", sum.name), sum.field->value);
    }
  }
  if (!waiting.usable() && !running.usable()) return false;

  const EngineSnapshot& prev = *out;
  EngineSnapshot s;
  s.taken_at = now;
  s.waiting = waiting.Count(prev.waiting, 0);
  s.running = running.Count(prev.running, 0);
  const Field& kv = kv_new.seen ? kv_new : kv_old;
  s.kv_usage = kv.bad ? prev.kv_usage : kv.seen ? std::clamp(kv.value, 0.0, 1.0) : 0.0;
  s.kv_capacity_tokens = capacity.Count(prev.kv_capacity_tokens, 0);
  s.prefill_pending_tokens = pending.Count(prev.prefill_pending_tokens, -1);
  *out = s;
  return true;
}

bool EngineMetricRead(std::string_view name) {
  return name == "vllm:num_requests_waiting" || name == "vllm:num_requests_running" ||
         name == "vllm:kv_cache_usage_perc" || name == "vllm:gpu_cache_usage_perc" ||
         name == "vllm:cache_config_info" || name == "gimbal:prefill_pending_tokens";
}

}  // namespace gimbal::router
