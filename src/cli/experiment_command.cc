// gimbal experiment: sweeps a suite's scenarios × rates × stacks × seeds in the simulator; with
// --shard K/N only shard K's points (one machine of N), and with --merge the shards' folders into
// the results of the whole suite (docs/experiments.md, "Sharding").
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/command.h"
#include "experiment/runner.h"
#include "experiment/shard.h"
#include "experiment/suite.h"

namespace gimbal::cli {
namespace {

struct ExperimentArgs {
  std::string suite;
  std::string out;
  int jobs = 0;
  int seeds = 0;
  bool dry_run = false;
  std::string shard;               // "K/N"; empty: every point
  std::vector<std::string> merge;  // shard folders to merge into `out`
};

void Fail(const std::string& msg) {
  std::cerr << "gimbal experiment: " << msg << "\n";
  throw CommandFailed(2);
}

void Merge(const ExperimentArgs& a, const experiment::Suite& suite,
           const experiment::SuitePlan& plan) {
  auto m = experiment::MergeShards(suite, plan, a.merge, a.out);
  if (!m.ok()) {
    std::cerr << "gimbal experiment: merge: " << m.status().message() << "\n";
    throw CommandFailed(1);
  }
  std::cout << fmt::format("merged {} shards, {} points\nresults: {}\n          {}\n", m->shards,
                           m->points, m->results_json, m->results_csv);
  std::cout << fmt::format("next: gimbal report {}\n", a.out);
}

void RunExperiment(const ExperimentArgs& a) {
  CheckIntOption("experiment", "--jobs", a.jobs, 0, 1024);
  CheckIntOption("experiment", "--seeds", a.seeds, 0, 10000);
  std::optional<experiment::ShardSpec> shard;
  if (!a.shard.empty()) {
    auto s = experiment::ParseShard(a.shard);
    if (!s.ok()) Fail(s.status().message());
    shard = *s;
  }
  auto suite = experiment::LoadSuite(a.suite, a.seeds);
  if (!suite.ok()) Fail(suite.status().message());
  auto plan = experiment::PlanSuite(*suite);
  if (!plan.ok()) Fail(plan.status().message());
  for (const auto& note : plan->notes) std::cout << "note: " << note << "\n";
  if (!a.merge.empty()) return Merge(a, *suite, *plan);
  if (a.dry_run) {
    if (shard) {
      const auto mine = experiment::ShardPoints(*plan, *shard);
      for (const size_t i : mine) std::cout << plan->points[i].id << "\n";
      std::cout << fmt::format("{} of {} points (shard {}/{})\n", mine.size(), plan->points.size(),
                               shard->index, shard->count);
      return;
    }
    for (const auto& p : plan->points) std::cout << p.id << "\n";
    std::cout << fmt::format("{} points\n", plan->points.size());
    return;
  }
  experiment::RunOptions o;
  o.out_dir = a.out;
  o.jobs = a.jobs;
  o.log = &std::cout;
  auto r = shard ? experiment::RunShard(*suite, *plan, *shard, o)
                 : experiment::RunSuite(*suite, *plan, o);
  if (!r.ok()) {
    std::cerr << "gimbal experiment: " << r.status().message()
              << "\n(finished points are kept; rerun the same command to resume)\n";
    throw CommandFailed(1);
  }
  if (shard) {
    std::cout << fmt::format("computed {} points, reused {}\nshard {}/{}: {}/shard.json\n",
                             r->computed, r->reused, shard->index, shard->count, a.out);
    std::cout << "next, once every shard is done: gimbal experiment --suite " << a.suite
              << " --out MERGED --merge SHARD_DIR...\n";
    return;
  }
  std::cout << fmt::format("computed {} points, reused {}\nresults: {}\n          {}\n",
                           r->computed, r->reused, r->results_json, r->results_csv);
  std::cout << fmt::format("next: gimbal report {}\n", a.out);
}

void SetupExperiment(CLI::App& app) {
  auto a = std::make_shared<ExperimentArgs>();
  CLI::App* cmd = app.add_subcommand(
      "experiment",
      "Sweep a suite's scenarios x request rates x stacks x seeds in the simulator "
      "(docs/experiments.md)");
  cmd->add_option("--suite,-s", a->suite, "suite YAML file (configs/experiments/*.yaml)")
      ->required();
  cmd->add_option("--out,-o", a->out, "output folder; rerunning resumes from the points it holds")
      ->required();
  cmd->add_option("--jobs,-j", a->jobs, "parallel simulations (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seeds", a->seeds, "use seeds 1..K instead of the suite's")
      ->check(CLI::PositiveNumber);
  auto* dry = cmd->add_flag("--dry-run", a->dry_run, "list the points (of --shard) and exit");
  auto* shard = cmd->add_option(
      "--shard", a->shard,
      "K/N: run only shard K (1..N) of N, into --out with a shard.json; merge with --merge");
  cmd->add_option("--merge", a->merge,
                  "merge these shard folders (every shard 1..N of --suite) into --out: "
                  "results.json and results.csv as an unsharded run writes them")
      ->expected(1, -1)
      ->excludes(shard)
      ->excludes(dry);
  cmd->callback([a] { RunExperiment(*a); });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("experiment", SetupExperiment);

}  // namespace gimbal::cli
