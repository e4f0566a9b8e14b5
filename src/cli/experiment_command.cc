// gimbal experiment: sweeps a suite's scenarios × rates × stacks × seeds in the simulator.
#include <iostream>

#include <fmt/format.h>

#include "cli/command.h"
#include "experiment/runner.h"
#include "experiment/suite.h"

namespace gimbal::cli {
namespace {

struct ExperimentArgs {
  std::string suite;
  std::string out;
  int jobs = 0;
  int seeds = 0;
  bool dry_run = false;
};

void Fail(const std::string& msg) {
  std::cerr << "gimbal experiment: " << msg << "\n";
  throw CommandFailed(2);
}

void RunExperiment(const ExperimentArgs& a) {
  CheckIntOption("experiment", "--jobs", a.jobs, 0, 1024);
  CheckIntOption("experiment", "--seeds", a.seeds, 0, 10000);
  auto suite = experiment::LoadSuite(a.suite, a.seeds);
  if (!suite.ok()) Fail(suite.status().message());
  auto plan = experiment::PlanSuite(*suite);
  if (!plan.ok()) Fail(plan.status().message());
  for (const auto& note : plan->notes) std::cout << "note: " << note << "\n";
  if (a.dry_run) {
    for (const auto& p : plan->points) std::cout << p.id << "\n";
    std::cout << fmt::format("{} points\n", plan->points.size());
    return;
  }
  experiment::RunOptions o;
  o.out_dir = a.out;
  o.jobs = a.jobs;
  o.log = &std::cout;
  auto r = experiment::RunSuite(*suite, *plan, o);
  if (!r.ok()) {
    std::cerr << "gimbal experiment: " << r.status().message()
              << "\n(finished points are kept; rerun the same command to resume)\n";
    throw CommandFailed(1);
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
  cmd->add_flag("--dry-run", a->dry_run, "list the points and exit");
  cmd->callback([a] { RunExperiment(*a); });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("experiment", SetupExperiment);

}  // namespace gimbal::cli
