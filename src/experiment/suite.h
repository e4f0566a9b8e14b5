// Experiment suites: a YAML file naming scenarios, request rates, stacks and seeds to sweep.
//
// Schema (docs/experiments.md has the full description):
//   name, description,
//   scenarios: [{path, label, saturation_rate, optional, set: [k=v], rates, rate_unit}],
//   rates: [numbers], rate_unit: rps | saturation,
//   duration_s, min_requests, max_requests,   # requests per point = clamp(rate × duration_s)
//   seeds: [ints] | count,
//   set: [key.path=value],                    # scenario overrides applied to every scenario
//   stacks: [NAME | {name, dispatch, queue, ..., optional}],
//   baseline: NAME, headline: NAME,
//   tuned_baseline: {name, stack, grid: {ENGINE_KEY: [values]}} | [such maps],
//   series_bins, expert_load: {enabled, bins}
// Paths resolve relative to the suite file. A stack given by name is taken from each scenario; a
// map is a stack definition applied to every scenario (validated by the scenario loader, so any
// key the scenario schema accepts works). An `optional` definition the loader rejects, and an
// `optional` scenario whose file is missing, are skipped with a note instead of failing.
//
// A tuned baseline expands, at plan time, into one stack per point of its grid of engine settings:
// a copy of the named stack's definition whose `engine` map takes the point's values (over any the
// stack already has), named `<name>/<setting>` (TunedMemberName). Stack names with a '/' are kept
// for these members; `gimbal report` folds them into one row, the best member per metric.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/scenario.h"
#include "core/status.h"

namespace gimbal::experiment {

struct SuiteScenario {
  std::string path;            // resolved against the suite file's folder
  std::string label;           // names the scenario in ids and plots; default: the scenario's name
  double saturation_rate = 0;  // requests/s; needed for rate_unit: saturation
  bool optional = false;
  std::vector<std::string> overrides;  // applied after the suite's
  std::optional<std::vector<double>> rates;
  std::optional<std::string> rate_unit;
};

struct SuiteStack {
  std::string name;
  YAML::Node definition;  // null: the scenario's own stack of this name
  bool optional = false;
};

// One engine key of a tuned baseline's grid and the values it takes (YAML scalars, as written).
struct TunedAxis {
  std::string key;  // an engine key (docs/scenarios.md), e.g. max_num_batched_tokens
  std::vector<std::string> values;
};

// `tuned_baseline`: the named stack once per point of the grid (the axes' cartesian product, the
// first axis slowest), each member with the point's engine settings.
struct TunedBaseline {
  std::string name;   // the group, e.g. vllm-best; members are `name/<setting>`
  std::string stack;  // the stack copied, e.g. vllm
  std::vector<TunedAxis> grid;
};

// At most this many points in one tuned baseline's grid.
inline constexpr size_t kMaxTunedPoints = 100;
// At most this many points in a suite (scenarios x rates x stacks x seeds): each holds its own
// scenario (about 1 KB), and at the simulator's speed 10^5 points take days on two cores. A
// larger sweep is several suites (or --shard over a batch system).
inline constexpr size_t kMaxSuitePoints = 100000;

// One grid point: (engine key, value) per axis, in grid order.
using TunedSetting = std::vector<std::pair<std::string, std::string>>;

// Every point of the grid, the first axis slowest.
std::vector<TunedSetting> TunedSettings(const TunedBaseline& tb);

// `<group>/<setting>`, the setting as `<abbreviation><value>` per axis joined by '-':
// max_num_batched_tokens b, prefill_schedule_interval i, max_num_seqs s, block_size bs,
// kv_capacity_tokens kv, gpu_memory_utilization mem, activation_reserve_gb act,
// enable_prefix_caching pc, reserve_full_isl rf, async_scheduling as, cuda_graph_padding cg,
// cache_aware_admission_window caw, cache_aware_admission_threshold cat;
// e.g. vllm-best/b1024-i1-s256.
std::string TunedMemberName(const std::string& group, const TunedSetting& setting);

struct Suite {
  std::string name;
  std::string description;
  std::string file;
  std::vector<SuiteScenario> scenarios;
  std::vector<double> rates;  // empty: each scenario's own arrival process, one point
  std::string rate_unit = "rps";
  double duration_s = 0;  // > 0: requests per point = rate × duration_s, clamped
  int64_t min_requests = 1;
  int64_t max_requests = 0;  // 0: no cap
  std::vector<uint64_t> seeds{1};
  std::vector<std::string> overrides;
  std::vector<SuiteStack> stacks;  // empty: every stack of each scenario
  std::string baseline;            // default: the first stack
  std::string headline;            // default: "gimbal" when present, else the last stack
  std::vector<TunedBaseline> tuned;
  int series_bins = 200;
  bool expert_load = true;
  int expert_load_bins = 60;
};

// Reads a suite file. `seeds_override` > 0 replaces the seeds with 1..K.
Result<Suite> LoadSuite(const std::string& path, int seeds_override = 0);
Result<Suite> ParseSuite(const std::string& text, const std::string& name,
                         const std::string& base_dir, int seeds_override = 0);

// One simulation: a scenario at a rate, one stack, one seed.
struct Point {
  std::string id;        // file-name safe and unique
  std::string scenario;  // label
  std::string scenario_file;
  double rate = 0;                      // requests/s; 0: the scenario's own arrivals
  std::optional<double> rate_fraction;  // of the saturation rate, when given that way
  std::string stack;
  size_t stack_index = 0;  // into spec->stacks
  uint64_t seed = 1;
  bool top_rate = false;                 // the highest rate of its scenario
  bool first_seed = false;               // the suite's first seed
  std::shared_ptr<const Scenario> spec;  // seed, rate and stacks applied
};

// A tuned baseline as planned: its members in grid order, each with its setting.
struct TunedGroup {
  std::string name, stack;
  std::vector<std::string> members;  // stack names, `name/<setting>`
  std::vector<TunedSetting> settings;
};

struct SuitePlan {
  std::vector<Point> points;
  std::vector<TunedGroup> tuned;
  std::vector<std::string> notes;   // what was skipped, and why
  std::vector<std::string> stacks;  // stack names in suite order (as run)
  std::string baseline, headline;
};

// Expands the suite into points (scenario-major, then rate, stack, seed), validating every
// scenario with the loader. Tuned-baseline members follow the suite's stacks. Errors name the
// suite file and the scenario. A scenario without a tuned baseline's stack runs no members (a
// note); no scenario with it is an error.
Result<SuitePlan> PlanSuite(const Suite& suite);

// Lower-case letters, digits, '.', '-' and '_' kept; anything else becomes '-'.
std::string SafeName(const std::string& s);

}  // namespace gimbal::experiment
