#include "placement/placement_formats.h"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "placement/json_scan.h"

namespace gimbal {
namespace {

bool Contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

TEST(PlacementFormats, RoutingStatsRoundTrip) {
  SourceExpertCounts a = SourceExpertCounts::Zeros(2, 2, 3);
  for (size_t i = 0; i < a.counts.size(); ++i) a.counts[i] = static_cast<double>(i) * 1.5;
  Result<SourceExpertCounts> b = ParseRoutingStatsJson(RoutingStatsToJson(a), "t");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->counts, a.counts);
  EXPECT_EQ(b->ExpertTotals()[4], a.At(1, 0, 1) + a.At(1, 1, 1));
}

TEST(PlacementFormats, MalformedStatisticsAreRejectedWithAMessageNamingTheProblem) {
  const std::string head = R"({"layers": 1, "sources": 2, "experts": 2, "counts": )";
  struct Case {
    std::string text, want;
  };
  const Case cases[] = {
      {head + "[[[1, 2], [3, -4]]]}", "layer 0, source 1, expert 1 is negative"},
      {head + "[[[1, 2], [3]]]}", "layer 0, source 1: expected an array of 2 expert counts"},
      {head + "[[[1, 2]]]}", "layer 0: expected an array of 2 sources, got 1"},
      {head + "[[[1, 2], [3, \"x\"]]]}", "layer 0, source 1, expert 1: expected a number"},
      {head + "[[[1, 2], [3, \"NaN\"]]]}", "expected a number"},
      {R"({"layers": 1, "sources": 2, "counts": []})", "missing key 'experts'"},
      {R"({"layers": 1, "sources": 2, "experts": 2})", "missing key 'counts'"},
      {R"({"layers": 0, "sources": 2, "experts": 2, "counts": []})", "'layers' must be a positive"},
      {"[1, 2", "malformed JSON"},
      {head + "[[[1, 2], [3, 1e308]]]}",
       "layer 0, source 1, expert 1 (counts[0][1][1]) is 1e+308, more than the maximum 1e+15"},
      {head + "[[[1, 2], [3, [4]]]]}",
       "layer 0, source 1, expert 1: expected a number, got an array"},
      {head + "[[[1, 2], 3]]}", "layer 0, source 1: expected an array of 2 expert counts, got 3"},
      {head + "[{\"a\": 1}]}", "layer 0: expected an array of 2 sources, got an object"},
      {head + "[[[1, 2], [3, 4]], []]}", "'counts' must be an array of 1 layers, got 2 entries"},
      {head + "{\"a\": [1]}}", "'counts' must be an array of 1 layers, got object"},
      {head + "7}", "'counts' must be an array of 1 layers, got number"},
      {head + "[[[1, 2], [3, 4]]], \"counts\": [[[1, 2], [3, 4]]]}", "'counts' is given twice"},
      {"[[[1]]]", "routing statistics must be a JSON object"},
      {head + "[[[1, 2], [3, 4]]]} trailing", "malformed JSON"},
      {R"({"layers": 1048576, "sources": 1048576, "experts": 64, "counts": []})",
       "1048576 layers x 1048576 sources x 64 experts = 70368744177664 counts, more than the "
       "67108864 allowed"},
  };
  for (const Case& c : cases) {
    Result<SourceExpertCounts> r = ParseRoutingStatsJson(c.text, "stats.json");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_TRUE(Contains(r.status(), c.want)) << r.status().message();
    EXPECT_TRUE(Contains(r.status(), "stats.json")) << r.status().message();
  }
}

// The counts are read without a document: numbers flat, other keys' arrays and objects dropped,
// and no more numbers or arrays than a valid file has.
TEST(PlacementFormats, StatisticsAreScannedNotBuilt) {
  const std::string text =
      R"({"extra": [[1, 2, {"deep": [3]}], 4], "counts": [[[1, 2.5], [3, 4]]], "note": "x",)"
      R"( "layers": 1, "sources": 2, "experts": 2})";
  Result<JsonObjectScan> scan = ScanJsonObject(text, "s.json", "counts", 3, false, 100, 100);
  ASSERT_TRUE(scan.ok()) << scan.status().message();
  EXPECT_EQ(scan->field.values, (std::vector<double>{1, 2.5, 3, 4}));
  EXPECT_EQ(scan->field.lengths, (std::vector<std::vector<int64_t>>{{1}, {2}, {2, 2}}));
  EXPECT_EQ(scan->scalars["extra"], nlohmann::json::array());  // dropped, its type kept
  EXPECT_EQ(scan->scalars["note"], "x");
  Result<SourceExpertCounts> stats = ParseRoutingStatsJson(text, "s.json");
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->At(0, 0, 1), 2.5);
  // Past the caps the scan stops with a message, before it keeps more.
  Result<JsonObjectScan> many = ScanJsonObject(text, "s.json", "counts", 3, false, 3, 100);
  ASSERT_FALSE(many.ok());
  EXPECT_TRUE(Contains(many.status(), "s.json: 'counts' holds more than 3 numbers"))
      << many.status().message();
  Result<JsonObjectScan> arrays = ScanJsonObject(text, "s.json", "counts", 3, false, 100, 3);
  ASSERT_FALSE(arrays.ok());
  EXPECT_TRUE(Contains(arrays.status(), "s.json: 'counts' holds more than 3 arrays"))
      << arrays.status().message();
  // Where the first misfit is, by its index at each level.
  Result<JsonObjectScan> bad = ScanJsonObject(R"({"counts": [[[1], [2]], [[3], [4, null]]]})",
                                              "s.json", "counts", 3, false, 100, 100);
  ASSERT_TRUE(bad.ok());
  ASSERT_TRUE(bad->field.bad.has_value());
  EXPECT_EQ(bad->field.bad->first, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_TRUE(bad->field.bad->second.is_null());
}

// The scan reads through a misfit, so the keys after it are known and the first fault is found
// in the order a reader walks the file: an array's length before its elements. Gimbal's own
// writers put "counts" before "layers" and "phy2log" before "slots_per_gpu" (keys sorted).
TEST(PlacementFormats, TheFirstFaultIsNamedWhereverTheShapeKeysAre) {
  const std::string shape = R"("layers": 1, "sources": 2, "experts": 2})";
  for (const auto& [counts, want] : std::vector<std::pair<std::string, std::string>>{
           {R"([[[1, "x"], [3, 4]]])", "layer 0, source 0, expert 1: expected a number, got \"x\""},
           {R"([[[1, 2], [3, 4], [5, 6, 7], "x"]])",
            "layer 0: expected an array of 2 sources, got 4"},
           {R"([[[1, 2], [3, 4], [5, "x"]]])", "layer 0: expected an array of 2 sources, got 3"},
           {R"([[[1, 2, 3], [3, "x"]]])",
            "layer 0, source 0: expected an array of 2 expert counts, got 3"},
           {R"([[[1, 2], {"a": [1]}]])",
            "layer 0, source 1: expected an array of 2 expert counts, got an object"}}) {
    Result<SourceExpertCounts> r =
        ParseRoutingStatsJson(R"({"counts": )" + counts + ", " + shape, "s.json");
    ASSERT_FALSE(r.ok()) << counts;
    EXPECT_TRUE(Contains(r.status(), "s.json: routing statistics: " + want))
        << r.status().message();
  }
  Result<Placement> p = ParsePlacementJson(
      R"({"experts": 2, "gpus": 1, "layers": 2, "phy2log": [[0, 1], [1, true]], "slots_per_gpu": 2})",
      "p.json");
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(Contains(
      p.status(), "p.json: placement: phy2log layer 1 slot 1: expected an expert index, got true"))
      << p.status().message();
}

// Found by fuzz/placement_stats.cc: nlohmann throws out_of_range, not parse_error, for a number
// too large for a double.
TEST(PlacementFormats, ANumberTooLargeForADoubleIsAnErrorNotAnException) {
  auto r = ParseRoutingStatsJson("{\"layers\": 1e+30847}", "s.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("s.json"), std::string::npos) << r.status().ToString();
}

TEST(PlacementFormats, TopologyTakesDefaultsAndRejectsUnknownKeys) {
  Result<PlacementTopology> t = ParseTopology("gpus: 8\ngpus_per_node: 4\nbeta: 2\n", "t.yaml");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->gpus, 8);
  EXPECT_EQ(t->nodes(), 2);
  EXPECT_EQ(t->alpha, 0.2);
  EXPECT_EQ(t->beta, 2.0);
  EXPECT_EQ(t->expert_groups, 1);
  // JSON is YAML too.
  t = ParseTopology(R"({"gpus": 2, "alpha": 0.5})", "t.json");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->alpha, 0.5);
  for (const char* bad : {"gpus: 8\nbeta: 1\ngamma: 3\n", "- 1\n- 2\n", "gpus_per_node: 2\n",
                          "gpus: 6\ngpus_per_node: 4\n"}) {
    Result<PlacementTopology> r = ParseTopology(bad, "t.yaml");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(Contains(r.status(), "t.yaml")) << r.status().message();
  }
}

TEST(PlacementFormats, PlacementRoundTripsAndDerivesTheReplicaTables) {
  Placement p = Placement::Contiguous(2, 4, 2, 1);  // 3 slots per GPU
  const std::string text = PlacementToJson(p);
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["format"], "gimbal.placement/1");
  ASSERT_EQ(j["logcnt"].size(), 2u);
  int replicas = 0;
  for (const auto& n : j["logcnt"][0]) replicas += n.get<int>();
  EXPECT_EQ(replicas, p.slots());
  EXPECT_FALSE(j.contains("source_routes"));
  Result<Placement> back = ParsePlacementJson(text, "p.json");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->phy2log, p.phy2log);
  EXPECT_EQ(back->slots_per_gpu, 3);
  EXPECT_EQ(PlacementJsonValue(p).dump(), text);
  Result<Placement> bad = ParsePlacementJson(R"({"layers": 1, "experts": 4, "gpus": 2})", "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(bad.status(),
                       "p.json: placement: 'slots_per_gpu' must be a positive "
                       "integer (missing)"))
      << bad.status().message();
}

// Expert indices are range-checked before they are narrowed to 32 bits: 2^32 + 1 once went in as
// expert 1, and -2^32 as 0, so an engine installed a plan it was never sent.
TEST(PlacementFormats, ExpertIndicesBeyond32BitsAreRejectedNotWrapped) {
  for (const char* x : {"4294967297", "-4294967296", "18446744073709551615", "2", "-1"}) {
    Result<Placement> p = ParsePlacementJson(
        std::string(R"({"layers":1,"experts":2,"gpus":1,"slots_per_gpu":2,"phy2log":[[0,)") + x +
            "]]}",
        "p.json");
    ASSERT_FALSE(p.ok()) << x;
    EXPECT_NE(p.status().message().find("p.json: placement: phy2log layer 0 slot 1: expert " +
                                        std::string(x) + " is out of range [0, 2)"),
              std::string::npos)
        << p.status().message();
  }
}

// A placement's derived tables are dropped unread; phy2log must hold integers.
TEST(PlacementFormats, PlacementsReadOnlyTheShapeAndPhy2log) {
  Result<Placement> p = ParsePlacementJson(
      R"({"log2phy": [[[0], [1]]], "source_routes": [[[[[0, 1.0]]]]], "layers": 1, "experts": 2,)"
      R"( "gpus": 1, "slots_per_gpu": 2, "phy2log": [[1, 0]], "logcnt": "anything"})",
      "p.json");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->phy2log, (std::vector<int32_t>{1, 0}));
  for (const auto& [phy, want] : std::vector<std::pair<std::string, std::string>>{
           {"[[1, 0.5]]", "phy2log layer 0 slot 1: expected an expert index, got 0.5"},
           {"[[1, 0], [0, 1]]", "'phy2log' must be an array of 1 layers"},
           {"[[1]]", "phy2log layer 0: expected 2 slots (1 GPUs x 2)"},
           {"[7]", "phy2log layer 0: expected 2 slots (1 GPUs x 2)"},
           {"{}", "'phy2log' must be an array of 1 layers"}}) {
    Result<Placement> r = ParsePlacementJson(
        R"({"layers": 1, "experts": 2, "gpus": 1, "slots_per_gpu": 2, "phy2log": )" + phy + "}",
        "p.json");
    ASSERT_FALSE(r.ok()) << phy;
    EXPECT_TRUE(Contains(r.status(), "p.json: placement: " + want)) << r.status().message();
  }
}

TEST(PlacementFormats, OversizedPlacementShapesAreRejected) {
  Result<Placement> p = ParsePlacementJson(
      R"({"layers":1,"experts":2,"gpus":1048576,"slots_per_gpu":1048576,"phy2log":[[0,1]]})",
      "p.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("p.json: placement: 1 layers x 1048576 GPUs"),
            std::string::npos)
      << p.status().message();
}

}  // namespace
}  // namespace gimbal
