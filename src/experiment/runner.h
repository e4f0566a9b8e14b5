// Runs a planned suite on a thread pool, one simulation per task, and collects the results.
//
// Output layout under `out_dir` (docs/experiments.md):
//   points/<id>.json          one finished point (written last, atomically: temp file + rename)
//   points/<id>.requests.csv  its per-request records (latency CDFs)
//   results.json, results.csv every point, in plan order
//   run.json                  what this invocation computed and what it reused
// (A shard of a suite, src/experiment/shard.h, writes points/ and run.json for its own points;
// merging the shards writes results.json and results.csv with WriteResults, as RunSuite does.)
// A point whose JSON exists and parses (with the same id) is reused, so an interrupted run picks up
// where it stopped. Simulate is reentrant (all state is per call; the policy registries lock), so
// points run in parallel; each is single-threaded and deterministic, so `jobs` changes nothing but
// the wall time.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "experiment/suite.h"

namespace gimbal::experiment {

struct RunOptions {
  std::string out_dir;
  int jobs = 0;                 // 0: all hardware threads
  std::ostream* log = nullptr;  // progress lines; null: quiet
};

struct RunSummary {
  int computed = 0;
  int reused = 0;
  int jobs = 0;  // threads used
  std::vector<std::string> computed_ids;
  std::string results_json, results_csv;
};

// Simulates one point and returns its JSON record (request CSV written to `requests_csv` if set).
Result<nlohmann::ordered_json> RunPoint(const Point& p, const Suite& suite, const SuitePlan& plan,
                                        const std::string& requests_csv);

// Every point of the plan (RunPoints over all of them), then results.json and results.csv.
Result<RunSummary> RunSuite(const Suite& suite, const SuitePlan& plan, const RunOptions& options);

// The plan's points at the indices `selection` (into plan.points): each one finished under
// out_dir/points (PointFinished) is reused, the others computed; then out_dir/run.json. Writes no
// results files. An index outside the plan is an error.
Result<RunSummary> RunPoints(const Suite& suite, const SuitePlan& plan,
                             const std::vector<size_t>& selection, const RunOptions& options);

// results.json and results.csv under `out_dir`, from every plan point's out_dir/points/<id>.json,
// in plan order; a point that is not there is an error. Sets summary's results paths when not null.
Status WriteResults(const Suite& suite, const SuitePlan& plan, const std::string& out_dir,
                    RunSummary* summary);

// Whether out_dir/points holds point `id` finished: its JSON parses and carries the id, and its
// request CSV exists.
bool PointFinished(const std::string& out_dir, const std::string& id);

// Writes `text` to `path` through a temporary file in the same folder and a rename.
Status WriteFileAtomic(const std::string& path, const std::string& text);

// The columns of results.csv after the point's identity (scenario, rate, ...).
const std::vector<std::string>& SummaryColumns();

}  // namespace gimbal::experiment
