// gimbal report: plots and an HTML page from a `gimbal experiment` output folder, with live runs
// (`gimbal bench` against `gimbal serve`) side by side when given.
#include <iostream>

#include "cli/command.h"
#include "experiment/report.h"

namespace gimbal::cli {
namespace {

struct ReportArgs {
  std::string dir;
  std::string out;
  std::string live;
};

void RunReport(const ReportArgs& a) {
  experiment::ReportOptions o;
  o.results_dir = a.dir;
  o.out_dir = a.out;
  o.live_dir = a.live;
  auto index = experiment::MakeReport(o);
  if (!index.ok()) {
    std::cerr << "gimbal report: " << index.status().message() << "\n";
    throw CommandFailed(2);
  }
  std::cout << "report: " << *index << "\n";
}

void SetupReport(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Write an HTML report with plots from a `gimbal experiment` folder (docs/experiments.md)");
  cmd->add_option("dir", a->dir, "the folder `gimbal experiment --out` wrote")->required();
  cmd->add_option("--out,-o", a->out, "report folder (default DIR/report)");
  cmd->add_option("--live", a->live,
                  "live-run folder with a live.json manifest (scripts/live-demo.sh writes one); "
                  "default DIR/live when present");
  cmd->callback([a] { RunReport(*a); });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("report", SetupReport);

}  // namespace gimbal::cli
