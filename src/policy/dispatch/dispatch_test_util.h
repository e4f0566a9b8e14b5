// Helpers shared by the dispatch policy tests.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/cost_model.h"
#include "model/test_specs.h"
#include "policy/dispatch/dispatch_policy.h"

namespace gimbal::dispatch_test {

// A Qwen3-30B-A3B-like model on H100-like GPUs, written out by hand so the tests depend on no
// data file.
inline const CostModel& TestCostModel() {
  static const CostModel* model = [] {
    const ModelSpec m = gimbal::testing::HandQwen3_30B();
    HardwareSpec hw;
    hw.gpu.name = "test-gpu";
    hw.gpu.memory_bytes = 80e9;
    hw.gpu.peak_flops = 989e12;
    hw.gpu.hbm_bandwidth = 3.35e12;
    hw.gpu.nvlink_bandwidth = 450e9;
    hw.gpu.nic_bandwidth = 50e9;
    hw.nvlink_latency = 10e-6;
    hw.nic_latency = 20e-6;
    return new CostModel(m, hw);
  }();
  return *model;
}

// Params from a literal map: P({{"w_kv", "0"}}).
inline Params P(std::map<std::string, std::string> values) {
  return Params(std::move(values));
}

inline DispatchDeps TestDeps() {
  DispatchDeps deps;
  deps.cost_model = &TestCostModel();
  deps.max_num_batched_tokens = 8192;
  return deps;
}

inline std::unique_ptr<DispatchPolicy> MustMake(const std::string& name, const Params& p = {}) {
  auto r = MakeDispatchPolicy(name, p, TestDeps());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

// `n` identical, idle, healthy engines with a known KV capacity.
inline std::vector<EngineView> IdleEngines(int n, int64_t capacity = 1'000'000) {
  std::vector<EngineView> v(static_cast<size_t>(n));
  for (auto& e : v) e.snapshot.kv_capacity_tokens = capacity;
  return v;
}

inline DispatchRequest SmallRequest() {
  DispatchRequest r;
  r.prompt_tokens = 100;
  r.max_output_tokens = 100;
  return r;
}

// Fraction of `picks` picks that went to each engine (index -1 counted nowhere).
inline std::vector<double> Shares(const DispatchPolicy& policy, const DispatchRequest& req,
                                  const std::vector<EngineView>& engines, int picks,
                                  uint64_t seed = 7) {
  Rng rng(seed);
  std::vector<double> share(engines.size(), 0.0);
  DispatchRequest r = req;
  for (int i = 0; i < picks; ++i) {
    r.sequence = static_cast<uint64_t>(i);
    const int e = policy.Pick(r, engines, rng);
    if (e >= 0) share[static_cast<size_t>(e)] += 1.0;
  }
  for (auto& s : share) s /= picks;
  return share;
}

}  // namespace gimbal::dispatch_test
