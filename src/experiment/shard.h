// Sharding a suite over machines: shard K of N runs a fixed part of the plan's points into its own
// folder; MergeShards checks the N shard folders and writes the results an unsharded run writes.
//
// Assignment: the plan's points ordered by the 64-bit FNV-1a hash of their id (ties in plan order);
// the j-th of that order (from 0) belongs to shard j mod N + 1. It depends on the plan alone, so N
// machines with the same suite and scenario files split the points with no overlap and no gap.
// Shard sizes differ by at most one, and each shard draws a mix of scenarios, rates and stacks (in
// plan order, shards j mod N would repeat a stack pattern whenever N shares a factor with the
// stack or seed count, and the slow stacks would pile up in a few shards).
//
// A shard folder holds points/ and run.json as RunPoints writes them, and shard.json:
//   {"format": "gimbal.shard/1", "suite", "suite_file", "suite_hash", "shard": K, "shards": N,
//    "complete": bool, "points": [its point ids, in plan order]}
// written with complete = false before its first point runs and complete = true after the last.
// Rerunning a shard resumes it, as an unsharded run does.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"
#include "experiment/runner.h"
#include "experiment/suite.h"

namespace gimbal::experiment {

// Shard `index` (counted from 1) of `count`.
struct ShardSpec {
  int index = 1;
  int count = 1;
};

inline constexpr int kMaxShards = 100000;

// Parses "K/N" (decimal digits only; 1 <= K <= N <= kMaxShards). Errors quote the text and say
// which part is wrong, e.g. "--shard 4/3: K must be in 1..N (here 1..3)".
Result<ShardSpec> ParseShard(const std::string& text);

// 16 hex digits of a 64-bit FNV-1a hash over the bytes of the suite file and of its scenario files
// (not their paths), the seeds and the planned point ids in order: shards of equal hashes ran the
// same points of the same suite, wherever its files were.
std::string SuiteHash(const Suite& suite, const SuitePlan& plan);

// The indices into plan.points of shard `shard`'s points, ascending.
std::vector<size_t> ShardPoints(const SuitePlan& plan, ShardSpec shard);

// Runs shard `shard` of the plan into options.out_dir (RunPoints over ShardPoints), with
// shard.json around it. A folder whose shard.json names another shard or suite is an error.
Result<RunSummary> RunShard(const Suite& suite, const SuitePlan& plan, ShardSpec shard,
                            const RunOptions& options);

struct MergeSummary {
  int shards = 0;
  int points = 0;
  std::string results_json, results_csv;
};

// Checks that `shard_dirs` are every shard 1..N of this suite's plan, once each, each complete and
// holding exactly its points (finished); copies the points into out_dir/points (out_dir may be one
// of the shard folders) and writes results.json and results.csv with WriteResults, and run.json
// ({"computed": 0, "reused": points, "computed_ids": [], "jobs": 0, "merged_from": [folders in
// shard order]}). Errors name the folder, the shard and the point at fault. Writes nothing before
// every check passed.
Result<MergeSummary> MergeShards(const Suite& suite, const SuitePlan& plan,
                                 const std::vector<std::string>& shard_dirs,
                                 const std::string& out_dir);

}  // namespace gimbal::experiment
