#include "placement/place_tool.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "placement/placement_formats.h"

namespace gimbal {
namespace {

std::string Example(const std::string& file) {
  return std::string(GIMBAL_SOURCE_DIR) + "/examples/placement/" + file;
}

PlaceOptions ExampleOptions(const std::string& policy) {
  PlaceOptions o;
  o.stats_path = Example("stats.json");
  o.current_path = Example("current.json");
  o.topology_path = Example("topology.yaml");
  o.policy = policy;
  return o;
}

TEST(PlaceTool, RunsOnTheExamplesWithEveryPolicy) {
  for (const char* policy : {"gimbal", "eplb"}) {
    Result<PlaceReport> r = RunPlace(ExampleOptions(policy));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->plan.Validate().ok());
    EXPECT_EQ(r->quality.layers.size(), 2u);
    const std::string table = FormatPlaceReport(*r);
    EXPECT_NE(table.find("policy " + std::string(policy)), std::string::npos) << table;
    nlohmann::json j = nlohmann::json::parse(PlaceReportToJson(*r));
    EXPECT_EQ(j["placement"]["phy2log"].size(), 2u);
    EXPECT_TRUE(j["quality"].contains("cross_node_fraction"));
    // The written placement reads back as the same phy2log.
    Result<Placement> back = ParsePlacementJson(j["placement"].dump(), "plan");
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->phy2log, r->plan.phy2log);
  }
}

TEST(PlaceTool, GimbalBeatsEplbOnCrossNodeTrafficOfTheExample) {
  // On this 16-expert example one expert carries 1/16 of a layer's tokens, and the default
  // weights (cheap copies, set for 256-expert layers) let Gimbal rearrange most of it; with the
  // weights that price copies for layers this small it must beat EPLB on both counts.
  PlaceOptions o = ExampleOptions("gimbal");
  o.sets = {"migration_weight=0.002", "traffic_weight=0.25"};
  Result<PlaceReport> g = RunPlace(o);
  Result<PlaceReport> e = RunPlace(ExampleOptions("eplb"));
  ASSERT_TRUE(g.ok() && e.ok());
  EXPECT_LT(g->quality.cross_node_fraction, e->quality.cross_node_fraction);
  EXPECT_LT(g->quality.experts_moved, e->quality.experts_moved);
}

TEST(PlaceTool, DefaultsToTheContiguousPlacementAndAppliesSettings) {
  PlaceOptions o = ExampleOptions("gimbal");
  o.current_path.clear();
  o.sets = {"max_moves_per_layer=0"};
  Result<PlaceReport> r = RunPlace(o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->plan.phy2log, r->current.phy2log);
  EXPECT_EQ(r->quality.experts_moved, 0);
  o.sets = {"no_such_key=1"};
  Result<PlaceReport> bad = RunPlace(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no_such_key"), std::string::npos);
  o.sets = {"novalue"};
  EXPECT_FALSE(RunPlace(o).ok());
}

TEST(PlaceTool, ReportsBadInputFiles) {
  PlaceOptions o = ExampleOptions("gimbal");
  o.stats_path = Example("missing.json");
  EXPECT_EQ(RunPlace(o).status().code(), ErrorCode::kNotFound);
  o = ExampleOptions("eplb");
  o.current_path = Example("topology.yaml");
  EXPECT_FALSE(RunPlace(o).ok());
  o = ExampleOptions("wrong");
  EXPECT_NE(RunPlace(o).status().message().find("unknown placement policy 'wrong'"),
            std::string::npos);
  Result<Placement> p = ParsePlacementJson(
      R"({"layers":1,"experts":2,"gpus":1,"slots_per_gpu":2,"phy2log":[[0,0]]})", "p.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("layer 0 has no slot for expert 1"), std::string::npos);
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path =
      testing::TempDir() + "/gimbal_place_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(PlaceTool, HugeCountsAreRejectedNamingFileAndField) {
  // 1e308 is finite, but a layer's sum is not: the plan used to be all NaN.
  nlohmann::json stats = nlohmann::json::parse(std::ifstream(Example("stats.json")));
  stats["counts"][1][3][7] = 1e308;
  PlaceOptions o = ExampleOptions("gimbal");
  o.stats_path = WriteTemp("huge_stats.json", stats.dump());
  Result<PlaceReport> r = RunPlace(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(
      r.status().message().find(o.stats_path + ": routing statistics: count at layer 1, "
                                               "source 3, expert 7 (counts[1][3][7]) is 1e+308"),
      std::string::npos)
      << r.status().message();
  std::remove(o.stats_path.c_str());
  stats["counts"][1][3][7] = kMaxRoutingCount;  // the maximum itself is fine
  o.stats_path = WriteTemp("max_stats.json", stats.dump());
  r = RunPlace(o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::remove(o.stats_path.c_str());
}

TEST(PlaceTool, TopologyCostsAreBoundedAndFilesMustBeRegular) {
  PlaceOptions o = ExampleOptions("eplb");
  o.topology_path = WriteTemp("topology.json",
                              R"({"gpus": 4, "gpus_per_node": 2, "alpha": 0.2, "beta": 1e300,
                                  "slots_per_gpu": 5})");
  Result<PlaceReport> r = RunPlace(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(o.topology_path + ":1:"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("'beta': expected a number in [0, 1000000]"),
            std::string::npos)
      << r.status().message();
  std::remove(o.topology_path.c_str());
  o = ExampleOptions("eplb");
  o.stats_path = "/dev/zero";
  r = RunPlace(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/dev/zero: is a device"), std::string::npos)
      << r.status().message();
  PlacementTopology t;
  t.gpus = 2;
  t.expert_bytes = 1e300;
  EXPECT_FALSE(t.Validate().ok());
  // GPUs x slots per GPU past what int indexing holds (it wrapped to 0 slots and wrote out of
  // bounds), and more slots per GPU than experts (quadratic search time for nothing).
  for (const char* topology :
       {R"({"gpus": 4096, "slots_per_gpu": 1048576})", R"({"gpus": 4, "slots_per_gpu": 65536})"}) {
    o = ExampleOptions("eplb");
    o.topology_path = WriteTemp("topology.json", topology);
    r = RunPlace(o);
    std::remove(o.topology_path.c_str());
    ASSERT_FALSE(r.ok()) << topology;
    EXPECT_NE(r.status().message().find("slots"), std::string::npos) << r.status().message();
  }
}

TEST(PlaceTool, RefusesAPlanWithNonFiniteNumbers) {
  // Gimbal's planner bounds its weights when it reads them (1e308 overflowed its scores).
  PlaceOptions g = ExampleOptions("gimbal");
  g.sets = {"load_weight=1e308"};
  Result<PlaceReport> r = RunPlace(g);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be in [0, 1e+06], got 1e+308"), std::string::npos)
      << r.status().message();
  // EPLB's weights only score its plan: each input is in range, but 1e308 overflows the
  // objective, and the report refuses it.
  PlaceOptions o = ExampleOptions("eplb");
  o.sets = {"load_weight=1e308"};
  r = RunPlace(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not finite"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("objective is inf"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace gimbal
