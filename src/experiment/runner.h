// Runs a planned suite on a thread pool, one simulation per task, and collects the results.
//
// Output layout under `out_dir` (docs/experiments.md):
//   points/<id>.json          one finished point (written last, atomically: temp file + rename)
//   points/<id>.requests.csv  its per-request records (latency CDFs)
//   results.json, results.csv every point, in plan order
//   run.json                  what this invocation computed and what it reused
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
  std::vector<std::string> computed_ids;
  std::string results_json, results_csv;
};

// Simulates one point and returns its JSON record (request CSV written to `requests_csv` if set).
Result<nlohmann::ordered_json> RunPoint(const Point& p, const Suite& suite, const SuitePlan& plan,
                                        const std::string& requests_csv);

Result<RunSummary> RunSuite(const Suite& suite, const SuitePlan& plan, const RunOptions& options);

// Writes `text` to `path` through a temporary file in the same folder and a rename.
Status WriteFileAtomic(const std::string& path, const std::string& text);

// The columns of results.csv after the point's identity (scenario, rate, ...).
const std::vector<std::string>& SummaryColumns();

}  // namespace gimbal::experiment
