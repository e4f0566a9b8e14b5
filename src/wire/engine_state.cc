#include "wire/engine_state.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wire/priority_tag.h"

namespace gimbal::wire {

namespace f = state_field;

std::string EngineStateJson(const EngineState& s) {
  nlohmann::json j = {{f::kEngine, s.engine},
                      {f::kModel, s.model},
                      {f::kWaiting, s.load.waiting},
                      {f::kRunning, s.load.running},
                      {f::kKvUsage, s.load.kv_usage},
                      {f::kKvCapacityTokens, s.load.kv_capacity_tokens},
                      {f::kPrefillPendingTokens, s.load.prefill_pending_tokens},
                      {f::kTakenAt, s.load.taken_at},
                      {f::kMoePressure, s.moe_pressure},
                      {f::kPreemptions, s.preemptions},
                      {f::kSteps, s.steps},
                      {f::kVersion, s.version}};
  if (!s.class_locality.empty()) j[f::kClassLocality] = s.class_locality;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string EngineStateEvent(const EngineState& state) {
  return net::FormatSseEvent(EngineStateJson(state));
}

bool IsStateEvent(const net::SseEvent& event) {
  return event.has_data && (event.event.empty() || event.event == "message");
}

bool Plausible(double v, double max) {
  return std::isfinite(v) && v >= 0 && v <= max;
}

bool PlausibleUsage(double v) {
  return std::isfinite(v) && v >= -kUsageTolerance && v <= 1 + kUsageTolerance;
}

void ValueWarnings::Add(std::string_view what, double value) {
  if (count++ == 0) first = fmt::format("{} = {}", what, value);
}

bool SnapshotFromPushed(std::string_view data, double now, EngineSnapshot* out,
                        double* moe_pressure, ValueWarnings* warnings,
                        std::vector<double>* class_locality) {
  if (!CheckJsonNesting(data).ok()) return false;  // a state is flat: no deep document is built
  const auto j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  // Whether `key` is present as a number (any value, implausible ones included).
  auto number = [&](const char* key, double* v) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return false;
    *v = it->get<double>();
    return true;
  };
  // Whether the number `v` read for `key` is within [0, max]; warns when not.
  auto check = [&](const char* key, double v, double max) {
    if (Plausible(v, max)) return true;
    if (warnings != nullptr) warnings->Add(key, v);
    return false;
  };
  double waiting = 0, running = 0, kv = 0;
  if (!number(f::kWaiting, &waiting) || !number(f::kRunning, &running) ||
      !number(f::kKvUsage, &kv)) {
    return false;
  }
  const bool waiting_ok = check(f::kWaiting, waiting, kMaxEngineRequests);
  const bool running_ok = check(f::kRunning, running, kMaxEngineRequests);
  if (!waiting_ok && !running_ok) return false;

  const EngineSnapshot& prev = *out;
  EngineSnapshot s;
  s.taken_at = now;
  s.waiting = waiting_ok ? static_cast<int64_t>(std::llround(waiting)) : prev.waiting;
  s.running = running_ok ? static_cast<int64_t>(std::llround(running)) : prev.running;
  if (PlausibleUsage(kv)) {
    s.kv_usage = std::clamp(kv, 0.0, 1.0);
  } else {
    if (warnings != nullptr) warnings->Add(f::kKvUsage, kv);
    s.kv_usage = prev.kv_usage;
  }
  double cap = 0, pending = -1, moe = 1;
  if (number(f::kKvCapacityTokens, &cap)) {
    s.kv_capacity_tokens = check(f::kKvCapacityTokens, cap, kMaxEngineTokens)
                               ? static_cast<int64_t>(std::llround(cap))
                               : prev.kv_capacity_tokens;
  }
  if (number(f::kPrefillPendingTokens, &pending) && pending != -1) {  // -1: not reported
    s.prefill_pending_tokens = check(f::kPrefillPendingTokens, pending, kMaxEngineTokens)
                                   ? static_cast<int64_t>(std::llround(pending))
                                   : prev.prefill_pending_tokens;
  }
  double pressure = 1;
  if (number(f::kMoePressure, &moe)) {
    if (moe == 0) {
      pressure = 1;  // no expert load reported: read as average
    } else {
      pressure = check(f::kMoePressure, moe, kMaxMoePressure) ? moe : *moe_pressure;
    }
  }
  *out = s;
  *moe_pressure = pressure;
  if (class_locality != nullptr) {
    auto it = j.find(f::kClassLocality);
    if (it == j.end()) {
      class_locality->clear();
    } else if (!it->is_array() || it->size() > kMaxClasses) {
      if (warnings != nullptr) {
        warnings->Add(it->is_array() ? "class_locality entries" : "class_locality (not an array)",
                      it->is_array() ? static_cast<double>(it->size()) : 0.0);
      }
    } else {
      std::vector<double> v;
      v.reserve(it->size());
      bool ok = true;
      for (const auto& x : *it) {
        const double d = x.is_number() ? x.get<double>() : std::nan("");
        if (!Plausible(d, 1.0)) {
          if (warnings != nullptr) warnings->Add("class_locality entry", d);
          ok = false;
          break;
        }
        v.push_back(d);
      }
      if (ok) *class_locality = std::move(v);
    }
  }
  return true;
}

}  // namespace gimbal::wire
