#include "experiment/shard.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "experiment/runner.h"
#include "experiment/suite.h"

namespace gimbal::experiment {
namespace {
namespace fs = std::filesystem;

const std::string kSource = GIMBAL_SOURCE_DIR;

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// wall_seconds is the one value that differs between any two runs of a point (it is the
// simulation's wall time); every other byte of the results is determined by the suite.
std::string MaskWallSeconds(const std::string& text, bool csv) {
  if (!csv) {
    static const std::regex json_wall("\"wall_seconds\": [-+.0-9e]+");
    return std::regex_replace(text, json_wall, "\"wall_seconds\": X");
  }
  // Column 8 of every row (the identity columns before it hold no commas in this suite).
  static const std::regex csv_wall("^((?:[^,\n]*,){7})[^,\n]*", std::regex::multiline);
  return std::regex_replace(text, csv_wall, "$1X");
}

// Edits a shard folder's shard.json.
void EditManifest(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto m = nlohmann::json::parse(Read(dir / "shard.json"));
  edit(m);
  Write(dir / "shard.json", m.dump(1) + "\n");
}

std::string SuiteText(const std::string& description) {
  return "name: sharded\ndescription: " + description + "\nscenarios: [{path: " + kSource +
         "/configs/scenarios/default.yaml, label: d}]\n"
         "rates: [15, 30]\nduration_s: 2\nseeds: 2\nstacks: [vllm, gimbal]\n"
         "series_bins: 10\nexpert_load: {bins: 5}\n";
}

// One suite of 8 small points, run unsharded and as shards 1..3 of 3 once for every test.
class ShardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = fs::temp_directory_path() / ("gimbal_shard_test_" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_);
    Write(base_ / "suite.yaml", SuiteText("three shards"));
    auto suite = LoadSuite((base_ / "suite.yaml").string());
    ASSERT_TRUE(suite.ok()) << suite.status().message();
    suite_ = new Suite(*suite);
    auto plan = PlanSuite(*suite_);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    plan_ = new SuitePlan(*plan);
    ASSERT_EQ(plan_->points.size(), 8u);
    auto full = RunSuite(*suite_, *plan_, RunOptions{(base_ / "full").string(), 2, nullptr});
    ASSERT_TRUE(full.ok()) << full.status().message();
    for (int k = 1; k <= 3; ++k) {
      auto s = RunShard(*suite_, *plan_, {k, 3}, RunOptions{Shard(k), 1, nullptr});
      ASSERT_TRUE(s.ok()) << s.status().message();
      EXPECT_EQ(s->computed, static_cast<int>(ShardPoints(*plan_, {k, 3}).size()));
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(base_);
    delete suite_;
    delete plan_;
  }

  static std::string Shard(int k) { return (base_ / ("shard" + std::to_string(k))).string(); }

  // A copy of shard k's folder, to damage.
  static std::string CopyOfShard(int k, const std::string& name) {
    const fs::path to = base_ / name;
    fs::remove_all(to);
    fs::copy(Shard(k), to, fs::copy_options::recursive);
    return to.string();
  }

  static std::string MergeError(const std::vector<std::string>& dirs) {
    auto m = MergeShards(*suite_, *plan_, dirs, (base_ / "bad-merge").string());
    EXPECT_FALSE(m.ok());
    EXPECT_FALSE(fs::exists(base_ / "bad-merge" / "results.json"));
    return m.ok() ? std::string() : m.status().message();
  }

  static inline fs::path base_;
  static inline Suite* suite_ = nullptr;
  static inline SuitePlan* plan_ = nullptr;
};

TEST(Shard, ParseAcceptsKOfNAndExplainsBadStrings) {
  auto ok = ParseShard("2/8");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->index, 2);
  EXPECT_EQ(ok->count, 8);
  EXPECT_TRUE(ParseShard("1/1").ok());
  EXPECT_TRUE(ParseShard("100000/100000").ok());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"4/3", "--shard 4/3: K must be in 1..N (here 1..3)"},
      {"0/3", "--shard 0/3: K must be in 1..N"},
      {"1/0", "--shard 1/0: N must be in 1..100000"},
      {"1/100001", "N must be in 1..100000"},
      {"3", "--shard 3: expected K/N"},
      {"", "expected K/N"},
      {"a/b", "expected K/N"},
      {"1/", "expected K/N"},
      {"/2", "expected K/N"},
      {"-1/3", "expected K/N"},
      {"+1/3", "expected K/N"},
      {"1/3/5", "expected K/N"},
      {" 1/3", "expected K/N"},
      {"1.0/3", "expected K/N"},
      {"99999999999/3", "expected K/N"},
  };
  for (const auto& [text, want] : bad) {
    auto r = ParseShard(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos)
        << text << ": " << r.status().message();
  }
}

TEST_F(ShardTest, ShardsPartitionThePlanEvenly) {
  for (int n = 1; n <= 10; ++n) {
    std::vector<int> owner(plan_->points.size(), 0);
    size_t smallest = plan_->points.size(), largest = 0;
    for (int k = 1; k <= n; ++k) {
      const auto mine = ShardPoints(*plan_, {k, n});
      EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
      for (const size_t i : mine) {
        ASSERT_LT(i, owner.size());
        EXPECT_EQ(owner[i], 0) << "point " << i << " in shards " << owner[i] << " and " << k;
        owner[i] = k;
      }
      smallest = std::min(smallest, mine.size());
      largest = std::max(largest, mine.size());
    }
    EXPECT_EQ(std::count(owner.begin(), owner.end(), 0), 0) << "N = " << n;
    EXPECT_LE(largest - smallest, 1u) << "N = " << n;
  }
  // The assignment depends on the plan alone: planning again gives the same shards.
  auto again = PlanSuite(*suite_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ShardPoints(*again, {2, 3}), ShardPoints(*plan_, {2, 3}));
  // Each shard folder's manifest lists its points.
  for (int k = 1; k <= 3; ++k) {
    const auto m = nlohmann::json::parse(Read(fs::path(Shard(k)) / "shard.json"));
    EXPECT_EQ(m["shard"], k);
    EXPECT_EQ(m["shards"], 3);
    EXPECT_EQ(m["complete"], true);
    EXPECT_EQ(m["suite_hash"], SuiteHash(*suite_, *plan_));
    std::vector<std::string> ids;
    for (const size_t i : ShardPoints(*plan_, {k, 3})) ids.push_back(plan_->points[i].id);
    EXPECT_EQ(m["points"].get<std::vector<std::string>>(), ids);
    EXPECT_FALSE(fs::exists(fs::path(Shard(k)) / "results.json"));
  }
}

TEST_F(ShardTest, MergeWritesTheUnshardedResults) {
  const fs::path merged = base_ / "merged";
  // Shards in any order.
  auto m = MergeShards(*suite_, *plan_, {Shard(3), Shard(1), Shard(2)}, merged.string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->shards, 3);
  EXPECT_EQ(m->points, 8);
  const fs::path full = base_ / "full";
  const std::string json = Read(merged / "results.json"), csv = Read(merged / "results.csv");
  ASSERT_FALSE(json.empty());
  ASSERT_EQ(std::count(csv.begin(), csv.end(), '\n'), 9);
  // Against the unsharded run: identical but for the wall time each simulation took.
  EXPECT_EQ(MaskWallSeconds(json, false), MaskWallSeconds(Read(full / "results.json"), false));
  EXPECT_EQ(MaskWallSeconds(csv, true), MaskWallSeconds(Read(full / "results.csv"), true));
  EXPECT_NE(MaskWallSeconds(csv, true), csv);  // the mask did replace something
  // Against an unsharded run over the same point files (it reuses them all): byte for byte.
  const fs::path rerun = base_ / "rerun";
  fs::create_directories(rerun);
  fs::copy(merged / "points", rerun / "points", fs::copy_options::recursive);
  auto r = RunSuite(*suite_, *plan_, RunOptions{rerun.string(), 1, nullptr});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->computed, 0);
  EXPECT_EQ(r->reused, 8);
  EXPECT_EQ(Read(rerun / "results.json"), json);
  EXPECT_EQ(Read(rerun / "results.csv"), csv);
  // Request CSVs came along; run.json names the shards in shard order.
  for (const auto& p : plan_->points) {
    EXPECT_EQ(Read(merged / "points" / (p.id + ".requests.csv")),
              Read(full / "points" / (p.id + ".requests.csv")))
        << p.id;
  }
  const auto run = nlohmann::json::parse(Read(merged / "run.json"));
  EXPECT_EQ(run["merged_from"], nlohmann::json({Shard(1), Shard(2), Shard(3)}));
  EXPECT_EQ(run["reused"], 8);
  // Into one of the shard folders, the same bytes.
  const std::string into = CopyOfShard(1, "into-shard1");
  auto m2 = MergeShards(*suite_, *plan_, {into, Shard(2), Shard(3)}, into);
  ASSERT_TRUE(m2.ok()) << m2.status().message();
  EXPECT_EQ(Read(fs::path(into) / "results.json"), json);
  EXPECT_EQ(Read(fs::path(into) / "results.csv"), csv);
}

TEST_F(ShardTest, RerunningAShardResumesAndAFolderKeepsItsShard) {
  auto again = RunShard(*suite_, *plan_, {2, 3}, RunOptions{Shard(2), 1, nullptr});
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->computed, 0);
  EXPECT_EQ(again->reused, static_cast<int>(ShardPoints(*plan_, {2, 3}).size()));
  auto other = RunShard(*suite_, *plan_, {1, 3}, RunOptions{Shard(2), 1, nullptr});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("holds shard 2/3 of suite 'sharded'"), std::string::npos)
      << other.status().message();
  auto other_n = RunShard(*suite_, *plan_, {2, 4}, RunOptions{Shard(2), 1, nullptr});
  ASSERT_FALSE(other_n.ok());
  EXPECT_NE(other_n.status().message().find("give each shard its own --out"), std::string::npos)
      << other_n.status().message();
}

TEST_F(ShardTest, MergeNamesMissingAndDuplicatedShards) {
  std::string e = MergeError({Shard(1), Shard(3)});
  EXPECT_NE(e.find("missing shard 2/3 (given 2 of 3)"), std::string::npos) << e;
  e = MergeError({Shard(2)});
  EXPECT_NE(e.find("missing shards 1/3, 3/3"), std::string::npos) << e;
  const std::string copy2 = CopyOfShard(2, "copy2");
  e = MergeError({Shard(1), Shard(2), copy2, Shard(3)});
  EXPECT_NE(e.find("shard 2/3 given twice: " + Shard(2) + " and " + copy2), std::string::npos) << e;
  e = MergeError({Shard(1), (base_ / "full").string(), Shard(3)});
  EXPECT_NE(e.find("full: no shard.json"), std::string::npos) << e;
  e = MergeError({});
  EXPECT_NE(e.find("no shard folders"), std::string::npos) << e;
}

// Shards of a suite whose scenario replays a trace are of the same experiment only when the
// trace's bytes are the same: a trace of the same name with other contents is another suite.
TEST_F(ShardTest, TheSuiteHashCoversTheTracesItsScenariosReplay) {
  const fs::path trace = base_ / "trace.jsonl";
  const std::string rows =
      "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 20, \"hash_ids\": [1]}\n"
      "{\"timestamp\": 500, \"input_length\": 200, \"output_length\": 20, \"hash_ids\": [2]}\n";
  Write(trace, rows);
  Write(base_ / "traced.yaml",
        "name: traced\nscenarios: [{path: " + kSource +
            "/configs/scenarios/default.yaml, label: t, set: ['workload={kind: mooncake, path: " +
            trace.string() + "}']}]\nseeds: 1\nstacks: [vllm]\n");
  auto hash = [&] {
    auto suite = LoadSuite((base_ / "traced.yaml").string());
    EXPECT_TRUE(suite.ok()) << suite.status().message();
    if (!suite.ok()) return std::string();
    auto plan = PlanSuite(*suite);
    EXPECT_TRUE(plan.ok()) << plan.status().message();
    return plan.ok() ? SuiteHash(*suite, *plan) : std::string();
  };
  const std::string first = hash();
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(hash(), first);
  Write(trace, rows.substr(0, rows.size() - 4) + "0]}\n");  // the last row's hash id 2 -> 0
  EXPECT_NE(hash(), first);
  Write(trace, rows);
  EXPECT_EQ(hash(), first);
}

TEST_F(ShardTest, MergeRejectsShardsOfAnotherSuiteOrN) {
  // Shard 1 of 2 of the same suite, beside shards of 3.
  auto half = RunShard(*suite_, *plan_, {1, 2}, RunOptions{(base_ / "half1").string(), 1, nullptr});
  ASSERT_TRUE(half.ok()) << half.status().message();
  std::string e = MergeError({Shard(1), Shard(2), (base_ / "half1").string()});
  EXPECT_NE(e.find("half1 is shard 1/2 but " + Shard(1) + " is shard 1/3"), std::string::npos) << e;
  // Shard 2 of 3 of a suite that differs in its description only.
  Write(base_ / "other.yaml", SuiteText("another suite"));
  auto other = LoadSuite((base_ / "other.yaml").string());
  ASSERT_TRUE(other.ok()) << other.status().message();
  auto other_plan = PlanSuite(*other);
  ASSERT_TRUE(other_plan.ok());
  EXPECT_NE(SuiteHash(*other, *other_plan), SuiteHash(*suite_, *plan_));
  auto o2 =
      RunShard(*other, *other_plan, {2, 3}, RunOptions{(base_ / "other2").string(), 1, nullptr});
  ASSERT_TRUE(o2.ok()) << o2.status().message();
  e = MergeError({Shard(1), (base_ / "other2").string(), Shard(3)});
  EXPECT_NE(e.find("other2: shard 2/3 of suite 'sharded'"), std::string::npos) << e;
  EXPECT_NE(e.find("is not a shard of " + suite_->file), std::string::npos) << e;
  // The same file by another path is the same suite.
  auto by_path = LoadSuite((base_ / "." / "suite.yaml").string());
  ASSERT_TRUE(by_path.ok());
  auto by_path_plan = PlanSuite(*by_path);
  ASSERT_TRUE(by_path_plan.ok());
  EXPECT_EQ(SuiteHash(*by_path, *by_path_plan), SuiteHash(*suite_, *plan_));
  // The same suite file with other seeds is another suite too.
  auto seeds = LoadSuite((base_ / "suite.yaml").string(), 3);
  ASSERT_TRUE(seeds.ok());
  auto seeds_plan = PlanSuite(*seeds);
  ASSERT_TRUE(seeds_plan.ok());
  auto m = MergeShards(*seeds, *seeds_plan, {Shard(1), Shard(2), Shard(3)},
                       (base_ / "bad-merge").string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("is not a shard of"), std::string::npos)
      << m.status().message();
}

TEST_F(ShardTest, MergeNamesMissingDuplicatedAndUnfinishedPoints) {
  const auto ids2 = nlohmann::json::parse(Read(fs::path(Shard(2)) / "shard.json"))["points"];
  const auto ids1 = nlohmann::json::parse(Read(fs::path(Shard(1)) / "shard.json"))["points"];
  const std::string lost = ids2[0].get<std::string>();
  // A point file lost.
  const std::string a = CopyOfShard(2, "lost-point");
  fs::remove(fs::path(a) / "points" / (lost + ".json"));
  std::string e = MergeError({Shard(1), a, Shard(3)});
  EXPECT_NE(e.find("lost-point: point " + lost + " of shard 2/3 is missing or unreadable"),
            std::string::npos)
      << e;
  // Its request CSV lost.
  const std::string b = CopyOfShard(2, "lost-csv");
  fs::remove(fs::path(b) / "points" / (lost + ".requests.csv"));
  e = MergeError({Shard(1), b, Shard(3)});
  EXPECT_NE(e.find("point " + lost + " of shard 2/3 is missing"), std::string::npos) << e;
  // A manifest that also lists a point of shard 1.
  const std::string c = CopyOfShard(2, "dup-point");
  const std::string stolen = ids1[0].get<std::string>();
  EditManifest(c, [&](nlohmann::json& m) { m["points"].push_back(stolen); });
  e = MergeError({Shard(1), c, Shard(3)});
  EXPECT_NE(e.find("point " + stolen + " is in shard 1/3 (" + Shard(1) + ") and in shard 2/3"),
            std::string::npos)
      << e;
  // A manifest that leaves one of its points out.
  const std::string d = CopyOfShard(2, "short-list");
  EditManifest(d, [&](nlohmann::json& m) { m["points"].erase(0); });
  e = MergeError({Shard(1), d, Shard(3)});
  EXPECT_NE(e.find("point " + lost + " of shard 2/3 is not in its shard.json"), std::string::npos)
      << e;
  // An unfinished shard.
  const std::string u = CopyOfShard(3, "unfinished");
  EditManifest(u, [](nlohmann::json& m) { m["complete"] = false; });
  e = MergeError({Shard(1), Shard(2), u});
  EXPECT_NE(e.find("shard 3/3 is unfinished"), std::string::npos) << e;
  // An unreadable manifest.
  const std::string g = CopyOfShard(3, "garbled");
  Write(fs::path(g) / "shard.json", "{\"format\": \"gimbal.shard/1\", \"shard\": \"x\"}");
  e = MergeError({Shard(1), Shard(2), g});
  EXPECT_NE(e.find("garbled/shard.json: unreadable"), std::string::npos) << e;
  // Shard numbers that narrowed to another shard's (4294967299 and 3.9 were read as shard 3).
  for (const nlohmann::json& bad : {nlohmann::json(4294967299LL), nlohmann::json(3.9)}) {
    const std::string n = CopyOfShard(3, "narrowed");
    EditManifest(n, [&](nlohmann::json& m) { m["shard"] = bad; });
    e = MergeError({Shard(1), Shard(2), n});
    EXPECT_NE(e.find("'shard' must be an integer in [1, 100000], got " + bad.dump()),
              std::string::npos)
        << e;
    fs::remove_all(n);
  }
}

}  // namespace
}  // namespace gimbal::experiment
