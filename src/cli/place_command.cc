// `gimbal place`: plan an expert placement from source x expert routing statistics.
#include <fstream>

#include <fmt/format.h>

#include "cli/command.h"
#include "placement/place_tool.h"

namespace gimbal::cli {
namespace {

void SetupPlace(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "place",
      "Plan an expert placement from source x expert routing statistics (docs/placement.md)");
  auto opts = std::make_shared<PlaceOptions>();
  auto json_out = std::make_shared<std::string>();
  cmd->add_option("--stats", opts->stats_path, "routing statistics (JSON, gimbal.routing_stats/1)")
      ->required();
  cmd->add_option("--current", opts->current_path,
                  "current placement (JSON, gimbal.placement/1); default: contiguous");
  cmd->add_option("--topology", opts->topology_path,
                  "topology (YAML or JSON: gpus, gpus_per_node, alpha, beta, slots_per_gpu, ...)")
      ->required();
  cmd->add_option("--policy", opts->policy, "gimbal, eplb or exact")->capture_default_str();
  cmd->add_option("--json", *json_out, "write the placement and quality report as JSON here");
  cmd->add_option("--set", opts->sets, "policy parameter key=value (repeatable)");
  cmd->callback([opts, json_out] {
    Result<PlaceReport> r = RunPlace(*opts);
    if (!r.ok()) {
      fmt::print(stderr, "gimbal place: {}\n", r.status().ToString());
      throw CommandFailed(r.status().code() == ErrorCode::kInvalidArgument ? 2 : 1);
    }
    fmt::print("{}", FormatPlaceReport(*r));
    if (!json_out->empty()) {
      std::ofstream out(*json_out);
      out << PlaceReportToJson(*r) << "\n";
      if (!out) {
        fmt::print(stderr, "gimbal place: cannot write {}\n", *json_out);
        throw CommandFailed(1);
      }
    }
  });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("place", SetupPlace);

}  // namespace gimbal::cli
