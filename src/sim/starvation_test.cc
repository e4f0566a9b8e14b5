// No starvation on a real engine: one long prompt behind a stream of short ones, at and beyond
// the engine's prefill capacity, through the engine's own admission path (chunked prefill, token
// budget, head-of-line admission). docs/policies.md ("No starvation") states the bound tested
// here: with the `gimbal` queue policy a request is admitted no later than an FCFS engine would
// admit a request arriving D_i = min(beta·P_i, max_overtake) after it, plus one step.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/queue/queue_policy.h"
#include "sim/engine_scheduler.h"

namespace gimbal::sim {
namespace {

constexpr double kStep = 0.01;        // seconds per engine step
constexpr int64_t kBudget = 2048;     // tokens per step: 204,800 prompt tokens/s
constexpr int64_t kShort = 512;       // short prompts: 400 per second saturate the engine
constexpr int64_t kLong = 30'000;     // the long prompt
constexpr double kLongArrival = 1.0;  // seconds
constexpr RequestId kLongId = 1'000'000;

std::unique_ptr<QueuePolicy> Queue(const std::string& name,
                                   std::map<std::string, std::string> params = {}) {
  auto q = MakeQueuePolicy(name, Params(std::move(params)));
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  return q.ok() ? std::move(q).value() : nullptr;
}

// Short prompts (one output token each, so KV never binds) arrive every 1/rate seconds for
// `horizon` seconds, plus the long prompt at kLongArrival. The engine runs one step per kStep;
// requests arriving by a step's start are added before it is planned. Returns, per request id,
// the start time of the step that admitted it (first scheduled).
std::map<RequestId, double> Run(const QueuePolicy& queue, double rate, double horizon) {
  EngineLimits l;
  l.max_num_batched_tokens = kBudget;
  l.max_num_seqs = 1024;
  l.block_size = 16;
  l.kv_blocks = 1'000'000;
  EngineScheduler engine(l, &queue);
  std::map<RequestId, double> admitted;
  const auto n_short = static_cast<RequestId>(horizon * rate);
  RequestId next_short = 0;
  bool long_added = false;
  for (int64_t step = 0; step < 200'000; ++step) {
    const double now = static_cast<double>(step) * kStep;
    while (next_short < n_short && static_cast<double>(next_short) / rate <= now + 1e-12) {
      Request r;
      r.id = next_short;
      r.prompt_tokens = kShort;
      r.output_tokens = 1;
      engine.Add(r, static_cast<double>(next_short) / rate);
      ++next_short;
    }
    if (!long_added && kLongArrival <= now + 1e-12) {
      Request r;
      r.id = kLongId;
      r.prompt_tokens = kLong;
      r.output_tokens = 1;
      engine.Add(r, kLongArrival);
      long_added = true;
    }
    const StepPlan plan = engine.Schedule();
    for (const ScheduledSeq& s : plan.seqs) admitted.emplace(s.id, now);  // first time only
    engine.Complete(plan);
    if (next_short == n_short && long_added && !engine.HasWork()) break;
  }
  return admitted;
}

// When FCFS admits a request arriving at `t`: the admission of the first short prompt arriving at
// or after t (all short prompts are alike, so that is the FCFS engine's backlog at t).
double FcfsAdmissionAt(const std::map<RequestId, double>& fcfs, double rate, double t) {
  const auto id = static_cast<RequestId>(t * rate + 1 - 1e-9);
  return fcfs.at(id);
}

void ExpectBounded(double rate) {
  const double horizon = 60;
  auto fcfs_q = Queue("fcfs");
  auto gimbal_q = Queue("gimbal");  // defaults: beta 0.001 s/token, max_overtake_ms 1000
  auto uncapped_q = Queue("gimbal", {{"max_overtake_ms", "0"}});
  ASSERT_TRUE(fcfs_q && gimbal_q && uncapped_q);
  const auto fcfs = Run(*fcfs_q, rate, horizon);
  const auto gimbal = Run(*gimbal_q, rate, horizon);
  const auto uncapped = Run(*uncapped_q, rate, horizon);
  ASSERT_EQ(gimbal.size(), fcfs.size());  // everything is served under every order

  // The bound: D = min(0.001 · 30,000, 1 s) = 1 s.
  const double bound = FcfsAdmissionAt(fcfs, rate, kLongArrival + 1.0) + kStep;
  const double long_start = gimbal.at(kLongId);
  EXPECT_LE(long_start, bound) << "rate " << rate;
  EXPECT_GT(long_start, fcfs.at(kLongId)) << "short prompts do overtake it";
  // Every short prompt obeys its bound too (D = 0.512 s for 512 tokens).
  for (const auto& [id, start] : gimbal) {
    if (id == kLongId) continue;
    const double arrival = static_cast<double>(id) / rate;
    const double t = arrival + 0.001 * kShort;
    if (t >= horizon - 1.0) continue;  // the stream has ended: no FCFS witness
    ASSERT_LE(start, FcfsAdmissionAt(fcfs, rate, t) + kStep) << "request " << id;
  }
  // Uncapped aging (the policy before the cap): the long prompt yields about beta·P = 30 s.
  EXPECT_GT(uncapped.at(kLongId), kLongArrival + 29.0) << "rate " << rate;
  EXPECT_GT(uncapped.at(kLongId), long_start + 25.0) << "rate " << rate;
}

TEST(Starvation, LongPromptBehindShortStreamAtSaturation) {
  ExpectBounded(400.0);
}

TEST(Starvation, LongPromptBehindShortStreamBeyondSaturation) {
  ExpectBounded(480.0);
}

TEST(Starvation, LongPromptBehindShortStreamFarBeyondSaturation) {
  ExpectBounded(800.0);
}

}  // namespace
}  // namespace gimbal::sim
