#include "engine/emulator.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "kvevents/publisher.h"
#include "model/catalog.h"
#include "policy/queue/queue_policy.h"

namespace gimbal::engine {

namespace {
using Clock = std::chrono::steady_clock;

// A driver that overslept by more than this starts the next step at "now" instead of at the
// previous step's planned end, so a late wake-up does not turn into a burst of short steps.
constexpr double kMaxCatchUp = 0.005;
}  // namespace

Result<sim::ClusterSpec> ClusterFromCatalog(const std::string& model, const std::string& gpu,
                                            const std::string& topology, int dp) {
  if (dp < 1) return InvalidArgument("dp must be >= 1");
  auto m = LoadModel(model);
  if (!m.ok()) return m.status().WithContext("model");
  auto g = LoadGpu(gpu);
  if (!g.ok()) return g.status().WithContext("gpu");
  auto hw = LoadTopology(topology, *g);
  if (!hw.ok()) return hw.status().WithContext("topology");
  sim::ClusterSpec c;
  c.model = *m;
  c.hardware = *hw;
  c.hardware.gpu = *g;
  c.dp = dp;
  ApplyVllmServerDefaults(*g, c.engine);
  return c;
}

// One rank's KV-event source: hears its block pool (driver thread) and publishes per step.
struct Emulator::KvEventsRank : sim::BlockPoolObserver {
  explicit KvEventsRank(int64_t block_size) : collector(block_size) {}
  void OnStored(uint64_t hash) override { collector.Stored(hash); }
  void OnRemoved(uint64_t hash) override { collector.Removed(hash); }
  kvevents::EventCollector collector;
  std::unique_ptr<kvevents::Publisher> publisher;
};

Status Emulator::StartKvEvents() {
  const std::string& endpoint = options_.kv_events_endpoint;
  if (endpoint.empty()) {
    if (!options_.kv_events_replay_endpoint.empty()) {
      return InvalidArgument("a KV-event replay endpoint needs a KV-event endpoint");
    }
    return {};
  }
  if (!spec_.engine.enable_prefix_caching) {
    return InvalidArgument("KV-cache events need prefix caching (enable_prefix_caching)");
  }
  for (int r = 0; r < spec_.dp; ++r) {
    kvevents::PublisherOptions po;
    auto ep = kvevents::EndpointForRank(endpoint, r);
    if (!ep.ok()) return ep.status().WithContext("KV-event endpoint");
    po.endpoint = *ep;
    if (!options_.kv_events_replay_endpoint.empty()) {
      auto rep = kvevents::EndpointForRank(options_.kv_events_replay_endpoint, r);
      if (!rep.ok()) return rep.status().WithContext("KV-event replay endpoint");
      po.replay_endpoint = *rep;
    }
    po.data_parallel_rank = r;
    auto pub = kvevents::Publisher::Create(std::move(po));
    if (!pub.ok()) return pub.status().WithContext(fmt::format("KV events of engine {}", r));
    auto k = std::make_unique<KvEventsRank>(spec_.engine.block_size);
    k->publisher = std::move(*pub);
    cluster_->engine(r).mutable_block_pool()->SetObserver(k.get());
    kv_events_.push_back(std::move(k));
  }
  return {};
}

void Emulator::PublishKvEvents() {
  if (kv_events_.empty()) return;
  const double ts = UnixTime(Now());
  for (auto& k : kv_events_) {
    if (!k->collector.empty()) k->publisher->Publish(k->collector.Take(ts));
  }
}

std::string Emulator::kv_events_endpoint(int r) const {
  if (r < 0 || r >= static_cast<int>(kv_events_.size())) return "";
  return kv_events_[r]->publisher->endpoint();
}

std::string Emulator::kv_events_replay_endpoint(int r) const {
  if (r < 0 || r >= static_cast<int>(kv_events_.size())) return "";
  return kv_events_[r]->publisher->replay_endpoint();
}

Result<std::unique_ptr<Emulator>> Emulator::Create(EmulatorOptions options) {
  if (!(options.time_scale >= 0)) return InvalidArgument("time_scale must be >= 0");
  auto queue = MakeQueuePolicy(options.queue_policy, options.queue_params);
  if (!queue.ok()) return queue.status();
  std::unique_ptr<Emulator> e(new Emulator(std::move(options)));
  e->queue_ = std::move(*queue);
  auto cluster = sim::Cluster::Create(e->spec_, e->queue_.get());
  if (!cluster.ok()) return cluster.status();
  e->cluster_ = std::move(*cluster);
  StepDeps step_deps;
  step_deps.cost_model = &e->cluster_->cost_model();
  step_deps.ranks = e->spec_.dp;
  step_deps.async_scheduling = e->spec_.engine.async_scheduling;
  auto step = MakeStepPolicy(e->options_.step_policy, e->options_.step_params, step_deps);
  if (!step.ok()) return step.status();
  e->step_ = std::move(*step);
  e->cluster_->SetStepPolicy(e->step_.get());
  e->kv_capacity_tokens_ = e->cluster_->kv_capacity_tokens();
  e->placement_ = e->cluster_->placement();
  e->class_tokens_.assign(static_cast<size_t>(e->spec_.dp) * e->spec_.classes.size(), 0.0);
  GIMBAL_RETURN_IF_ERROR(e->StartKvEvents());
  e->Publish(0);
  return e;
}

Emulator::Emulator(EmulatorOptions options)
    : options_(std::move(options)),
      spec_(options_.cluster),
      zero_(Clock::now()),
      states_(static_cast<size_t>(std::max(spec_.dp, 1))),
      stats_(std::max(spec_.model.moe_layers(), 1), std::max(spec_.dp, 1),
             std::max(spec_.model.experts, 1), options_.stats) {
  unix_at_zero_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Emulator::~Emulator() {
  Stop();
  for (int r = 0; r < static_cast<int>(kv_events_.size()); ++r) {
    cluster_->engine(r).mutable_block_pool()->SetObserver(nullptr);
  }
}

double Emulator::Now() const {
  return std::chrono::duration<double>(Clock::now() - zero_).count();
}

void Emulator::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  driver_ = std::thread([this] { Loop(); });
}

void Emulator::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stop_ = true;
    stopped_ = true;
  }
  cv_.notify_all();
  if (driver_.joinable()) driver_.join();
  // The driver is gone (or never ran): fail whatever is left, then drop the sinks.
  std::deque<Pending> in;
  std::deque<Command> cmds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in.swap(inbox_);
    cmds.swap(commands_);
    cancels_.clear();
  }
  Update u;
  u.finished = true;
  u.error = "the engine is shutting down";
  u.status = 503;
  u.time = Now();
  for (auto& p : in) p.sink(u);
  for (auto& c : cmds) c.done(u);
  for (auto& [id, l] : live_) {
    if (l.sink) l.sink(u);
  }
  live_.clear();
  std::lock_guard<std::mutex> lock(watch_mu_);
  watchers_.clear();
}

uint64_t Emulator::Submit(const Submission& s, UpdateSink sink) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    if (!stop_) {
      inbox_.push_back({id, s, std::move(sink), Clock::now()});
      sink = nullptr;
    }
  }
  if (sink) {
    Update u;
    u.finished = true;
    u.error = "the engine is shutting down";
    u.status = 503;
    sink(u);
    return id;
  }
  cv_.notify_all();
  return id;
}

void Emulator::Cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(id);
  }
  cv_.notify_all();
}

void Emulator::SetPlacement(Placement p, UpdateSink done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      commands_.push_back({std::move(p), std::move(done)});
      done = nullptr;
    }
  }
  if (done) {
    Update u;
    u.finished = true;
    u.error = "the engine is shutting down";
    u.status = 503;
    done(u);
    return;
  }
  cv_.notify_all();
}

RankState Emulator::State(int r) const {
  std::lock_guard<std::mutex> lock(state_mu_);
  if (r < 0 || r >= static_cast<int>(states_.size())) return {};
  return states_[r];
}

SourceExpertCounts Emulator::RoutingCounts() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_.Counts();
}

int64_t Emulator::routing_steps() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_.steps_recorded();
}

Placement Emulator::CurrentPlacement() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return placement_;
}

int Emulator::AddWatcher(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  const int id = next_watcher_++;
  watchers_.emplace(id, std::move(fn));
  return id;
}

void Emulator::RemoveWatcher(int id) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  watchers_.erase(id);
}

bool Emulator::Admit(std::deque<Pending>& in, std::vector<uint64_t>& cancels,
                     std::deque<Command>& cmds) {
  bool changed = false;
  const double now = Now();
  for (auto& p : in) {
    const Submission& s = p.sub;
    std::string error;
    if (s.engine < 0 || s.engine >= spec_.dp) {
      error = fmt::format("engine {} does not exist ({} engines)", s.engine, spec_.dp);
    } else if (s.prompt_tokens < 1 || s.output_tokens < 1) {
      error = "a request needs at least one prompt token and one output token";
    } else if (s.output_tokens > kv_capacity_tokens_ - s.prompt_tokens) {  // no overflow: both >= 1
      error = fmt::format(
          "prompt ({}) plus output ({}) tokens exceed the engine's KV cache of {} tokens",
          s.prompt_tokens, s.output_tokens, kv_capacity_tokens_);
    }
    if (!error.empty()) {
      Update u;
      u.finished = true;
      u.error = std::move(error);
      u.status = 400;
      u.time = now;
      p.sink(u);
      continue;
    }
    Request r;
    r.id = static_cast<RequestId>(p.id);
    r.arrival = now;
    r.prompt_tokens = s.prompt_tokens;
    r.output_tokens = s.output_tokens;
    r.traffic_class =
        std::clamp<int32_t>(s.traffic_class, 0, static_cast<int32_t>(spec_.classes.size()) - 1);
    r.priority = s.priority;
    r.prefix_hashes = s.prefix_hashes;
    cluster_->engine(s.engine).Add(r, now);
    live_.emplace(p.id, Live{s.engine, std::move(p.sink)});
    changed = true;
  }
  for (uint64_t id : cancels) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    cluster_->engine(it->second.engine).Abort(static_cast<RequestId>(id));
    live_.erase(it);
    changed = true;  // publish the state without it
  }
  for (auto& c : cmds) {
    Status st = c.placement.Validate();
    if (st.ok()) st = cluster_->SetPlacement(std::move(c.placement));
    if (st.ok()) {
      std::lock_guard<std::mutex> lock(state_mu_);
      placement_ = cluster_->placement();
    }
    Update u;
    u.finished = true;
    u.time = now;
    if (!st.ok()) {
      u.error = st.message();
      u.status = 400;
    }
    c.done(u);
    changed = true;
  }
  return changed;
}

void Emulator::RecordRouting(const std::vector<sim::StepPlan>& plans) {
  const int R = spec_.dp;
  const int C = static_cast<int>(spec_.classes.size());
  std::fill(class_tokens_.begin(), class_tokens_.end(), 0.0);
  bool any = false;
  for (int r = 0; r < R; ++r) {
    for (const auto& s : plans[r].seqs) {
      const int c = std::clamp<int>(s.traffic_class, 0, C - 1);
      class_tokens_[static_cast<size_t>(r) * C + c] += static_cast<double>(s.new_tokens);
      any = true;
    }
  }
  if (!any) return;
  const sim::ExpertPopularity& pop = cluster_->popularity();
  const double k = spec_.model.top_k;
  std::lock_guard<std::mutex> lock(stats_mu_);
  for (int l = 0; l < pop.layers(); ++l) {
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        const double t = class_tokens_[static_cast<size_t>(r) * C + c];
        if (t <= 0) continue;
        const auto row = pop.Row(c, l);
        for (int x = 0; x < pop.experts(); ++x) {
          if (row[x] > 0) stats_.Add(l, r, x, t * k * row[x]);
        }
      }
    }
  }
  stats_.EndStep();
}

void Emulator::Publish(double now) {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    const auto& pressure = cluster_->moe_pressure();
    const auto& times = cluster_->rank_times();
    for (int r = 0; r < spec_.dp; ++r) {
      RankState& s = states_[r];
      s.snapshot = cluster_->engine(r).Snapshot(now);
      s.moe_pressure = pressure[r];
      s.class_locality.resize(spec_.classes.size());
      for (size_t c = 0; c < spec_.classes.size(); ++c) {
        s.class_locality[c] = cluster_->ClassLocality(r, static_cast<int>(c));
      }
      s.preemptions = cluster_->engine(r).total_preemptions();
      s.prefix_cache_queries = cluster_->engine(r).prefix_cache_queries();
      s.prefix_cache_hits = cluster_->engine(r).prefix_cache_hits();
      s.steps = times[r].steps;
    }
  }
  state_version_.fetch_add(1, std::memory_order_acq_rel);
  std::lock_guard<std::mutex> lock(watch_mu_);
  for (auto& [id, fn] : watchers_) fn();
}

void Emulator::Loop() {
  std::deque<Pending> in;
  std::vector<uint64_t> cancels;
  std::deque<Command> cmds;
  bool continuous = false;  // the previous step ran straight into this one
  Clock::time_point prev_end = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    in.swap(inbox_);
    cancels.swap(cancels_);
    cmds.swap(commands_);
    lock.unlock();
    // A request cannot have been part of a step that began before it arrived: the step starts
    // no earlier than the latest submission it admits. Not at the time this loop got to admit it:
    // the loop's own work (the previous step's token events, state) is the server's, not the
    // model's, and a vLLM engine finds what arrived meanwhile in its queue when it plans.
    Clock::time_point latest_submit = Clock::time_point::min();
    for (const auto& p : in) latest_submit = std::max(latest_submit, p.submitted);
    const bool admitted = Admit(in, cancels, cmds);
    in.clear();
    cancels.clear();
    cmds.clear();
    if (admitted) Publish(Now());

    std::vector<sim::StepPlan> plans;
    bool runnable = false;
    if (cluster_->HasWork()) {
      plans = cluster_->Plan();
      for (const auto& p : plans) runnable = runnable || !p.empty();
      if (!runnable) {
        cluster_->Complete(plans);  // nothing fits; keep the scheduler consistent
        PublishKvEvents();          // what the empty plan cached or evicted, before idling
      }
    }
    if (!runnable) {
      continuous = false;
      lock.lock();
      cv_.wait(lock,
               [&] { return stop_ || !inbox_.empty() || !cancels_.empty() || !commands_.empty(); });
      continue;
    }

    const sim::StepCost cost = cluster_->Cost(plans);
    RecordRouting(plans);
    const Clock::time_point now = Clock::now();
    Clock::time_point start = now;
    if (continuous && now - prev_end < std::chrono::duration<double>(kMaxCatchUp)) {
      start = admitted ? std::max(prev_end, latest_submit) : prev_end;
    }
    const auto end =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(cost.duration * options_.time_scale));
    lock.lock();
    if (cv_.wait_until(lock, end, [&] { return stop_; })) break;
    lock.unlock();

    const auto events = cluster_->Complete(plans);
    // The step's KV-cache events (blocks hashed when it was planned, blocks evicted to make room)
    // go out once it is done, one batch per rank, as vLLM publishes after each step.
    PublishKvEvents();
    steps_.fetch_add(1, std::memory_order_relaxed);
    prev_end = end;
    continuous = true;
    const double t = Now();
    // State first, so that whoever a token event wakes already sees the state after this step.
    Publish(t);
    for (const auto& rank_events : events) {
      for (const sim::TokenEvent& ev : rank_events) {
        auto it = live_.find(static_cast<uint64_t>(ev.id));
        if (it == live_.end()) continue;
        if (it->second.sink) {
          Update u;
          u.generated = ev.generated;
          u.finished = ev.finished;
          u.preemptions = ev.preemptions;
          u.time = t;
          it->second.sink(u);
        }
        if (ev.finished) live_.erase(it);
      }
    }
    lock.lock();
  }
}

}  // namespace gimbal::engine
