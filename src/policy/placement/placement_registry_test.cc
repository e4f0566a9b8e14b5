#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/placement/exact_solver.h"
#include "policy/placement/placement_policy.h"

namespace gimbal {
namespace {

bool Contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

TEST(PlacementRegistry, BuildsEveryBuiltInByName) {
  // Sorted; another test registers more.
  const std::vector<std::string> names = PlacementPolicyNames();
  ASSERT_GE(names.size(), 3u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const char* builtin : {"eplb", "exact", "gimbal"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), builtin), names.end()) << builtin;
  }
  for (const std::string name : {"gimbal", "eplb"}) {
    auto p = MakePlacementPolicy(name, Params());
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ((*p)->name(), name);
  }
  auto exact = MakePlacementPolicy("exact", Params());
  if (ExactSolverAvailable()) {
    ASSERT_TRUE(exact.ok()) << exact.status().message();
  } else {
    EXPECT_EQ(exact.status().code(), ErrorCode::kUnsupported);
    EXPECT_TRUE(Contains(exact.status(), "placement policy 'exact': needs COIN-OR CBC"));
  }
}

TEST(PlacementRegistry, UnknownNamesListTheKnownOnes) {
  auto p = MakePlacementPolicy("nope", Params());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), ErrorCode::kNotFound);
  // The format of the dispatch, queue and step registries (RegistersAdditionalPoliciesOnce may
  // have added a name after these).
  const std::string want = "unknown placement policy 'nope' (known: eplb, exact, gimbal";
  EXPECT_EQ(p.status().message().substr(0, want.size()), want) << p.status().message();
}

TEST(PlacementRegistry, ParameterErrorsNameThePolicyOnce) {
  Params typo;
  typo.Set("trafic_weight", "1");
  auto a = MakePlacementPolicy("eplb", typo);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message(),
            "placement policy 'eplb': unknown parameter 'trafic_weight' (known: load_weight, "
            "migration_weight, traffic_weight)");
  Params negative;
  negative.Set("load_weight", "-1");
  auto b = MakePlacementPolicy("gimbal", negative);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(),
            "placement policy 'gimbal': load_weight, traffic_weight and migration_weight must be "
            "in [0, 1e+06], got -1");
  // The same rule for the policies whose weights only score their plans (a negative weight
  // printed a negative objective).
  for (const char* policy : {"eplb", "exact"}) {
    auto e = MakePlacementPolicy(policy, negative);
    if (!e.ok() && e.status().code() == ErrorCode::kUnsupported) continue;  // no CBC here
    ASSERT_FALSE(e.ok()) << policy;
    EXPECT_EQ(e.status().message(),
              std::string("placement policy '") + policy + "': weights must be >= 0");
  }
  Params malformed;
  malformed.Set("time_limit_s", "abc");
  auto c = MakePlacementPolicy("exact", malformed);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "placement policy 'exact': 'time_limit_s' expects a number, got 'abc'");
}

TEST(PlacementRegistry, RegistersAdditionalPoliciesOnce) {
  PlacementFactory eplb = [](const Params&) -> Result<std::unique_ptr<PlacementPolicy>> {
    return NewEplbPlacementPolicy();
  };
  EXPECT_TRUE(RegisterPlacementPolicy("registry_test_eplb", eplb));
  EXPECT_FALSE(RegisterPlacementPolicy("registry_test_eplb", eplb));
  EXPECT_FALSE(RegisterPlacementPolicy("gimbal", eplb));
  EXPECT_FALSE(RegisterPlacementPolicy("", eplb));
  auto p = MakePlacementPolicy("registry_test_eplb", Params());
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->name(), "eplb");
  Params extra;
  extra.Set("x", "1");
  EXPECT_FALSE(MakePlacementPolicy("registry_test_eplb", extra).ok());
}

}  // namespace
}  // namespace gimbal
