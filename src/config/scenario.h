// Scenario files: one YAML file describes a cluster, a workload and the policy stacks to compare.
//
// Schema (docs/scenarios.md has the full list with defaults):
//   name, seed, model, gpu, topology, cluster{dp, redundant_slots_per_gpu},
//   engine{max_num_batched_tokens, max_num_seqs, block_size, gpu_memory_utilization,
//          activation_reserve_gb, kv_capacity_tokens}, hardware{calibration overrides},
//   routing{overlap, seed}, traffic_classes[{name, weight, zipf}], workload{...},
//   slo{ttft_ms, tpot_ms, e2el_ms}, max_time_s,
//   stacks[{name, dispatch: NAME | {policy, snapshot_interval_ms, max_inflight, frontends,
//                                   prefix_index, prefix_index_capacity, class_hints, <params>},
//                 queue: NAME | {policy, <params>}, step: NAME | {policy, <params>}}]
// `--set key.path=value` overrides any key before validation (stacks.1.queue=fcfs). Every error
// names the file, line and key. Policy names and parameters are checked against the registries.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "sim/simulator.h"
#include "workload/workload.h"

namespace gimbal {

struct Scenario {
  std::string name;
  std::string file;
  std::string description;
  uint64_t seed = 1;
  std::string model_name, gpu_name, topology_name;
  sim::ClusterSpec cluster;
  WorkloadSpec workload;
  std::vector<sim::StackSpec> stacks;
  sim::SimOptions options;

  std::vector<double> class_weights() const;
};

// Loads `path`, applies `overrides` (key.path=value), validates. Errors name file, line and key.
Result<Scenario> LoadScenario(const std::string& path,
                              const std::vector<std::string>& overrides = {});
// Same from text; `name` stands for the file in messages, `base_dir` resolves relative paths.
Result<Scenario> ParseScenario(const std::string& text, const std::string& name,
                               const std::string& base_dir,
                               const std::vector<std::string>& overrides = {});

}  // namespace gimbal
