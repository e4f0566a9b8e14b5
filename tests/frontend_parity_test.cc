// The simulator and the router's EngineTable must show a dispatch policy the same accounting.
//
// A simulated run (with in-flight limits, max_tokens above the output length, snapshots and an
// over-long request the engine rejects) records every list of views its policy was shown and, per
// request, the engine, first-token and finish times. The same dispatch, first-token, finish and
// snapshot events are then replayed, in time order, through a router EngineTable running the same
// policy. Both front ends must show identical accounting (in flight, reserved prefill and KV,
// picks since snapshot, hidden or not) at every pick, pick the same engines and refuse the same
// requests. A change to either front end's bookkeeping that the other does not share fails here.
#include <algorithm>
#include <memory>
#include <tuple>

#include <gtest/gtest.h>

#include "router/engine_table.h"
#include "sim/sim_test_util.h"
#include "sim/simulator.h"

namespace gimbal::sim {
namespace {

struct Shown {
  RequestId id = 0;
  int64_t max_output_tokens = 0;
  std::vector<EngineView> views;
};

std::vector<Shown>* g_shown = nullptr;  // where the recording policy writes; single-threaded test

// Fewest in flight, then least reserved KV, then least reserved prefill, then lowest index. Only
// the front ends' accounting decides, so identical accounting gives identical picks.
class RecordingPolicy : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& req, std::span<const EngineView> engines, Rng&) const override {
    if (g_shown != nullptr) {
      g_shown->push_back({req.id, req.max_output_tokens, {engines.begin(), engines.end()}});
    }
    int best = -1;
    for (int i = 0; i < static_cast<int>(engines.size()); ++i) {
      const EngineView& v = engines[static_cast<size_t>(i)];
      if (!v.healthy) continue;
      if (best < 0) {
        best = i;
        continue;
      }
      const EngineView& b = engines[static_cast<size_t>(best)];
      if (std::tie(v.inflight, v.reserved_kv_tokens, v.reserved_prefill) <
          std::tie(b.inflight, b.reserved_kv_tokens, b.reserved_prefill)) {
        best = i;
      }
    }
    return best;
  }
  std::string name() const override { return "parity_recorder"; }
};

const char* RecorderName() {
  static const bool registered = RegisterDispatchPolicy(
      "parity_recorder",
      [](const Params&, const DispatchDeps&) -> Result<std::unique_ptr<DispatchPolicy>> {
        return std::unique_ptr<DispatchPolicy>(new RecordingPolicy());
      });
  EXPECT_TRUE(registered);
  return "parity_recorder";
}

// One front-end event in the simulated run, in the order the simulator lived them.
struct Ev {
  enum Kind { kFirstToken = 0, kFinish = 1, kSnapshot = 2, kDispatch = 3 };
  double time = 0;
  Kind kind = kDispatch;
  size_t index = 0;  // request index (not for snapshots)
  bool operator<(const Ev& o) const {
    return std::tie(time, kind, index) < std::tie(o.time, o.kind, o.index);
  }
};

constexpr int kEngines = 4;
constexpr int64_t kMaxInflight = 4;
constexpr double kSnapshotS = 0.02;

TEST(FrontendParity, SimulatorAndRouterShowTheSameAccountingForTheSameEvents) {
  const ClusterSpec cluster = testing::TinyCluster(kEngines);
  StackSpec stack;
  stack.name = "parity";
  stack.dispatch = RecorderName();
  stack.snapshot_interval = kSnapshotS;
  stack.max_inflight = kMaxInflight;

  // The KV capacity of a rank, to build one request longer than it.
  auto probe = Simulate(cluster, stack, testing::PoissonWorkload(1, 1, 1, 10, 1, 1, 1), {});
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  const int64_t capacity = probe->summary["kv_capacity_tokens_per_rank"].get<int64_t>();

  std::vector<Request> reqs = testing::PoissonWorkload(400, 60, 11, 200, 1500, 20, 300);
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (i % 3 == 0) reqs[i].max_tokens = 2 * reqs[i].output_tokens + 17;  // a cap above the output
    if (i % 3 == 1) reqs[i].max_tokens = reqs[i].output_tokens;
  }
  const size_t too_long = 2;
  reqs[too_long].prompt_tokens = capacity;  // rejected by the engine at once

  std::vector<Shown> sim_shown;
  g_shown = &sim_shown;
  SimOptions opt;
  opt.keep_requests = true;
  auto run = Simulate(cluster, stack, reqs, opt);
  g_shown = nullptr;
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  const auto& recs = run->requests;
  ASSERT_EQ(recs.size(), reqs.size());

  // The run must exercise what the test is about: hidden engines and refused requests.
  int64_t refused = 0, hidden = 0;
  for (const auto& r : recs) refused += r.engine < 0;
  for (const auto& s : sim_shown) {
    for (const auto& v : s.views) hidden += !v.healthy;
  }
  ASSERT_GT(refused, 0);
  ASSERT_GT(hidden, 0);
  EXPECT_EQ(recs[too_long].first_token, -1);
  EXPECT_GE(recs[too_long].engine, 0);

  // Replay the run's front-end events through the router's table.
  std::vector<Ev> events;
  double last = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    events.push_back({reqs[i].arrival, Ev::kDispatch, i});
    if (recs[i].first_token >= 0) events.push_back({recs[i].first_token, Ev::kFirstToken, i});
    if (recs[i].finish >= 0) events.push_back({recs[i].finish, Ev::kFinish, i});
    last = std::max({last, reqs[i].arrival, recs[i].finish});
  }
  for (double t = kSnapshotS; t <= last + kSnapshotS; t += kSnapshotS) {  // as the simulator adds
    events.push_back({t, Ev::kSnapshot, 0});
  }
  std::sort(events.begin(), events.end());

  std::vector<router::EngineInfo> infos;
  for (int e = 0; e < kEngines; ++e) infos.push_back({"e" + std::to_string(e), "m", kMaxInflight});
  router::EngineTable table(infos, 3, 1, 1);
  RecordingPolicy policy;
  std::vector<Shown> router_shown;
  g_shown = &router_shown;
  std::vector<router::Reservation> held(reqs.size());
  for (const Ev& ev : events) {
    const Request& req = reqs[ev.index];
    switch (ev.kind) {
      case Ev::kSnapshot:
        for (int e = 0; e < kEngines; ++e)
          table.ApplySnapshot(e, EngineSnapshot{.taken_at = ev.time});
        break;
      case Ev::kDispatch: {
        DispatchRequest dr;
        dr.id = req.id;
        dr.now = ev.time;
        dr.prompt_tokens = req.prompt_tokens;
        dr.max_output_tokens = req.max_tokens > 0 ? req.max_tokens : req.output_tokens;
        auto picked = table.Pick(policy, dr, "m", {});
        if (recs[ev.index].engine < 0) {
          EXPECT_EQ(picked.status().code(), ErrorCode::kResourceExhausted)
              << "request " << ev.index;
          break;
        }
        ASSERT_TRUE(picked.ok()) << "request " << ev.index << ": " << picked.status().ToString();
        EXPECT_EQ(picked->engine, recs[ev.index].engine) << "request " << ev.index;
        held[ev.index] = *picked;
        if (recs[ev.index].first_token < 0) table.Release(held[ev.index]);  // rejected at once
        break;
      }
      case Ev::kFirstToken:
        table.SettlePrefill(held[ev.index]);
        break;
      case Ev::kFinish:
        table.Release(held[ev.index]);
        break;
    }
  }
  g_shown = nullptr;

  ASSERT_EQ(router_shown.size(), sim_shown.size());
  for (size_t k = 0; k < sim_shown.size(); ++k) {
    const Shown& s = sim_shown[k];
    const Shown& r = router_shown[k];
    ASSERT_EQ(s.id, r.id) << "pick " << k;
    EXPECT_EQ(s.max_output_tokens, r.max_output_tokens) << "request " << s.id;
    ASSERT_EQ(s.views.size(), r.views.size());
    for (size_t e = 0; e < s.views.size(); ++e) {
      const EngineView& a = s.views[e];
      const EngineView& b = r.views[e];
      SCOPED_TRACE(::testing::Message() << "request " << s.id << ", engine " << e);
      EXPECT_EQ(a.inflight, b.inflight);
      EXPECT_EQ(a.reserved_prefill, b.reserved_prefill);
      EXPECT_EQ(a.reserved_kv_tokens, b.reserved_kv_tokens);
      EXPECT_EQ(a.picks_since_snapshot, b.picks_since_snapshot);
      EXPECT_EQ(a.healthy, b.healthy);
    }
    if (::testing::Test::HasFailure()) break;  // the first divergence is the useful one
  }
  const auto rows = table.Rows(last);
  for (int e = 0; e < kEngines; ++e) {
    EXPECT_EQ(rows[static_cast<size_t>(e)].view.inflight, 0);
    EXPECT_EQ(rows[static_cast<size_t>(e)].view.reserved_kv_tokens, 0);
    EXPECT_EQ(rows[static_cast<size_t>(e)].dispatched_total,
              run->summary["engines"][static_cast<size_t>(e)]["dispatched"].get<int64_t>());
  }
}

}  // namespace
}  // namespace gimbal::sim
