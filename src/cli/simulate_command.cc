// gimbal simulate: runs every stack of a scenario on the same requests and compares them.
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/command.h"
#include "cli/report_table.h"
#include "config/scenario.h"

namespace gimbal::cli {
namespace {

struct SimulateArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string json_out;
  std::string requests_csv;
  std::string steps_csv;
  std::vector<std::string> only_stacks;
  int64_t seed = -1;
};

void Fail(const std::string& msg) {
  std::cerr << "gimbal simulate: " << msg << "\n";
  throw CommandFailed(2);
}

void RunSimulate(const SimulateArgs& a) {
  auto sc = LoadScenario(a.config, a.overrides);
  if (!sc.ok()) Fail(sc.status().message());
  Scenario& s = *sc;
  if (a.seed >= 0) {
    s.seed = static_cast<uint64_t>(a.seed);
    s.options.seed = s.seed;
  }
  Rng workload_rng = WorkloadRng(s.seed);
  auto reqs = BuildWorkload(s.workload, s.class_weights(), workload_rng);
  if (!reqs.ok()) Fail(reqs.status().message());
  if (!a.requests_csv.empty()) s.options.keep_requests = true;
  if (!a.steps_csv.empty()) s.options.keep_steps = true;

  std::vector<sim::RunResult> runs;
  for (const auto& stack : s.stacks) {
    if (!a.only_stacks.empty() &&
        std::find(a.only_stacks.begin(), a.only_stacks.end(), stack.name) == a.only_stacks.end()) {
      continue;
    }
    auto r = sim::Simulate(s.cluster, stack, *reqs, s.options);
    if (!r.ok()) Fail(r.status().message());
    runs.push_back(std::move(*r));
  }
  if (runs.empty()) Fail("no stack selected (check --stack names)");

  std::cout << fmt::format("scenario {}: {} on {} x {} (DP{}+EP{}), {} requests, seed {}\n", s.name,
                           s.cluster.model.name, s.cluster.dp, s.cluster.hardware.gpu.name,
                           s.cluster.dp, s.cluster.dp, reqs->size(), s.seed);
  std::vector<nlohmann::ordered_json> summaries;
  for (const auto& r : runs) summaries.push_back(r.summary);
  PrintComparison(std::cout, summaries);

  if (!a.json_out.empty()) {
    nlohmann::ordered_json out;
    out["scenario"] = s.name;
    out["model"] = s.cluster.model.name;
    out["gpu"] = s.cluster.hardware.gpu.name;
    out["dp"] = s.cluster.dp;
    out["seed"] = s.seed;
    out["runs"] = nlohmann::ordered_json::array();
    for (const auto& r : runs) out["runs"].push_back(r.summary);
    std::ofstream f(a.json_out);
    if (!f) Fail(fmt::format("cannot write {}", a.json_out));
    // Names come from the scenario file: bytes that are not UTF-8 are written as U+FFFD (a
    // strict dump throws, and ended the process).
    f << out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    f.close();
    if (!f) Fail(fmt::format("cannot write {} (disk full?)", a.json_out));
  }
  if (!a.requests_csv.empty()) {
    std::ofstream f(a.requests_csv);
    if (!f) Fail(fmt::format("cannot write {}", a.requests_csv));
    f << "stack,id,engine,class,arrival_s,first_token_s,finish_s,prompt_tokens,output_tokens,"
         "preemptions\n";
    for (const auto& r : runs) {
      for (const auto& q : r.requests) {
        f << fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{},{},{}\n", r.stack, q.id, q.engine,
                         q.traffic_class, q.arrival, q.first_token, q.finish, q.prompt_tokens,
                         q.output_tokens, q.preemptions);
      }
    }
    f.close();
    if (!f) Fail(fmt::format("cannot write {} (disk full?)", a.requests_csv));
  }
  if (!a.steps_csv.empty()) {
    std::ofstream f(a.steps_csv);
    if (!f) Fail(fmt::format("cannot write {}", a.steps_csv));
    f << "stack,start_s,duration_s,attn_dense_s,experts_s,all_to_all_s,overhead_s,tokens,"
         "sequences,preemptions\n";
    for (const auto& r : runs) {
      for (const auto& st : r.steps) {
        f << fmt::format("{},{:.6f},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{},{},{}\n", r.stack,
                         st.start, st.cost.duration, st.cost.attn_dense, st.cost.experts,
                         st.cost.all_to_all, st.cost.overhead, st.tokens, st.sequences,
                         st.preemptions);
      }
    }
    f.close();
    if (!f) Fail(fmt::format("cannot write {} (disk full?)", a.steps_csv));
  }
}

void SetupSimulate(CLI::App& app) {
  auto a = std::make_shared<SimulateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "simulate", "Run a scenario's policy stacks on a simulated DP+EP cluster and compare them");
  cmd->add_option("--config,-c", a->config, "scenario YAML file (see docs/scenarios.md)")
      ->required();
  cmd->add_option("--set", a->overrides, "override a scenario key: key.path=value (repeatable)");
  cmd->add_option("--json", a->json_out,
                  "write {\"runs\": [...]} with vllm-bench keys to this file");
  cmd->add_option("--seed", a->seed, "override the scenario's seed");
  cmd->add_option("--stack", a->only_stacks, "run only these stacks (repeatable)");
  cmd->add_option("--requests-csv", a->requests_csv, "write one row per request");
  cmd->add_option("--steps-csv", a->steps_csv, "write one row per simulated step");
  cmd->callback([a] { RunSimulate(*a); });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("simulate", SetupSimulate);

}  // namespace gimbal::cli
