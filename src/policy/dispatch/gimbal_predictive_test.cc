// `gimbal_predictive`: the cost-model straggler minimiser, with a hand-made model and GPU.
#include <gtest/gtest.h>

#include "policy/dispatch/dispatch_test_util.h"

namespace gimbal {
namespace {

using dispatch_test::IdleEngines;
using dispatch_test::MustMake;
using dispatch_test::Shares;
using dispatch_test::SmallRequest;

std::vector<EngineView> Busy(int n) {
  auto engines = IdleEngines(n, 500'000);
  for (auto& e : engines) {
    e.snapshot.running = 64;
    e.snapshot.kv_usage = 0.3;
    e.reserved_prefill = 1000;
  }
  return engines;
}

TEST(GimbalPredictiveDispatch, IdenticalEnginesArePickedUniformly) {
  auto p = MustMake("gimbal_predictive");
  ASSERT_NE(p, nullptr);
  const auto share = Shares(*p, SmallRequest(), Busy(4), 40'000);
  for (double s : share) EXPECT_NEAR(s, 0.25, 0.015);
}

TEST(GimbalPredictiveDispatch, AvoidsTheEngineThatWouldBecomeTheStraggler) {
  auto p = MustMake("gimbal_predictive");
  ASSERT_NE(p, nullptr);
  Rng rng(1);
  DispatchRequest req = SmallRequest();
  req.prompt_tokens = 4000;
  // More pending prefill, more running decodes, a longer context or a hotter GPU on engine 1:
  // each makes its step the slowest, so the request goes elsewhere.
  for (int variant = 0; variant < 4; ++variant) {
    auto engines = Busy(3);
    EngineView& e = engines[1];
    if (variant == 0) e.reserved_prefill = 6000;
    if (variant == 1) e.snapshot.running = 256;
    if (variant == 2) e.snapshot.kv_usage = 0.8;
    if (variant == 3) e.moe_pressure = 1.6;
    const auto share = Shares(*p, req, engines, 2000);
    EXPECT_EQ(share[1], 0.0) << "variant " << variant;
  }
}

TEST(GimbalPredictiveDispatch, PrefersTheLighterEngineWhenTheMaximumIsTheSame) {
  // Engine 0 is the straggler whatever happens; among engines 1 and 2 the request goes where its
  // own step stays shorter.
  auto p = MustMake("gimbal_predictive");
  ASSERT_NE(p, nullptr);
  auto engines = Busy(3);
  engines[0].reserved_prefill = 8192;
  engines[0].snapshot.running = 300;
  engines[2].snapshot.running = 100;
  Rng rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 1);
}

TEST(GimbalPredictiveDispatch, ALongPromptAvoidsAnEngineWithAPrefillBacklog) {
  // A prompt longer than one budget fills any engine's next step, so one step ahead engine 0,
  // whose GPU holds cooler experts, looks cheapest, even though it is busy prefilling two budgets'
  // worth already. That backlog would delay the request by two more steps: it goes elsewhere.
  auto p = MustMake("gimbal_predictive");
  ASSERT_NE(p, nullptr);
  auto engines = Busy(3);
  for (auto& e : engines) {
    e.snapshot.running = 4;
    e.snapshot.kv_usage = 0.01;
    e.reserved_prefill = 0;
    e.moe_pressure = 1.2;
  }
  engines[0].moe_pressure = 0.8;
  engines[0].reserved_prefill = 2 * 8192;
  DispatchRequest req = SmallRequest();
  req.prompt_tokens = 12'000;
  const auto share = Shares(*p, req, engines, 2000);
  EXPECT_EQ(share[0], 0.0);
  EXPECT_NEAR(share[1], 0.5, 0.05);
  // Without the backlog, the cooler GPU is the better place for it.
  engines[0].reserved_prefill = 0;
  EXPECT_EQ(Shares(*p, req, engines, 200)[0], 1.0);
}

TEST(GimbalPredictiveDispatch, RespectsTheKvLimit) {
  auto p = MustMake("gimbal_predictive");
  ASSERT_NE(p, nullptr);
  auto engines = Busy(2);
  engines[0].snapshot.kv_usage = 0.96;  // cheap step, but no room
  engines[0].snapshot.running = 1;
  engines[0].reserved_prefill = 0;
  Rng rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p->Pick(SmallRequest(), engines, rng), 1);
}

}  // namespace
}  // namespace gimbal
