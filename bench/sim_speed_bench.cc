// Simulator speed: 100,000 requests on Qwen3-30B-A3B (48 layers, 128 experts), DP8+EP8 on H200,
// or any scenario's synthetic workload. Prints simulated requests and simulated seconds per wall
// second for each stack (wall time of the simulation itself, not of loading the scenario).
//   build/release/bench/sim_speed_bench [requests] [rate|-] [scenario.yaml]
// `-` keeps the scenario's own arrival schedule; the scenario path is relative to the checkout
// unless absolute (default: configs/scenarios/default.yaml).
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config/scenario.h"
#include "workload/workload.h"

int main(int argc, char** argv) {
  const std::string n = argc > 1 ? argv[1] : "100000";
  const std::string rate = argc > 2 ? argv[2] : "40";
  const std::string file = argc > 3 ? argv[3] : "configs/scenarios/default.yaml";
  const std::string path =
      file.starts_with("/") ? file : std::string(GIMBAL_SOURCE_DIR) + "/" + file;
  std::vector<std::string> sets = {"workload.num_requests=" + n};
  if (rate != "-") sets.push_back("workload.schedule=[{start: 0, rate: " + rate + "}]");
  auto sc = gimbal::LoadScenario(path, sets);
  if (!sc.ok()) {
    fmt::print(stderr, "{}\n", sc.status().message());
    return 1;
  }
  gimbal::Rng rng = gimbal::WorkloadRng(sc->seed);
  auto reqs = gimbal::BuildWorkload(sc->workload, sc->class_weights(), rng);
  if (!reqs.ok()) {
    fmt::print(stderr, "{}\n", reqs.status().message());
    return 1;
  }
  fmt::print("simulator speed: {} requests at {} req/s, {} DP{}+EP{}, one core\n", reqs->size(),
             rate == "-" ? "the scenario's" : rate, sc->cluster.model.name, sc->cluster.dp,
             sc->cluster.dp);
  fmt::print("{:<14} {:>10} {:>12} {:>14} {:>16} {:>10}\n", "stack", "wall (s)", "sim (s)",
             "requests/wall s", "sim s / wall s", "steps");
  for (const auto& stack : sc->stacks) {
    auto r = gimbal::sim::Simulate(sc->cluster, stack, *reqs, sc->options);
    if (!r.ok()) {
      fmt::print(stderr, "{}\n", r.status().message());
      return 1;
    }
    const double sim_s = r->summary["simulated_seconds"].get<double>();
    fmt::print("{:<14} {:>10.2f} {:>12.1f} {:>14.0f} {:>16.1f} {:>10}\n", stack.name,
               r->wall_seconds, sim_s, static_cast<double>(reqs->size()) / r->wall_seconds,
               sim_s / r->wall_seconds, r->num_steps);
  }
  return 0;
}
