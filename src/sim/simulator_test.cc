#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "core/random.h"
#include "policy/dispatch/dispatch_policy.h"
#include "sim/sim_test_util.h"

namespace gimbal::sim {
namespace {

std::vector<Request> Workload(int n, double rate, uint64_t seed) {
  return testing::PoissonWorkload(n, rate, seed, 50, 2000, 1, 200);
}

ClusterSpec Spec() {
  ClusterSpec c = testing::TinyCluster(4);
  c.classes = {{"a", 1, 1.2}, {"b", 1, 1.2}};
  return c;
}

TEST(SimulatorTest, SameSeedGivesIdenticalResults) {
  const auto reqs = Workload(300, 40, 5);
  StackSpec stack;
  stack.name = "p2c";
  stack.dispatch = "power_of_two";  // uses the random stream
  SimOptions opt;
  opt.seed = 9;
  auto a = Simulate(Spec(), stack, reqs, opt);
  auto b = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->summary.dump(), b->summary.dump());
  EXPECT_EQ(a->summary["completed"], 300);
}

TEST(SimulatorTest, LoneRequestTtftIsTheCostModelsPrefillStep) {
  ClusterSpec spec = testing::TinyCluster(1);
  spec.engine.cuda_graph_padding = false;  // 1000 tokens are beyond every graph size anyway
  std::vector<Request> reqs(1);
  reqs[0].prompt_tokens = 1000;
  reqs[0].output_tokens = 1;
  reqs[0].arrival = 2.0;
  StackSpec stack;
  stack.dispatch = "round_robin";
  SimOptions opt;
  opt.keep_requests = true;
  // By hand: one rank, no all-to-all; every expert is active (each expects > 30 tokens).
  CostModel cm(spec.model, spec.hardware);
  RankBatch b;
  b.tokens = 1000;
  b.sequences = 1;
  b.logits = 1;
  b.attn_pairs = 1000.0 * (0 + 1001.0 / 2);
  b.kv_read_tokens = 1000;
  const int L = spec.model.layers;
  const double gpu = L * cm.AttentionTime(b) +
                     L * cm.ExpertTime(1000.0 * spec.model.top_k, spec.model.experts) +
                     cm.HeadTime(b);
  const double cpu = cm.StepOverhead(1);
  // The CPU overhead adds to the GPU time, or under async scheduling overlaps it.
  for (bool async : {false, true}) {
    SCOPED_TRACE(async ? "async scheduling" : "serial scheduling");
    spec.engine.async_scheduling = async;
    auto r = Simulate(spec, stack, reqs, opt);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const double expected = async ? std::max(gpu, cpu) : gpu + cpu;
    const RequestRecord& rec = r->requests[0];
    EXPECT_NEAR(rec.first_token - rec.arrival, expected, 1e-12);
    EXPECT_NEAR(r->summary["mean_ttft_ms"].get<double>(), expected * 1e3, 1e-9);
  }
}

TEST(SimulatorTest, EveryRequestIsAccountedFor) {
  const auto reqs = Workload(200, 100, 6);
  StackSpec stack;
  stack.dispatch = "vllm";
  SimOptions opt;
  opt.keep_requests = true;
  auto r = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(r.ok());
  int64_t dispatched = 0;
  for (const auto& e : r->summary["engines"]) dispatched += e["dispatched"].get<int64_t>();
  EXPECT_EQ(dispatched, 200);
  for (const auto& rec : r->requests) {
    ASSERT_TRUE(rec.completed());
    EXPECT_GE(rec.first_token, rec.arrival);
    EXPECT_GE(rec.finish, rec.first_token);
    EXPECT_EQ(rec.output_tokens, reqs[static_cast<size_t>(rec.id)].output_tokens);
  }
}

TEST(SimulatorTest, RequestsWaitingOnAFinishingRequestsSlotStillRun) {
  // One sequence slot per rank and async scheduling: the request behind a finished one is
  // admitted by a plan that first comes out empty (the finished request still held the slot).
  // Nothing arrives afterwards to restart the stepping, so the simulator must plan again.
  ClusterSpec spec = testing::TinyCluster(1);
  spec.engine.max_num_seqs = 1;
  spec.engine.async_scheduling = true;
  std::vector<Request> reqs(3);
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].id = static_cast<RequestId>(i);
    reqs[i].prompt_tokens = 40;
    reqs[i].output_tokens = 3;
  }
  StackSpec stack;
  stack.dispatch = "round_robin";
  SimOptions opt;
  opt.keep_requests = true;
  auto r = Simulate(spec, stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->summary["completed"].get<int64_t>(), 3);
  EXPECT_EQ(r->summary["failed"].get<int64_t>(), 0);
  for (const auto& rec : r->requests) EXPECT_TRUE(rec.completed()) << rec.id;
}

TEST(SimulatorTest, StepRecordsCarryPerGpuExpertLoadThatAddsUpToTheSummary) {
  const auto reqs = Workload(200, 100, 8);
  StackSpec stack;
  stack.dispatch = "vllm";
  SimOptions opt;
  opt.keep_steps = true;
  auto r = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(static_cast<int64_t>(r->steps.size()), r->num_steps);
  double sum_max = 0, sum_mean = 0;
  for (const StepRecord& s : r->steps) {
    ASSERT_EQ(s.gpu_load.size(), 4u);
    double total = 0, top = 0;
    for (double v : s.gpu_load) {
      EXPECT_GE(v, 0);
      total += v;
      top = std::max(top, v);
    }
    // The mean GPU's load summed over layers is the mean of the per-GPU sums; the per-layer maxima
    // add up to at least the largest per-GPU sum.
    EXPECT_NEAR(s.load_mean, total / 4, 1e-6 * std::max(1.0, total));
    EXPECT_GE(s.load_max, top * (1 - 1e-9));
    EXPECT_GE(s.load_max, s.load_mean * (1 - 1e-9));
    sum_max += s.load_max;
    sum_mean += s.load_mean;
  }
  ASSERT_GT(sum_mean, 0);
  EXPECT_NEAR(sum_max / sum_mean, r->summary["expert_load_max_over_mean"].get<double>(), 1e-9);
  // The class mix differs per engine, so some steps are imbalanced.
  EXPECT_GT(sum_max / sum_mean, 1.0);
}

TEST(SimulatorTest, StepRecordsShowARebalanceLoweringThePeakGpuLoad) {
  ClusterSpec spec = Spec();
  spec.classes = {{"hot", 1, 2.0}};  // steep popularity: contiguous placement is imbalanced
  const auto reqs = Workload(400, 100, 9);
  StackSpec stack;
  stack.dispatch = "round_robin";
  stack.placement.policy = "eplb";
  stack.placement.interval_steps = 50;
  stack.placement.stats.window_steps = 50;
  SimOptions opt;
  opt.keep_steps = true;
  auto r = Simulate(spec, stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_GT(r->steps.size(), 100u);
  ASSERT_GE(r->summary["rebalances"].get<int64_t>(), 1);
  double max0 = 0, mean0 = 0, max1 = 0, mean1 = 0;
  for (size_t i = 0; i < r->steps.size(); ++i) {
    if (i < 50) {
      max0 += r->steps[i].load_max;
      mean0 += r->steps[i].load_mean;
    } else {
      max1 += r->steps[i].load_max;
      mean1 += r->steps[i].load_mean;
    }
  }
  ASSERT_GT(mean0, 0);
  ASSERT_GT(mean1, 0);
  EXPECT_LT(max1 / mean1, max0 / mean0) << "before " << max0 / mean0 << " after " << max1 / mean1;
}

TEST(SimulatorTest, MaxTokensDefaultsToTheOutputLength) {
  const auto reqs = Workload(200, 300, 12);
  auto explicit_caps = reqs;
  for (auto& r : explicit_caps) r.max_tokens = r.output_tokens;
  StackSpec stack;
  stack.dispatch = "vllm_kv";
  auto a = Simulate(Spec(), stack, reqs, {});
  auto b = Simulate(Spec(), stack, explicit_caps, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->summary.dump(), b->summary.dump());
}

TEST(SimulatorTest, MaxInflightHidesFullEnginesAndRefusesWhenAllAreFull) {
  // 40 requests at once on 4 engines that take 3 each: 12 are served, 28 refused (the router
  // answers 429), and none is dispatched to an engine already at its limit.
  auto reqs = Workload(40, 1, 13);
  for (auto& r : reqs) r.arrival = 0;
  StackSpec stack;
  stack.dispatch = "round_robin";
  stack.max_inflight = 3;
  SimOptions opt;
  opt.keep_requests = true;
  auto r = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->summary["completed"].get<int64_t>(), 12);
  EXPECT_EQ(r->summary["failed"].get<int64_t>(), 28);
  for (const auto& e : r->summary["engines"]) EXPECT_EQ(e["dispatched"].get<int64_t>(), 3);
  for (const auto& rec : r->requests) EXPECT_EQ(rec.completed(), rec.engine >= 0);
  // The default (0) is no limit: everything is served.
  stack.max_inflight = 0;
  auto all = Simulate(Spec(), stack, reqs, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->summary["completed"].get<int64_t>(), 40);
}

// Records what each front end showed a dispatch policy; picks engine (id mod R), or the next
// healthy one after it, so requests spread over the engines.
struct FrontendPick {
  RequestId id = 0;
  int frontends = 0;
  int frontend = 0;
  uint64_t sequence = 0;
  std::vector<EngineView> views;
};
std::vector<FrontendPick>* g_frontend_picks = nullptr;  // single-threaded tests

class FrontendRecorder final : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest& req, std::span<const EngineView> engines, Rng&) const override {
    if (g_frontend_picks != nullptr) {
      g_frontend_picks->push_back(
          {req.id, req.frontends, req.frontend, req.sequence, {engines.begin(), engines.end()}});
    }
    const size_t n = engines.size();
    for (size_t k = 0; k < n; ++k) {
      const size_t e = (static_cast<size_t>(req.id) + k) % n;
      if (engines[e].healthy) return static_cast<int>(e);
    }
    return -1;
  }
  std::string name() const override { return "test_frontend_recorder"; }
};

const char* FrontendRecorderName() {
  static const bool registered = RegisterDispatchPolicy(
      "test_frontend_recorder",
      [](const Params&, const DispatchDeps&) -> Result<std::unique_ptr<DispatchPolicy>> {
        return std::unique_ptr<DispatchPolicy>(new FrontendRecorder());
      });
  EXPECT_TRUE(registered);
  return "test_frontend_recorder";
}

TEST(SimulatorTest, FrontendsDefaultToThePolicysChoice) {
  const auto reqs = Workload(20, 40, 3);
  StackSpec stack;
  stack.dispatch = "vllm";  // vLLM 0.33: one API server per DP rank
  auto v = Simulate(Spec(), stack, reqs, {});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->summary["frontends"].get<int>(), 4);
  stack.dispatch = "vllm_2025";
  auto old = Simulate(Spec(), stack, reqs, {});
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->summary["frontends"].get<int>(), 1);
  stack.frontends = 3;  // an explicit count wins over the default
  auto three = Simulate(Spec(), stack, reqs, {});
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->summary["frontends"].get<int>(), 3);
}

TEST(SimulatorTest, SeveralFrontEndsAreDeterministicForASeed) {
  const auto reqs = Workload(300, 60, 21);
  StackSpec stack;
  stack.dispatch = "vllm";  // 4 front ends on 4 engines
  SimOptions opt;
  opt.seed = 5;
  opt.keep_requests = true;
  auto a = Simulate(Spec(), stack, reqs, opt);
  auto b = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->summary["frontends"].get<int>(), 4);
  EXPECT_EQ(a->summary.dump(), b->summary.dump());
  ASSERT_EQ(a->requests.size(), b->requests.size());
  std::vector<int> engines_a;
  for (size_t i = 0; i < a->requests.size(); ++i) {
    EXPECT_EQ(a->requests[i].engine, b->requests[i].engine) << i;
    engines_a.push_back(a->requests[i].engine);
  }
  // Another seed sends the arrivals to other front ends, whose scans start elsewhere and whose
  // counts differ: the engines chosen change.
  opt.seed = 6;
  auto c = Simulate(Spec(), stack, reqs, opt);
  ASSERT_TRUE(c.ok());
  std::vector<int> engines_c;
  for (const auto& r : c->requests) engines_c.push_back(r.engine);
  EXPECT_NE(engines_a, engines_c);
}

TEST(SimulatorTest, EachFrontEndCountsOnlyItsOwnRequests) {
  // Three front ends. At every pick, the views' inflight and picks_since_snapshot must count the
  // picking front end's own requests only: those it dispatched earlier to that engine and that
  // had not finished (inflight) or came after the last snapshot (picks). The policy must also be
  // told the front-end count, its index and its own dispatch count.
  constexpr int kFrontends = 3;
  const auto reqs = Workload(240, 80, 17);
  StackSpec stack;
  stack.dispatch = FrontendRecorderName();
  stack.frontends = kFrontends;
  stack.snapshot_interval = 0.05;
  SimOptions opt;
  opt.keep_requests = true;
  std::vector<FrontendPick> picks;
  g_frontend_picks = &picks;
  auto r = Simulate(Spec(), stack, reqs, opt);
  g_frontend_picks = nullptr;
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(picks.size(), reqs.size());
  const auto& recs = r->requests;
  std::vector<int> frontend_of(reqs.size(), -1);
  std::vector<uint64_t> per_frontend(kFrontends, 0);
  int64_t others_in_flight = 0;  // requests of other front ends in flight at a pick: must occur
  for (size_t i = 0; i < picks.size(); ++i) {
    const FrontendPick& p = picks[i];
    const auto idx = static_cast<size_t>(p.id);
    ASSERT_EQ(idx, i);  // arrivals are dispatched in order
    ASSERT_EQ(p.frontends, kFrontends);
    ASSERT_GE(p.frontend, 0);
    ASSERT_LT(p.frontend, kFrontends);
    EXPECT_EQ(p.sequence, per_frontend[static_cast<size_t>(p.frontend)]++) << i;
    frontend_of[i] = p.frontend;
    const double t = reqs[i].arrival;
    const double snapshot = std::floor(t / stack.snapshot_interval) * stack.snapshot_interval;
    for (size_t e = 0; e < p.views.size(); ++e) {
      int64_t own = 0, own_picks = 0;
      for (size_t j = 0; j < i; ++j) {
        if (recs[j].engine != static_cast<int>(e)) continue;
        const bool in_flight = recs[j].finish < 0 || recs[j].finish > t;
        if (frontend_of[j] != p.frontend) {
          others_in_flight += in_flight;
          continue;
        }
        own += in_flight;
        own_picks += reqs[j].arrival >= snapshot;
      }
      EXPECT_EQ(p.views[e].inflight, own) << "request " << i << " engine " << e;
      EXPECT_EQ(p.views[e].picks_since_snapshot, own_picks) << "request " << i << " engine " << e;
    }
  }
  EXPECT_GT(others_in_flight, 0);
  // Arrivals spread over the front ends, uniformly at random (80 each expected).
  for (uint64_t n : per_frontend) EXPECT_GT(n, 50u);
  // The run's dispatch counts are over every front end.
  int64_t dispatched = 0;
  for (const auto& e : r->summary["engines"]) dispatched += e["dispatched"].get<int64_t>();
  EXPECT_EQ(dispatched, 240);
}

TEST(SimulatorTest, MaxInflightIsPerEngineOverEveryFrontEnd) {
  // As MaxInflightHidesFullEnginesAndRefusesWhenAllAreFull, with four front ends: the limit of 3
  // per engine holds for all of them together (four front ends each allowed 3 would serve all 40).
  auto reqs = Workload(40, 1, 13);
  for (auto& r : reqs) r.arrival = 0;
  StackSpec stack;
  stack.dispatch = "vllm";
  stack.frontends = 4;
  stack.max_inflight = 3;
  auto r = Simulate(Spec(), stack, reqs, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->summary["completed"].get<int64_t>(), 12);
  EXPECT_EQ(r->summary["failed"].get<int64_t>(), 28);
  for (const auto& e : r->summary["engines"]) EXPECT_EQ(e["dispatched"].get<int64_t>(), 3);
}

TEST(SimulatorTest, SummaryAddsUpPreemptionsAndPrefixCacheCounts) {
  // A small KV cache and long outputs force preemptions.
  ClusterSpec spec = Spec();
  spec.engine.kv_capacity_tokens = 4000;
  const auto reqs = testing::PoissonWorkload(200, 200, 31, 200, 800, 200, 800);
  StackSpec stack;
  stack.dispatch = "round_robin";
  auto r = Simulate(spec, stack, reqs, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  int64_t preemptions = 0, queries = 0, hits = 0;
  for (const auto& e : r->summary["engines"]) {
    preemptions += e["preemptions"].get<int64_t>();
    queries += e["prefix_cache_queries"].get<int64_t>();
    hits += e["prefix_cache_hits"].get<int64_t>();
  }
  EXPECT_GT(preemptions, 0);
  EXPECT_EQ(r->summary["preemptions"].get<int64_t>(), preemptions);
  // Prefix caching is on by default: every admission is a lookup, and a preempted request finds
  // its own computed blocks again.
  ASSERT_GT(queries, 0);
  EXPECT_GT(hits, 0);
  EXPECT_LE(hits, queries);
  const double rate = r->summary["prefix_cache_hit_rate"].get<double>();
  EXPECT_DOUBLE_EQ(rate, static_cast<double>(hits) / static_cast<double>(queries));
}

// Two-turn sessions: turn 2 resends turn 1's 480-token prompt (30 shared blocks) plus 160 new
// tokens, a second after turn 1, when turn 1 has long finished. Which engine turn 2 reaches
// decides whether its history is a cache hit.
std::vector<Request> TwoTurnSessions(int sessions) {
  std::vector<Request> reqs;
  for (int s = 0; s < sessions; ++s) {
    for (int turn = 0; turn < 2; ++turn) {
      Request r;
      r.arrival = 0.05 * s + 1.0 * turn;
      r.prompt_tokens = turn == 0 ? 480 : 640;
      r.output_tokens = 4;
      r.affinity_key = static_cast<uint64_t>(s) + 1;
      for (int b = 0; b < r.prompt_tokens / 16; ++b) {
        r.prefix_hashes.push_back(b < 30 ? 1000u * static_cast<uint64_t>(s + 1) + b
                                         : 9'000'000u + 100u * static_cast<uint64_t>(s) + b);
      }
      reqs.push_back(r);
    }
  }
  std::sort(reqs.begin(), reqs.end(),
            [](const Request& a, const Request& b) { return a.arrival < b.arrival; });
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].id = static_cast<RequestId>(i);
  return reqs;
}

TEST(SimulatorTest, APrefixIndexSendsAReturningSessionWhereItsHistoryIsCached) {
  const auto reqs = TwoTurnSessions(40);
  // Ideal: every turn 2 finds its 480-token history; queries count every prompt token.
  const double ideal = 40.0 * 480 / (40.0 * (480 + 640));
  auto hit_rate = [&](StackSpec::PrefixIndex index, int64_t capacity = 0) {
    StackSpec stack;
    stack.dispatch = "gimbal";
    stack.snapshot_interval = 0;
    stack.prefix_index = index;
    stack.prefix_index_capacity = capacity;
    auto r = Simulate(Spec(), stack, reqs, {});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->summary["prefix_cache_hit_rate"].get<double>() : -1.0;
  };
  const double none = hit_rate(StackSpec::PrefixIndex::kNone);
  const double precise = hit_rate(StackSpec::PrefixIndex::kPrecise);
  const double approximate = hit_rate(StackSpec::PrefixIndex::kApproximate);
  const double forgetful = hit_rate(StackSpec::PrefixIndex::kApproximate, 1);
  // The index does not make the choice alone: the queue term may still send a turn elsewhere.
  EXPECT_GE(precise, 0.8 * ideal) << precise;
  EXPECT_LE(none, 0.6 * ideal) << none;
  EXPECT_GE(precise - none, 0.25 * ideal) << precise << " vs " << none;
  // Nothing is evicted here, so what the front end sent where is what the engines hold.
  EXPECT_DOUBLE_EQ(approximate, precise);
  // An index of one hash per engine remembers almost nothing.
  EXPECT_LT(forgetful, precise - 0.2 * ideal) << forgetful;
}

TEST(SimulatorTest, BadInputIsRejectedWithAReason) {
  auto reqs = Workload(3, 1, 7);
  std::swap(reqs[0], reqs[2]);
  StackSpec stack;
  auto r = Simulate(Spec(), stack, reqs, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sorted by arrival"), std::string::npos);
  stack.dispatch = "no_such_policy";
  auto u = Simulate(Spec(), stack, Workload(3, 1, 7), {});
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("round_robin"), std::string::npos);  // lists valid names
  stack.dispatch = "vllm";
  auto capped = Workload(3, 1, 7);
  capped[1].output_tokens = 10;
  capped[1].max_tokens = 9;
  auto m = Simulate(Spec(), stack, capped, {});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("max_tokens"), std::string::npos) << m.status().ToString();
  stack.max_inflight = -1;
  auto n = Simulate(Spec(), stack, Workload(3, 1, 7), {});
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("max_inflight"), std::string::npos) << n.status().ToString();
  stack.max_inflight = 0;
  stack.frontends = -1;
  auto f = Simulate(Spec(), stack, Workload(3, 1, 7), {});
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("frontends"), std::string::npos) << f.status().ToString();
  stack.frontends = 0;
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    auto early = Workload(3, 1, 7);
    early[0].arrival = bad;  // the event queue refuses a past time; Simulate says so first
    auto a = Simulate(Spec(), stack, early, {});
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_NE(a.status().message().find("request 0: arrival must be a finite time"),
              std::string::npos)
        << a.status().ToString();
  }
  // Sizes that would take the memory of the machine are refused up front, naming the key.
  auto big_kv = Spec();
  big_kv.engine.kv_capacity_tokens = int64_t{1} << 35;  // 2^31 blocks: past int32 on one rank
  auto k = Simulate(big_kv, stack, Workload(3, 1, 7), {});
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("engine.kv_capacity_tokens"), std::string::npos)
      << k.status().ToString();
  StackSpec windowed = stack;
  windowed.placement.policy = "eplb";
  windowed.placement.stats.window_steps = 1 << 20;
  auto spec = Spec();
  spec.classes.resize(64, spec.classes.front());
  auto w = Simulate(spec, windowed, Workload(3, 1, 7), {});
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("window_steps 1048576"), std::string::npos)
      << w.status().ToString();
}

}  // namespace
}  // namespace gimbal::sim
