// The engine-state protocol: how a gimbal engine publishes its load, and how a front end reads it.
//
//   GET kStatePath        200 application/json: the engine's state now, one JSON object.
//   GET kStateStreamPath  200 text/event-stream: one server-sent event per state, the state JSON
//                         as its data and no `event:` field (the default type), sent after every
//                         engine step (coalesced for a slow reader) and repeated at least once a
//                         second while nothing changes. A state is current when it arrives. An
//                         engine without the stream (vLLM) answers 404.
//
// A state is a JSON object of numbers, plus the model's name (docs/emulator.md):
//   engine, model, waiting, running, kv_usage (0..1), kv_capacity_tokens, prefill_pending_tokens
//   (-1: not reported), taken_at (Unix seconds), moe_pressure (this GPU's expert load over the
//   mean; 0 reads as 1), preemptions, steps, version (increases with every publication), and
//   class_locality: an array, per traffic class, of the share in [0, 1] of that class's expert
//   traffic from this rank that GPUs on its own node serve under the current placement (what
//   class-aware dispatch reads; absent when the engine does not know it).
// A reader needs waiting, running and kv_usage; the others are optional, unknown fields ignored.
//
// Engines are not trusted: a value no real engine can have — negative, NaN, ±Inf, a request count
// above kMaxEngineRequests, a token count above kMaxEngineTokens, a usage fraction outside [0, 1]
// by more than kUsageTolerance, a MoE pressure above kMaxMoePressure — is not a signal. The field
// it belongs to is dropped (it keeps the value it had in the previous snapshot) and the value is
// reported in ValueWarnings, never converted (no llround out of range). The same bounds apply to
// what a front end scrapes from an engine's Prometheus page.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine_state.h"
#include "net/sse.h"

namespace gimbal::wire {

inline constexpr std::string_view kStatePath = "/gimbal/state";
inline constexpr std::string_view kStateStreamPath = "/gimbal/state/stream";

// The state's field names.
namespace state_field {
inline constexpr char kEngine[] = "engine";
inline constexpr char kModel[] = "model";
inline constexpr char kWaiting[] = "waiting";
inline constexpr char kRunning[] = "running";
inline constexpr char kKvUsage[] = "kv_usage";
inline constexpr char kKvCapacityTokens[] = "kv_capacity_tokens";
inline constexpr char kPrefillPendingTokens[] = "prefill_pending_tokens";
inline constexpr char kTakenAt[] = "taken_at";
inline constexpr char kMoePressure[] = "moe_pressure";
inline constexpr char kPreemptions[] = "preemptions";
inline constexpr char kSteps[] = "steps";
inline constexpr char kVersion[] = "version";
inline constexpr char kClassLocality[] = "class_locality";
}  // namespace state_field

// One state as an engine publishes it.
struct EngineState {
  int engine = 0;  // the engine's index among the server's engines
  std::string model;
  EngineSnapshot load;  // load.taken_at in Unix seconds
  double moe_pressure = 1;
  int64_t preemptions = 0;
  int64_t steps = 0;
  uint64_t version = 0;
  std::vector<double> class_locality;  // per traffic class; empty: not reported
};

// The state's JSON object (no trailing newline).
std::string EngineStateJson(const EngineState& state);
// One event of the state stream: "data: <EngineStateJson>\n\n".
std::string EngineStateEvent(const EngineState& state);
// Whether an event read from a state stream carries a state (data, and the default type).
bool IsStateEvent(const net::SseEvent& event);

inline constexpr double kMaxEngineRequests = 1e9;  // waiting, running
inline constexpr double kMaxEngineTokens = 1e12;   // KV capacity, prompt tokens pending
inline constexpr double kUsageTolerance = 0.01;    // kv_usage in [-tol, 1 + tol], then clamped
inline constexpr double kMaxMoePressure = 1e4;     // relative to the mean over GPUs
inline constexpr size_t kMaxClasses = 4096;        // class_locality entries

// Whether a count or token number `v` is finite and within [0, max].
bool Plausible(double v, double max);
// Whether a usage fraction is finite and within [-kUsageTolerance, 1 + kUsageTolerance].
bool PlausibleUsage(double v);

// Implausible values skipped while reading one state (or one scraped page).
struct ValueWarnings {
  int count = 0;
  std::string first;  // the first one, e.g. "waiting = -1e+308"

  void Add(std::string_view what, double value);
};

// A pushed state (one event's data) as a snapshot taken `now` (the reader's clock). On entry *out
// and *moe_pressure hold the engine's previous values; an implausible field keeps its previous
// value; an absent optional field gets its default (kv_capacity_tokens 0, prefill_pending_tokens
// -1, moe_pressure 1). False, and nothing touched, when `data` is not a JSON object with numbers
// `waiting`, `running` and `kv_usage`, or when neither request count is plausible. `warnings`
// (optional) is added to. `class_locality` (optional) holds the previous array on entry: it
// becomes the state's array, empty when the state has none, and stays as it was (with a warning)
// when the array is malformed: not an array, more than kMaxClasses entries, or an entry that is
// not a number in [0, 1].
bool SnapshotFromPushed(std::string_view data, double now, EngineSnapshot* out,
                        double* moe_pressure, ValueWarnings* warnings = nullptr,
                        std::vector<double>* class_locality = nullptr);

}  // namespace gimbal::wire
