// Emulator: the simulator's DP+EP cluster model driven by the real clock.
//
// The simulator (sim/simulator.h) drives sim::Cluster on a virtual clock; the Emulator drives the
// very same model on the host's steady clock, so `gimbal engine` behaves like the simulated
// cluster in real time (the ns-3 pattern: one model, a virtual-time and a real-time driver).
//
// One driver thread owns the cluster. Each iteration it takes the requests submitted since the
// last step (a thread-safe inbox), plans one lockstep step on every rank (Cluster::Plan), prices
// it with the cost model (Cluster::Cost), sleeps until the step's end — the step's modelled
// duration times `time_scale` after its start — and then applies it (Cluster::Complete), handing
// each request's token events to the callback it was submitted with. Requests that arrive during a
// step join the next one, as in vLLM. A plan with nothing to run is followed by one more plan
// (with async scheduling it may have released the slots of requests that just finished) before
// the driver idles until new input. After every step (and after admitting new requests) it
// publishes each rank's EngineSnapshot, folds the step's source x expert routing into a decayed
// RoutingStats, and calls the step watchers.
//
// With `kv_events_endpoint` set, every rank publishes its prefix cache's changes as vLLM's
// KV-cache events (one ZeroMQ publisher per DP rank, docs/kv-events.md): the block pool's
// observer gathers a step's stores and evictions, and the driver hands them to the rank's
// publisher after the step (never blocking; a full publisher queue drops, which subscribers see
// as a gap).
//
// Callbacks run on the driver thread and must return quickly without blocking (post the work
// elsewhere). Everything else here is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/engine_state.h"
#include "core/params.h"
#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/routing_stats.h"
#include "sim/cluster.h"

namespace gimbal::engine {

struct EmulatorOptions {
  sim::ClusterSpec cluster;
  std::string queue_policy = "fcfs";  // inside every engine (a registered queue policy)
  Params queue_params;
  std::string step_policy = "vllm";  // token budgets of each lockstep step (policy/step)
  Params step_params;
  // Modelled step durations are multiplied by this before sleeping: 1 is real time, 0.1 runs ten
  // times faster, 0 does not sleep at all.
  double time_scale = 1;
  // Source x expert statistics: exponential decay per step by default (a window of N steps would
  // keep N copies of layers x ranks x experts counts).
  RoutingStatsOptions stats{RoutingStatsOptions::Mode::kDecay, 1000, 0.999};
  // KV-cache events: empty publishes none. Rank r binds kvevents::EndpointForRank(endpoint, r)
  // (vLLM's rule: tcp port + r, inproc/ipc name + "_dp<r>"); likewise the optional replay
  // endpoint. Needs prefix caching (cluster.engine.enable_prefix_caching).
  std::string kv_events_endpoint;
  std::string kv_events_replay_endpoint;
};

// What happened to a submitted request (or to a command).
struct Update {
  int64_t generated = 0;  // output tokens so far (1 = first token)
  bool finished = false;  // generation complete, or failed when `error` is set
  int preemptions = 0;
  double time = 0;    // driver clock (seconds since start) at the end of the step
  std::string error;  // non-empty: the request failed (rejected, emulator stopped, ...)
  int status = 0;     // with an error: 400 rejected as invalid, 503 shutting down
};

// Runs on the driver thread; must not block.
using UpdateSink = std::function<void(const Update&)>;

struct Submission {
  int engine = 0;             // DP rank
  int64_t prompt_tokens = 1;  // >= 1
  int64_t output_tokens = 1;  // >= 1
  int32_t traffic_class = 0;  // index into the cluster's traffic classes (clamped)
  int64_t priority = 0;       // for the `priority` queue policy
  // Chained hashes of the prompt's full KV blocks (Request::prefix_hashes, the engine's block
  // size): prompts whose hashes agree share cached blocks when prefix caching is on. Empty: the
  // prompt shares nothing.
  std::vector<uint64_t> prefix_hashes;
};

// Per-rank state as last published by the driver.
struct RankState {
  EngineSnapshot snapshot;  // taken_at on the driver clock
  double moe_pressure = 1;
  // Per traffic class: the share of its expert traffic from this rank that GPUs on the rank's
  // node serve under the current placement (sim::Cluster::ClassLocality).
  std::vector<double> class_locality;
  int64_t preemptions = 0;
  int64_t steps = 0;
  // Prefix-cache lookups since the start, in tokens (EngineScheduler::prefix_cache_queries and
  // prefix_cache_hits, vLLM's vllm:prefix_cache_queries / vllm:prefix_cache_hits); 0 with prefix
  // caching off.
  int64_t prefix_cache_queries = 0;
  int64_t prefix_cache_hits = 0;
};

// A cluster of `dp` ranks from catalogue names (data/models, data/gpus, data/topologies) with
// vLLM's default engine limits for the GPU, as a scenario file without `engine:` gets them. The
// engine switches (prefix caching, full-ISL admission, async scheduling) keep EngineConfig's
// defaults; the cluster hands `cluster.engine` to every rank's scheduler unchanged.
Result<sim::ClusterSpec> ClusterFromCatalog(const std::string& model, const std::string& gpu,
                                            const std::string& topology, int dp);

class Emulator {
 public:
  // Builds the cluster (fails when the model does not fit) and the queue and step policies.
  // Not started.
  static Result<std::unique_ptr<Emulator>> Create(EmulatorOptions options);
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  // Starts the driver thread. Idempotent.
  void Start();
  // Stops and joins the driver; every request still in flight and every pending command gets an
  // Update with an error. Idempotent. Sinks are released before it returns.
  void Stop();

  // Queues a request for `s.engine`; returns its id. The sink gets one Update per step in which
  // the request sampled a token, the last with finished = true; or one Update with an error when
  // the request cannot run (bad engine, longer than the rank's KV cache, emulator stopped).
  uint64_t Submit(const Submission& s, UpdateSink sink);
  // Takes the request out of its engine before the next step (its KV blocks freed, as vLLM's
  // abort does); its remaining updates are dropped.
  void Cancel(uint64_t id);
  // Installs a placement between two steps (Cluster::SetPlacement validates it). `done` gets an
  // Update with finished = true and `error` empty on success.
  void SetPlacement(Placement p, UpdateSink done);

  // Latest published state of rank `r`.
  RankState State(int r) const;
  // Increases after every publication (each step, each batch of admissions).
  uint64_t state_version() const { return state_version_.load(std::memory_order_acquire); }
  // A copy of the decayed source x expert counts (layers x ranks x experts).
  SourceExpertCounts RoutingCounts() const;
  int64_t routing_steps() const;
  // The installed placement.
  Placement CurrentPlacement() const;

  // `fn` runs on the driver thread after every publication; returns an id for RemoveWatcher.
  int AddWatcher(std::function<void()> fn);
  void RemoveWatcher(int id);

  // Seconds on the driver clock (steady, 0 at Create).
  double Now() const;
  // Unix time (seconds) of driver-clock time `t`.
  double UnixTime(double t) const { return unix_at_zero_ + t; }

  int ranks() const { return spec_.dp; }
  const sim::ClusterSpec& spec() const { return spec_; }
  int64_t kv_capacity_tokens() const { return kv_capacity_tokens_; }
  double time_scale() const { return options_.time_scale; }
  int64_t steps() const { return steps_.load(std::memory_order_relaxed); }
  // Rank r's bound KV-event endpoint (ephemeral ports resolved); empty without KV events.
  std::string kv_events_endpoint(int r) const;
  std::string kv_events_replay_endpoint(int r) const;

 private:
  struct KvEventsRank;  // a rank's block-pool observer and publisher (emulator.cc)
  struct Pending {
    uint64_t id;
    Submission sub;
    UpdateSink sink;
    std::chrono::steady_clock::time_point submitted;  // when Submit took it
  };
  struct Command {
    Placement placement;
    UpdateSink done;
  };
  struct Live {
    int engine;
    UpdateSink sink;
  };

  explicit Emulator(EmulatorOptions options);
  void Loop();
  // Driver thread: admits the inbox; true when something was admitted or changed.
  bool Admit(std::deque<Pending>& in, std::vector<uint64_t>& cancels, std::deque<Command>& cmds);
  void RecordRouting(const std::vector<sim::StepPlan>& plans);
  void Publish(double now);
  Status StartKvEvents();
  void PublishKvEvents();

  EmulatorOptions options_;
  sim::ClusterSpec spec_;
  std::unique_ptr<QueuePolicy> queue_;
  std::unique_ptr<StepPolicy> step_;
  std::unique_ptr<sim::Cluster> cluster_;  // driver thread only (after Start)
  int64_t kv_capacity_tokens_ = 0;
  double unix_at_zero_ = 0;
  std::chrono::steady_clock::time_point zero_;

  // Inbox, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool started_ = false;
  bool stopped_ = false;  // Stop() ran
  uint64_t next_id_ = 1;
  std::deque<Pending> inbox_;
  std::vector<uint64_t> cancels_;
  std::deque<Command> commands_;
  std::thread driver_;

  // Driver thread only.
  std::unordered_map<uint64_t, Live> live_;
  std::vector<double> class_tokens_;  // [rank * classes + class], scratch

  // Published state.
  mutable std::mutex state_mu_;
  std::vector<RankState> states_;
  Placement placement_;
  std::atomic<uint64_t> state_version_{0};
  std::atomic<int64_t> steps_{0};

  mutable std::mutex stats_mu_;
  RoutingStats stats_;

  std::mutex watch_mu_;
  int next_watcher_ = 1;
  std::map<int, std::function<void()>> watchers_;

  std::vector<std::unique_ptr<KvEventsRank>> kv_events_;  // per rank; empty without KV events
};

}  // namespace gimbal::engine
