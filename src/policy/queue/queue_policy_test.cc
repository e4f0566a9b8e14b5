// Queue policies: keys, the aging bound of `gimbal`, no starvation in a single-server queue,
// the vLLM priority mapping and the registry.
#include "policy/queue/queue_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include <gtest/gtest.h>

#include "core/random.h"

namespace gimbal {
namespace {

Params P(std::map<std::string, std::string> values) {
  return Params(std::move(values));
}

std::unique_ptr<QueuePolicy> MustMake(const std::string& name, const Params& p = {}) {
  auto r = MakeQueuePolicy(name, p);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

QueueEntry Entry(RequestId id, double arrival, int64_t prompt, int64_t priority = 0) {
  QueueEntry e;
  e.id = id;
  e.arrival = arrival;
  e.prompt_tokens = prompt;
  e.remaining_prefill = prompt;
  e.priority = priority;
  return e;
}

// The engine's admission order: smallest key, then arrival, then id.
std::vector<QueueEntry> Sorted(const QueuePolicy& p, std::vector<QueueEntry> q) {
  std::sort(q.begin(), q.end(), [&p](const QueueEntry& a, const QueueEntry& b) {
    return std::make_tuple(p.Key(a), a.arrival, a.id) < std::make_tuple(p.Key(b), b.arrival, b.id);
  });
  return q;
}

std::vector<RequestId> Ids(const std::vector<QueueEntry>& q) {
  std::vector<RequestId> ids;
  for (const auto& e : q) ids.push_back(e.id);
  return ids;
}

TEST(QueueRegistry, ListsBuiltinsAndRejectsUnknownNamesAndParameters) {
  const auto names = QueuePolicyNames();
  for (const char* n : {"fcfs", "gimbal", "priority", "spf"}) {
    EXPECT_TRUE(std::find(names.begin(), names.end(), n) != names.end()) << n;
  }
  auto unknown = MakeQueuePolicy("lifo", Params());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("fcfs"), std::string::npos);

  auto typo = MakeQueuePolicy("gimbal", P({{"betta", "0.001"}}));
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(typo.status().message().find("betta"), std::string::npos);
  EXPECT_NE(typo.status().message().find("beta"), std::string::npos);

  EXPECT_FALSE(MakeQueuePolicy("gimbal", P({{"beta", "-1"}})).ok());
  EXPECT_FALSE(MakeQueuePolicy("gimbal", P({{"beta", "fast"}})).ok());
  EXPECT_FALSE(MakeQueuePolicy("fcfs", P({{"beta", "1"}})).ok());
  EXPECT_TRUE(MakeQueuePolicy("gimbal", P({{"beta", "0.001"}})).ok());
}

TEST(QueueRegistry, NamesMatch) {
  for (const auto& n : QueuePolicyNames()) {
    auto p = MustMake(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name(), n);
  }
}

TEST(FcfsQueue, AdmitsInArrivalOrder) {
  auto p = MustMake("fcfs");
  ASSERT_NE(p, nullptr);
  std::vector<QueueEntry> q = {Entry(1, 3.0, 10), Entry(2, 1.0, 9000), Entry(3, 2.0, 5),
                               Entry(4, 1.0, 1)};
  EXPECT_EQ(Ids(Sorted(*p, q)), (std::vector<RequestId>{2, 4, 3, 1}));
}

TEST(SpfQueue, AdmitsShortestRemainingPrefillFirst) {
  auto p = MustMake("spf");
  ASSERT_NE(p, nullptr);
  std::vector<QueueEntry> q = {Entry(1, 0.0, 9000), Entry(2, 50.0, 10), Entry(3, 2.0, 500)};
  q[2].remaining_prefill = 5;  // partially prefilled
  EXPECT_EQ(Ids(Sorted(*p, q)), (std::vector<RequestId>{3, 2, 1}));
}

TEST(PriorityQueue, AdmitsByPriorityThenArrival) {
  auto p = MustMake("priority");
  ASSERT_NE(p, nullptr);
  std::vector<QueueEntry> q = {Entry(1, 0.0, 10, 5), Entry(2, 1.0, 10, -1), Entry(3, 2.0, 10, 5),
                               Entry(4, 0.5, 10, 0)};
  EXPECT_EQ(Ids(Sorted(*p, q)), (std::vector<RequestId>{2, 4, 1, 3}));
}

TEST(GimbalQueue, KeyIsArrivalPlusBetaTimesRemainingPrefill) {
  auto def = MustMake("gimbal");
  ASSERT_NE(def, nullptr);
  EXPECT_DOUBLE_EQ(def->Key(Entry(1, 10.0, 500)), 10.5);   // default beta 0.001 s/token
  EXPECT_DOUBLE_EQ(def->Key(Entry(1, 10.0, 2000)), 11.0);  // shift capped at 1 s by default
  EXPECT_DOUBLE_EQ(def->Key(Entry(1, 10.0, 30000)), 11.0);
  auto uncapped = MustMake("gimbal", P({{"max_overtake_ms", "0"}}));
  ASSERT_NE(uncapped, nullptr);
  EXPECT_DOUBLE_EQ(uncapped->Key(Entry(1, 10.0, 30000)), 40.0);
  auto tight = MustMake("gimbal", P({{"beta", "0.002"}, {"max_overtake_ms", "250"}}));
  ASSERT_NE(tight, nullptr);
  EXPECT_DOUBLE_EQ(tight->Key(Entry(1, 1.0, 100)), 1.2);
  EXPECT_DOUBLE_EQ(tight->Key(Entry(1, 1.0, 1000)), 1.25);
  EXPECT_FALSE(MakeQueuePolicy("gimbal", P({{"max_overtake_ms", "-1"}})).ok());
  EXPECT_FALSE(MakeQueuePolicy("gimbal", P({{"max_overtake_ms", "soon"}})).ok());
  auto p = MustMake("gimbal", P({{"beta", "0.001"}}));
  ASSERT_NE(p, nullptr);
  QueueEntry e = Entry(1, 2.0, 4000);
  e.remaining_prefill = 1000;
  EXPECT_DOUBLE_EQ(p->Key(e), 3.0);
  // beta = 0 is FCFS.
  auto zero = MustMake("gimbal", P({{"beta", "0"}}));
  std::vector<QueueEntry> q = {Entry(1, 3.0, 1), Entry(2, 1.0, 9000), Entry(3, 2.0, 5)};
  EXPECT_EQ(Ids(Sorted(*zero, q)), (std::vector<RequestId>{2, 3, 1}));
}

TEST(GimbalQueue, OnlyRequestsArrivingWithinBetaTimesPromptOvertake) {
  // Randomised stream: in the admission order, whenever j comes before i although j arrived
  // later, j arrived within beta·P_i of i.
  const double beta = 0.0005;
  auto p = MustMake("gimbal", P({{"beta", "0.0005"}, {"max_overtake_ms", "0"}}));
  ASSERT_NE(p, nullptr);
  Rng rng(23);
  std::vector<QueueEntry> q;
  for (RequestId id = 0; id < 2000; ++id) {
    const auto prompt = static_cast<int64_t>(std::exp(rng.Uniform() * std::log(32000.0)));
    q.push_back(Entry(id, rng.Uniform() * 100.0, std::max<int64_t>(1, prompt)));
  }
  const auto order = Sorted(*p, q);
  int overtakes = 0;
  for (size_t a = 0; a < order.size(); ++a) {
    for (size_t b = a + 1; b < order.size(); ++b) {
      const QueueEntry& first = order[a];
      const QueueEntry& later = order[b];
      if (first.arrival > later.arrival) {
        ++overtakes;
        ASSERT_LE(first.arrival,
                  later.arrival + beta * static_cast<double>(later.remaining_prefill) + 1e-9)
            << "request " << first.id << " overtook " << later.id;
      }
    }
  }
  EXPECT_GT(overtakes, 1000);  // the policy does reorder
}

// A non-preemptive single server processing prompts at `tokens_per_s`, admitting by the
// policy's order. Returns each request's start time, indexed by id.
struct Served {
  double start = -1;
  double end = -1;
};
std::vector<Served> SimulateSingleServer(const QueuePolicy& p, const std::vector<QueueEntry>& jobs,
                                         double tokens_per_s) {
  std::vector<QueueEntry> arrivals = jobs;
  std::sort(arrivals.begin(), arrivals.end(),
            [](const QueueEntry& a, const QueueEntry& b) { return a.arrival < b.arrival; });
  using Key = std::tuple<double, double, RequestId>;
  std::set<Key> queue;
  std::vector<Served> out(jobs.size());
  std::vector<int64_t> prompt(jobs.size());
  for (const auto& j : jobs) prompt[static_cast<size_t>(j.id)] = j.remaining_prefill;
  double t = 0;
  size_t next = 0;
  while (next < arrivals.size() || !queue.empty()) {
    if (queue.empty()) t = std::max(t, arrivals[next].arrival);
    while (next < arrivals.size() && arrivals[next].arrival <= t) {
      const QueueEntry& e = arrivals[next++];
      queue.insert({p.Key(e), e.arrival, e.id});
    }
    const RequestId id = std::get<2>(*queue.begin());
    queue.erase(queue.begin());
    Served& s = out[static_cast<size_t>(id)];
    s.start = t;
    t += static_cast<double>(prompt[static_cast<size_t>(id)]) / tokens_per_s;
    s.end = t;
  }
  return out;
}

TEST(GimbalQueue, LongRequestIsNotStarvedByAStreamOfShortOnes) {
  // Overload: a 100-token prompt every 10 ms on a server prefilling 9,000 tokens/s (load 1.11),
  // for 100 s. A 10,000-token prompt arrives at t = 1 s. With beta = 0.0005 its key is
  // 1 + 5 = 6 s; no request arriving after 6 s can precede it, so it starts by 6 s plus the time
  // to drain what is ahead of it at 6 s (the request in service and queued ones with smaller keys).
  const double beta = 0.0005;
  const double rate = 9000;
  std::vector<QueueEntry> jobs;
  RequestId id = 0;
  for (int i = 0; i < 10'000; ++i) jobs.push_back(Entry(id++, i * 0.01, 100));
  const RequestId long_id = id;
  jobs.push_back(Entry(long_id, 1.0, 10'000));

  auto p = MustMake("gimbal", P({{"beta", "0.0005"}, {"max_overtake_ms", "0"}}));
  ASSERT_NE(p, nullptr);
  const auto served = SimulateSingleServer(*p, jobs, rate);
  const double key_long = 1.0 + beta * 10'000;
  double drain = 0;
  for (const auto& j : jobs) {
    if (j.id == long_id) continue;
    const Served& s = served[static_cast<size_t>(j.id)];
    if (s.start <= key_long && s.end > key_long) drain += s.end - key_long;    // in service
    if (s.start > key_long && p->Key(j) < key_long) drain += s.end - s.start;  // ahead, queued
  }
  const double start = served[static_cast<size_t>(long_id)].start;
  EXPECT_LE(start, key_long + drain + 1e-9);
  EXPECT_LT(start, 10.0);
  EXPECT_GT(start, 1.0 + 1.0);  // short ones did overtake it

  // Without aging (spf) the same request waits until the stream stops; FCFS runs it early.
  auto spf = MustMake("spf");
  EXPECT_GT(SimulateSingleServer(*spf, jobs, rate)[static_cast<size_t>(long_id)].start, 99.0);
  auto fcfs = MustMake("fcfs");
  EXPECT_LT(SimulateSingleServer(*fcfs, jobs, rate)[static_cast<size_t>(long_id)].start, start);
}

// The bound of docs/policies.md ("No starvation"): on a work-conserving server, a request with
// shift D_i = min(beta·P_i, max_overtake) starts no later than FCFS would start a request arriving
// D_i after it — FCFS's start time for an arrival at t is when the work present at t is done.
// Adversarial streams: bursts of short prompts and prompts up to 32,000 tokens, at 0.9x to 2x load.
TEST(GimbalQueue, EveryRequestStartsByFcfsStartOfAnArrivalDLater) {
  const double rate = 10'000;  // prompt tokens per second
  for (const double load : {0.9, 1.0, 1.2, 2.0}) {
    Rng rng(static_cast<uint64_t>(load * 100));
    std::vector<QueueEntry> jobs;
    double t = 0;
    for (RequestId id = 0; id < 3000; ++id) {
      // Mostly 50-400-token prompts in bursts, one in 50 a document of 8,000-32,000 tokens.
      const bool doc = rng.Uniform() < 0.02;
      const auto prompt =
          static_cast<int64_t>(doc ? 8000 + rng.Uniform() * 24000 : 50 + rng.Uniform() * 350);
      jobs.push_back(Entry(id, t, prompt));
      const double mean_gap = (0.98 * 225.0 + 0.02 * 20000.0) / rate / load;  // mean prompt / rate
      t += rng.Uniform() < 0.5 ? 0.0 : 2.0 * mean_gap;  // bursty: half arrive together
    }
    auto fcfs = MustMake("fcfs");
    auto gimbal = MustMake("gimbal");  // beta 0.001, max_overtake 1 s
    ASSERT_TRUE(fcfs && gimbal);
    const auto f = SimulateSingleServer(*fcfs, jobs, rate);
    const auto g = SimulateSingleServer(*gimbal, jobs, rate);
    // FCFS start of an arrival at time x: the end of the last job that arrived at or before x
    // (FCFS serves in arrival order), or x when the server is idle by then.
    auto fcfs_start_at = [&](double x) {
      double end = x;
      for (const auto& j : jobs) {
        if (j.arrival <= x) end = std::max(end, f[static_cast<size_t>(j.id)].end);
      }
      return end;
    };
    int overtaken = 0;
    for (const auto& j : jobs) {
      const double d = std::min(0.001 * static_cast<double>(j.remaining_prefill), 1.0);
      const Served& s = g[static_cast<size_t>(j.id)];
      // The bound counts j's own work among what is present at arrival + d; j starts before it.
      const double bound =
          fcfs_start_at(j.arrival + d) - static_cast<double>(j.remaining_prefill) / rate;
      ASSERT_LE(s.start, std::max(bound, j.arrival + d) + 1e-9)
          << "load " << load << ", job " << j.id;
      overtaken += s.start > f[static_cast<size_t>(j.id)].start + 1e-9 ? 1 : 0;
    }
    EXPECT_GT(overtaken, 30) << "load " << load;  // the policy does reorder
  }
}

TEST(VllmPriority, MillisecondsSinceEpochRoundedDown) {
  EXPECT_EQ(VllmPriorityFromKey(100.0, 100.0), 0);
  EXPECT_EQ(VllmPriorityFromKey(101.2345, 100.0), 1234);
  EXPECT_EQ(VllmPriorityFromKey(99.9995, 100.0), -1);
  EXPECT_EQ(VllmPriorityFromKey(1e300, 0.0), VllmPriorityFromKey(1e301, 0.0));  // clamped
  EXPECT_LT(VllmPriorityFromKey(-1e300, 0.0), 0);
}

TEST(VllmPriority, MappingIsMonotoneAndKeepsMillisecondOrder) {
  Rng rng(3);
  std::vector<double> keys;
  for (int i = 0; i < 10'000; ++i) keys.push_back(1.7e9 + rng.Uniform() * 3600.0);
  keys.push_back(1.7e9);
  keys.push_back(std::nextafter(1.7e9, 2e9));
  std::sort(keys.begin(), keys.end());
  const double epoch = 1.7e9;
  for (size_t i = 1; i < keys.size(); ++i) {
    const int64_t a = VllmPriorityFromKey(keys[i - 1], epoch);
    const int64_t b = VllmPriorityFromKey(keys[i], epoch);
    ASSERT_LE(a, b);
    if (keys[i] - keys[i - 1] >= 0.001) {
      ASSERT_LT(a, b);
    }
  }
}

}  // namespace
}  // namespace gimbal
