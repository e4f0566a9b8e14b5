// Simulator speed: 100,000 requests on Qwen3-30B-A3B (48 layers, 128 experts), DP8+EP8 on H200.
// Prints simulated requests and simulated seconds per wall second for each stack.
//   build/release/bench/sim_speed_bench [requests] [rate]
#include <chrono>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "config/scenario.h"

int main(int argc, char** argv) {
  const std::string n = argc > 1 ? argv[1] : "100000";
  const std::string rate = argc > 2 ? argv[2] : "40";
  const std::string path = std::string(GIMBAL_SOURCE_DIR) + "/configs/scenarios/default.yaml";
  auto sc = gimbal::LoadScenario(
      path, {"workload.num_requests=" + n, "workload.schedule=[{start: 0, rate: " + rate + "}]"});
  if (!sc.ok()) {
    fmt::print(stderr, "{}\n", sc.status().message());
    return 1;
  }
  gimbal::Rng rng = gimbal::Rng(sc->seed).Fork(0x3017);
  auto reqs = gimbal::BuildWorkload(sc->workload, sc->class_weights(), rng);
  if (!reqs.ok()) {
    fmt::print(stderr, "{}\n", reqs.status().message());
    return 1;
  }
  fmt::print("simulator speed: {} requests at {} req/s, {} DP{}+EP{}, one core\n", reqs->size(),
             rate, sc->cluster.model.name, sc->cluster.dp, sc->cluster.dp);
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
