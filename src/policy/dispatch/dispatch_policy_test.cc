// The registry, and a suite every dispatch policy must pass.
#include "policy/dispatch/dispatch_policy.h"

#include <algorithm>
#include <limits>
#include <set>

#include <gtest/gtest.h>

#include "policy/dispatch/dispatch_test_util.h"

namespace gimbal {
namespace {

using dispatch_test::IdleEngines;
using dispatch_test::MustMake;
using dispatch_test::P;
using dispatch_test::SmallRequest;
using dispatch_test::TestDeps;

const std::vector<std::string> kBuiltins = {"dynamo",         "gimbal",  "gimbal_predictive",
                                            "least_requests", "llmd",    "power_of_two",
                                            "round_robin",    "sglang",  "vllm",
                                            "vllm_2025",      "vllm_kv", "vllm_kv_2025"};

TEST(DispatchRegistry, ListsEveryBuiltinPolicy) {
  const std::vector<std::string> names = DispatchPolicyNames();
  for (const auto& n : kBuiltins) {
    EXPECT_TRUE(std::find(names.begin(), names.end(), n) != names.end()) << n;
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(DispatchRegistry, UnknownNameIsNotFoundAndListsValidNames) {
  auto r = MakeDispatchPolicy("vlm", Params(), TestDeps());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("'vlm'"), std::string::npos);
  for (const auto& n : kBuiltins) EXPECT_NE(r.status().message().find(n), std::string::npos) << n;
}

TEST(DispatchRegistry, UnknownParameterIsRejected) {
  auto r = MakeDispatchPolicy("gimbal", P({{"w_kvv", "1"}}), TestDeps());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("w_kvv"), std::string::npos);
  EXPECT_NE(r.status().message().find("dispatch policy 'gimbal'"), std::string::npos);
  EXPECT_NE(r.status().message().find("w_kv"), std::string::npos);  // lists the known keys
}

TEST(DispatchRegistry, MalformedAndOutOfRangeParametersAreRejected) {
  EXPECT_FALSE(MakeDispatchPolicy("gimbal", P({{"w_q", "abc"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("gimbal", P({{"w_q", "-1"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("gimbal", P({{"kv_limit", "0"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("sglang", P({{"load_signal", "x"}}), TestDeps()).ok());
  EXPECT_FALSE(MakeDispatchPolicy("dynamo", P({{"block_size", "0"}}), TestDeps()).ok());
  // Parameterless policies reject any parameter.
  EXPECT_FALSE(MakeDispatchPolicy("round_robin", P({{"x", "1"}}), TestDeps()).ok());
}

TEST(DispatchRegistry, ParamsObjectCanBeReused) {
  const Params p = P({{"w_q", "2"}});
  EXPECT_TRUE(MakeDispatchPolicy("gimbal", p, TestDeps()).ok());
  // The same keys are unknown to another policy, whatever the first one read.
  EXPECT_FALSE(MakeDispatchPolicy("vllm", p, TestDeps()).ok());
}

TEST(DispatchRegistry, PredictiveNeedsCostModel) {
  auto r = MakeDispatchPolicy("gimbal_predictive", Params(), DispatchDeps{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cost model"), std::string::npos);
}

class FirstHealthy final : public DispatchPolicy {
 public:
  int Pick(const DispatchRequest&, std::span<const EngineView> engines, Rng&) const override {
    for (size_t i = 0; i < engines.size(); ++i) {
      if (engines[i].healthy) return static_cast<int>(i);
    }
    return -1;
  }
  std::string name() const override { return "test_first_healthy"; }
};

TEST(DispatchRegistry, RegistersExternalPoliciesOnceByName) {
  // The registry is process-wide: a fresh name per run keeps the test repeatable.
  static int run = 0;
  const std::string name = "test_first_healthy_" + std::to_string(run++);
  auto factory = [](const Params&, const DispatchDeps&) -> Result<std::unique_ptr<DispatchPolicy>> {
    return std::unique_ptr<DispatchPolicy>(std::make_unique<FirstHealthy>());
  };
  EXPECT_TRUE(RegisterDispatchPolicy(name, factory));
  EXPECT_FALSE(RegisterDispatchPolicy(name, factory));
  EXPECT_FALSE(RegisterDispatchPolicy("gimbal", factory));
  EXPECT_FALSE(RegisterDispatchPolicy("", factory));
  auto r = MakeDispatchPolicy(name, Params());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->name(), "test_first_healthy");
  const auto names = DispatchPolicyNames();
  EXPECT_TRUE(std::find(names.begin(), names.end(), name) != names.end());
}

// ---- The shared suite, run against every built-in policy. ----

class EveryDispatchPolicy : public ::testing::TestWithParam<std::string> {};

// A random cluster state: loads, KV, reservations, pressures and health all vary.
std::vector<EngineView> RandomEngines(Rng& rng, int n, double unhealthy_fraction) {
  std::vector<EngineView> v(static_cast<size_t>(n));
  for (auto& e : v) {
    e.snapshot.waiting = static_cast<int64_t>(rng.UniformInt(50));
    e.snapshot.running = static_cast<int64_t>(rng.UniformInt(300));
    e.snapshot.kv_usage = rng.Uniform();
    e.snapshot.kv_capacity_tokens = rng.Uniform() < 0.1 ? 0 : 200'000;
    e.snapshot.prefill_pending_tokens =
        rng.Uniform() < 0.3 ? -1 : static_cast<int64_t>(rng.UniformInt(20'000));
    e.snapshot_age = rng.Uniform() * 0.2;
    e.healthy = rng.Uniform() >= unhealthy_fraction;
    e.inflight = static_cast<int64_t>(rng.UniformInt(400));
    e.reserved_prefill = static_cast<int64_t>(rng.UniformInt(20'000));
    e.reserved_kv_tokens = static_cast<int64_t>(rng.UniformInt(250'000));
    e.picks_since_snapshot = static_cast<int64_t>(rng.UniformInt(10));
    e.moe_pressure = 0.5 + rng.Uniform();
  }
  return v;
}

DispatchRequest RandomRequest(Rng& rng, uint64_t seq) {
  DispatchRequest r;
  r.id = static_cast<RequestId>(seq);
  r.now = static_cast<double>(seq) * 0.01;
  r.prompt_tokens = 1 + static_cast<int64_t>(rng.UniformInt(8000));
  r.max_output_tokens = static_cast<int64_t>(rng.UniformInt(2000));
  r.affinity_key = rng.Uniform() < 0.5 ? 0 : 1 + rng.UniformInt(20);
  r.sequence = seq;
  return r;
}

TEST_P(EveryDispatchPolicy, NameMatchesRegistryName) {
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name(), GetParam());
}

TEST_P(EveryDispatchPolicy, NeverPicksUnhealthyAndReturnsValidIndex) {
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  Rng world(11);
  Rng rng(3);
  for (uint64_t i = 0; i < 3000; ++i) {
    const int n = 1 + static_cast<int>(world.UniformInt(12));
    const auto engines = RandomEngines(world, n, 0.4);
    const bool any_healthy =
        std::any_of(engines.begin(), engines.end(), [](const EngineView& e) { return e.healthy; });
    const int e = p->Pick(RandomRequest(world, i), engines, rng);
    if (!any_healthy) {
      EXPECT_EQ(e, -1);
      continue;
    }
    ASSERT_GE(e, 0);
    ASSERT_LT(e, n);
    EXPECT_TRUE(engines[static_cast<size_t>(e)].healthy);
  }
}

TEST_P(EveryDispatchPolicy, ReturnsMinusOneWhenNoEngineIsHealthy) {
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  auto engines = IdleEngines(4);
  for (auto& e : engines) e.healthy = false;
  EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), -1);
  EXPECT_EQ(p->Pick(SmallRequest(), std::span<const EngineView>(), rng), -1);
}

TEST_P(EveryDispatchPolicy, PicksTheOnlyHealthyEngine) {
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  Rng world(5);
  Rng rng(2);
  for (uint64_t i = 0; i < 200; ++i) {
    auto engines = RandomEngines(world, 6, 0.0);
    const size_t only = world.UniformInt(6);
    for (size_t k = 0; k < engines.size(); ++k) engines[k].healthy = k == only;
    EXPECT_EQ(p->Pick(RandomRequest(world, i), engines, rng), static_cast<int>(only));
  }
}

TEST_P(EveryDispatchPolicy, IsAPureFunctionOfItsArgumentsAndRngState) {
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  Rng world(9);
  Rng a(42);
  Rng b(42);
  for (uint64_t i = 0; i < 500; ++i) {
    const auto engines = RandomEngines(world, 8, 0.2);
    const DispatchRequest req = RandomRequest(world, i);
    EXPECT_EQ(p->Pick(req, engines, a), p->Pick(req, engines, b));
  }
}

TEST_P(EveryDispatchPolicy, SurvivesNonFiniteSignals) {
  // A corrupt snapshot (NaN KV usage, infinite pressure) must not make a policy return -1 or an
  // unhealthy engine.
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  Rng rng(4);
  auto engines = IdleEngines(4);
  engines[0].healthy = false;
  for (auto& e : engines) e.snapshot.kv_usage = std::numeric_limits<double>::quiet_NaN();
  engines[2].moe_pressure = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 100; ++i) {
    const int e = p->Pick(SmallRequest(), engines, rng);
    ASSERT_GE(e, 1);
    ASSERT_LT(e, 4);
  }
}

TEST_P(EveryDispatchPolicy, ToleratesAnyFrontEndFields) {
  // Front-end counts and indices out of range (a caller's bug) are clamped, never a crash or an
  // unhealthy pick; the default front-end count is at least 1 for any cluster size.
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  for (int engines : {0, 1, 4, 64}) EXPECT_GE(p->DefaultFrontends(engines), 1) << engines;
  Rng world(21);
  Rng rng(8);
  for (uint64_t i = 0; i < 1000; ++i) {
    const int n = 1 + static_cast<int>(world.UniformInt(9));
    const auto engines = RandomEngines(world, n, 0.3);
    DispatchRequest req = RandomRequest(world, i * 7919);
    req.frontends = static_cast<int>(world.UniformInt(12)) - 3;  // [-3, 8]
    req.frontend = static_cast<int>(world.UniformInt(20)) - 5;   // [-5, 14]
    const int e = p->Pick(req, engines, rng);
    const bool any_healthy =
        std::any_of(engines.begin(), engines.end(), [](const EngineView& v) { return v.healthy; });
    if (!any_healthy) {
      EXPECT_EQ(e, -1);
      continue;
    }
    ASSERT_GE(e, 0);
    ASSERT_LT(e, n);
    EXPECT_TRUE(engines[static_cast<size_t>(e)].healthy);
  }
}

TEST_P(EveryDispatchPolicy, SpreadsOverIdenticalIdleEngines) {
  // On identical engines with no state change between picks, a policy may pick any engine, but
  // the ones that randomise or rotate (vllm and vllm_kv rotate their scan start with the sequence)
  // must reach every engine; the deterministic lowest-index baselines (vllm_2025, vllm_kv_2025,
  // sglang) legitimately stay on engine 0 until the caller updates their counts, so only "never
  // out of range" is checked for them.
  auto p = MustMake(GetParam());
  ASSERT_NE(p, nullptr);
  const auto engines = IdleEngines(5);
  const auto share = dispatch_test::Shares(*p, SmallRequest(), engines, 5000);
  double total = 0;
  for (double s : share) total += s;
  EXPECT_NEAR(total, 1.0, 1e-9);
  const std::set<std::string> deterministic = {"vllm_2025", "vllm_kv_2025", "sglang"};
  if (deterministic.count(GetParam())) return;
  for (double s : share) EXPECT_GT(s, 0.1) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Builtins, EveryDispatchPolicy, ::testing::ValuesIn(kBuiltins),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace gimbal
