#include "config/scenario.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_reader.h"
#include "model/catalog.h"
#include "policy/dispatch/dispatch_policy.h"
#include "policy/queue/queue_policy.h"
#include "policy/step/step_policy.h"

namespace gimbal {
namespace {

constexpr double kGb = 1e9;
// Bounds of scenario values that size allocations or the number of simulated events.
constexpr int64_t kMaxBatchedTokens = int64_t{1} << 24;
constexpr int64_t kMaxNumSeqs = int64_t{1} << 20;
constexpr int64_t kMaxKvCapacityTokens = int64_t{1} << 40;
constexpr size_t kMaxTrafficClasses = 256;
constexpr size_t kMaxStacks = 256;
constexpr double kMinDriftPeriodS = 0.1;
constexpr double kMinSnapshotIntervalS = 1e-3;

// A policy given as a name or as a map {policy: NAME, <params>}: fills name and params; keys in
// `reserved` are read by the caller and not passed as parameters.
void ReadPolicy(const YamlReader& stack, const std::string& key, const std::string& def,
                std::string* name, Params* params, const std::vector<std::string>& reserved) {
  if (!stack.Has(key)) {
    *name = def;
    return;
  }
  const YamlReader node = stack.Child(key);
  if (node.node().IsScalar()) {
    *name = node.Scalar();
    return;
  }
  if (!node.IsMap()) {
    stack.Fail("expected a policy name or a map with 'policy'", key);
    return;
  }
  *name = node.String("policy", std::nullopt);
  for (const std::string& k : node.Keys()) {
    if (k == "policy") continue;
    bool skip = false;
    for (const auto& r : reserved) skip = skip || r == k;
    if (skip) continue;
    const YAML::Node v = node.node()[k];
    if (!v.IsScalar()) {
      node.Fail("policy parameters must be single values", k);
      return;
    }
    params->Set(k, v.Scalar());
  }
}

void ReadHardwareOverrides(const YamlReader& h, HardwareSpec* hw) {
  h.CheckKeys({"mfu_dense", "mfu_attention", "mfu_expert", "hbm_efficiency", "link_efficiency",
               "step_overhead_ms", "per_seq_overhead_us", "nvlink_latency_us", "nic_latency_us",
               "gpus_per_node", "comm_overlap"});
  hw->comm_overlap = h.Double("comm_overlap", hw->comm_overlap, 0, 1);
  hw->mfu_dense = h.Double("mfu_dense", hw->mfu_dense, 1e-3, 1);
  hw->mfu_attention = h.Double("mfu_attention", hw->mfu_attention, 1e-3, 1);
  hw->mfu_expert = h.Double("mfu_expert", hw->mfu_expert, 1e-3, 1);
  hw->hbm_efficiency = h.Double("hbm_efficiency", hw->hbm_efficiency, 1e-3, 1);
  hw->link_efficiency = h.Double("link_efficiency", hw->link_efficiency, 1e-3, 1);
  // Latencies of at most 1000 s: beyond that, simulated time no longer advances sensibly.
  hw->step_overhead = h.Double("step_overhead_ms", hw->step_overhead * 1e3, 0, 1e6) / 1e3;
  hw->per_seq_overhead = h.Double("per_seq_overhead_us", hw->per_seq_overhead * 1e6, 0, 1e9) / 1e6;
  hw->nvlink_latency = h.Double("nvlink_latency_us", hw->nvlink_latency * 1e6, 0, 1e9) / 1e6;
  hw->nic_latency = h.Double("nic_latency_us", hw->nic_latency * 1e6, 0, 1e9) / 1e6;
  hw->gpus_per_node = static_cast<int>(h.Int("gpus_per_node", hw->gpus_per_node, 1, 1024));
}

// An `engine` map (the scenario's, or a stack's on top of the scenario's): keys present replace
// the fields of `e`, the others keep what `e` holds.
void ReadEngine(const YamlReader& en, EngineConfig* e) {
  en.CheckKeys({"max_num_batched_tokens", "max_num_seqs", "block_size", "gpu_memory_utilization",
                "activation_reserve_gb", "kv_capacity_tokens", "enable_prefix_caching",
                "reserve_full_isl", "async_scheduling", "prefill_schedule_interval",
                "cuda_graph_padding", "cache_aware_admission_window",
                "cache_aware_admission_threshold"});
  e->max_num_batched_tokens =
      en.Int("max_num_batched_tokens", e->max_num_batched_tokens, 1, kMaxBatchedTokens);
  e->max_num_seqs = en.Int("max_num_seqs", e->max_num_seqs, 1, kMaxNumSeqs);
  e->block_size = static_cast<int>(en.Int("block_size", e->block_size, 1, 1024));
  e->gpu_memory_utilization =
      en.Double("gpu_memory_utilization", e->gpu_memory_utilization, 0.05, 1.0);
  e->activation_reserve_bytes =
      en.Double("activation_reserve_gb", e->activation_reserve_bytes / kGb, 0, 1e6) * kGb;
  e->kv_capacity_tokens =
      en.Int("kv_capacity_tokens", e->kv_capacity_tokens, 0, kMaxKvCapacityTokens);
  e->enable_prefix_caching = en.Bool("enable_prefix_caching", e->enable_prefix_caching);
  e->reserve_full_isl = en.Bool("reserve_full_isl", e->reserve_full_isl);
  e->async_scheduling = en.Bool("async_scheduling", e->async_scheduling);
  e->prefill_schedule_interval =
      en.Int("prefill_schedule_interval", e->prefill_schedule_interval, 1, 1 << 20);
  e->cuda_graph_padding = en.Bool("cuda_graph_padding", e->cuda_graph_padding);
  e->cache_aware_admission_window =
      en.Int("cache_aware_admission_window", e->cache_aware_admission_window, 0, 1 << 20);
  e->cache_aware_admission_threshold =
      en.Double("cache_aware_admission_threshold", e->cache_aware_admission_threshold, 0, 1);
}

Result<Scenario> Build(const YamlReader& root, const std::string& base_dir) {
  Scenario s;
  s.file = root.file();
  root.CheckKeys({"name", "description", "seed", "model", "gpu", "topology", "cluster", "engine",
                  "hardware", "routing", "traffic_classes", "workload", "slo", "max_time_s",
                  "stacks"});
  s.name = root.String("name", std::filesystem::path(root.file()).stem().string());
  s.description = root.String("description", "");
  s.seed = static_cast<uint64_t>(root.Int("seed", 1, 0));
  s.model_name = root.String("model", std::nullopt);
  s.gpu_name = root.String("gpu", std::nullopt);
  s.topology_name = root.String("topology", "hgx-8gpu");
  if (!root.ok()) return root.status();

  auto model = LoadModel(s.model_name);
  if (!model.ok()) return model.status().WithContext(fmt::format("{}: 'model'", root.file()));
  auto gpu = LoadGpu(s.gpu_name);
  if (!gpu.ok()) return gpu.status().WithContext(fmt::format("{}: 'gpu'", root.file()));
  auto hw = LoadTopology(s.topology_name, *gpu);
  if (!hw.ok()) return hw.status().WithContext(fmt::format("{}: 'topology'", root.file()));
  sim::ClusterSpec& c = s.cluster;
  c.model = *model;
  c.hardware = *hw;
  c.hardware.gpu = *gpu;

  const YamlReader cl = root.Child("cluster");
  cl.CheckKeys({"dp", "redundant_slots_per_gpu"});
  c.dp = static_cast<int>(cl.Int("dp", std::nullopt, 1, 4096));
  c.redundant_slots_per_gpu = static_cast<int>(cl.Int("redundant_slots_per_gpu", 0, 0, 1024));

  EngineConfig& e = c.engine;
  ApplyVllmServerDefaults(*gpu, e);  // vLLM's defaults depend on the GPU
  ReadEngine(root.Child("engine", true), &e);

  ReadHardwareOverrides(root.Child("hardware", true), &c.hardware);

  const YamlReader ro = root.Child("routing", true);
  ro.CheckKeys({"overlap", "seed", "drift"});
  c.class_overlap = ro.Double("overlap", 0.3, 0, 1);
  c.routing_seed = static_cast<uint64_t>(ro.Int("seed", 7, 0));
  if (ro.Has("drift")) {
    const YamlReader dr = ro.Child("drift");
    dr.CheckKeys({"period_s", "fraction"});
    c.drift.period_s = dr.Double("period_s", std::nullopt, kMinDriftPeriodS, kMaxWorkloadSpanS);
    c.drift.fraction = dr.Double("fraction", std::nullopt, 1e-9, 1);
  }

  c.classes.clear();
  const auto classes = root.Items("traffic_classes", true);
  if (classes.size() > kMaxTrafficClasses) {
    root.Fail(fmt::format("{} traffic classes, more than the {} allowed", classes.size(),
                          kMaxTrafficClasses),
              "traffic_classes");
  }
  for (const YamlReader& tc : classes) {
    if (!root.ok()) break;
    tc.CheckKeys({"name", "weight", "zipf"});
    c.classes.push_back({tc.String("name", std::nullopt), tc.Double("weight", 1, 0, 1e12),
                         tc.Double("zipf", 1.0, 0, 10)});
  }
  if (c.classes.empty()) c.classes.push_back({"default", 1, 1.0});
  double wsum = 0;
  for (const auto& tc : c.classes) wsum += tc.weight;
  if (root.ok() && wsum <= 0) root.Fail("class weights must not all be zero", "traffic_classes");

  const YamlReader slo = root.Child("slo", true);
  slo.CheckKeys({"ttft_ms", "tpot_ms", "e2el_ms"});
  s.options.slo.ttft_ms = slo.Double("ttft_ms", 0, 0);
  s.options.slo.tpot_ms = slo.Double("tpot_ms", 0, 0);
  s.options.slo.e2el_ms = slo.Double("e2el_ms", 0, 0);
  s.options.max_time = root.Double("max_time_s", 0, 0, kMaxWorkloadSpanS);
  s.options.seed = s.seed;

  const auto stack_items = root.Items("stacks");
  if (stack_items.size() > kMaxStacks) {
    root.Fail(fmt::format("{} stacks, more than the {} allowed", stack_items.size(), kMaxStacks),
              "stacks");
  }
  for (const YamlReader& st : stack_items) {
    if (!root.ok()) break;
    st.CheckKeys({"name", "dispatch", "queue", "step", "placement", "engine"});
    sim::StackSpec spec;
    spec.name = st.String("name", std::nullopt);
    ReadPolicy(st, "dispatch", "vllm", &spec.dispatch, &spec.dispatch_params,
               {"snapshot_interval_ms", "max_inflight", "frontends", "prefix_index",
                "prefix_index_capacity", "class_hints"});
    if (st.Has("dispatch") && st.Child("dispatch").IsMap()) {
      const YamlReader d = st.Child("dispatch");
      spec.snapshot_interval = d.Double("snapshot_interval_ms", 100, 0, 1e9) / 1e3;
      // The router's per-engine limit (router config `max_inflight`); 0: no limit.
      spec.max_inflight = d.Int("max_inflight", 0, 0, int64_t{1} << 20);
      // API servers sharing the dispatch (sim/simulator.h StackSpec::frontends); 0: the policy's.
      spec.frontends = static_cast<int>(d.Int("frontends", 0, 0, 4096));
      // What the front end knows of the engines' prefix caches (sim/simulator.h).
      const std::string index = d.Enum("prefix_index", "none", {"none", "precise", "approximate"});
      spec.prefix_index = index == "precise"       ? sim::StackSpec::PrefixIndex::kPrecise
                          : index == "approximate" ? sim::StackSpec::PrefixIndex::kApproximate
                                                   : sim::StackSpec::PrefixIndex::kNone;
      spec.prefix_index_capacity = d.Int("prefix_index_capacity", 0, 0, int64_t{1} << 32);
      // Share of requests whose user declares their traffic class (sim/simulator.h).
      spec.class_hints = d.Double("class_hints", 0, 0, 1);
      if (d.ok() && spec.snapshot_interval > 0 && spec.snapshot_interval < kMinSnapshotIntervalS) {
        d.Fail(fmt::format("expected 0 (every step) or at least {} ms, got '{}'",
                           kMinSnapshotIntervalS * 1e3, d.node()["snapshot_interval_ms"].Scalar()),
               "snapshot_interval_ms");
      }
    }
    ReadPolicy(st, "queue", "fcfs", &spec.queue, &spec.queue_params, {});
    ReadPolicy(st, "step", "vllm", &spec.step, &spec.step_params, {});
    sim::ReadPlacementSpec(st, "placement", &spec.placement);
    if (st.Has("engine")) {
      EngineConfig own = e;  // the scenario's settings, then this stack's keys
      ReadEngine(st.Child("engine"), &own);
      spec.engine = own;
    }
    for (const auto& other : s.stacks) {
      if (other.name == spec.name)
        st.Fail(fmt::format("duplicate stack name '{}'", spec.name), "name");
    }
    s.stacks.push_back(std::move(spec));
  }
  if (root.ok() && s.stacks.empty()) root.Fail("at least one stack is needed", "stacks");
  // Check policy names and parameters now, so the error points into the file.
  const auto items = root.Items("stacks");
  const CostModel cost_model(c.model, c.hardware);
  DispatchDeps deps;
  deps.cost_model = &cost_model;
  deps.max_num_batched_tokens = e.max_num_batched_tokens;
  deps.kv_block_size = e.block_size;
  for (size_t i = 0; root.ok() && i < s.stacks.size(); ++i) {
    auto q = MakeQueuePolicy(s.stacks[i].queue, s.stacks[i].queue_params);
    if (!q.ok()) items[i].Fail(q.status().message(), "queue");
    auto d = MakeDispatchPolicy(s.stacks[i].dispatch, s.stacks[i].dispatch_params, deps);
    if (root.ok() && !d.ok()) items[i].Fail(d.status().message(), "dispatch");
    StepDeps step_deps;
    step_deps.cost_model = &cost_model;
    step_deps.ranks = c.dp;
    auto sp = MakeStepPolicy(s.stacks[i].step, s.stacks[i].step_params, step_deps);
    if (root.ok() && !sp.ok()) items[i].Fail(sp.status().message(), "step");
    const Status pl = sim::CheckPlacementSpec(s.stacks[i].placement);
    if (root.ok() && !pl.ok()) items[i].Fail(pl.message(), "placement");
  }
  if (!root.ok()) return root.status();

  auto wl = ParseWorkloadSpec(root.Child("workload"), base_dir);
  if (!root.ok()) return root.status();
  if (!wl.ok()) return wl.status();
  s.workload = *wl;
  // How many prompt tokens each of the workload's prefix hashes covers, on every stack's engines.
  const int64_t hash_tokens = PrefixHashTokens(s.workload);
  c.engine.prefix_hash_tokens = hash_tokens;
  for (auto& st : s.stacks) {
    if (st.engine) st.engine->prefix_hash_tokens = hash_tokens;
  }

  if (c.model.experts % c.dp != 0) {
    root.Child("cluster").Fail(fmt::format("{} experts of {} do not divide over dp = {} GPUs",
                                           c.model.experts, c.model.name, c.dp),
                               "dp");
    return root.status();
  }
  return s;
}

}  // namespace

std::vector<double> Scenario::class_weights() const {
  std::vector<double> w;
  for (const auto& c : cluster.classes) w.push_back(c.weight);
  return w;
}

Result<Scenario> ParseScenario(const std::string& text, const std::string& name,
                               const std::string& base_dir,
                               const std::vector<std::string>& overrides) {
  auto doc = YamlReader::FromString(text, name);
  if (!doc.ok()) return doc.status();
  if (!overrides.empty()) {
    YAML::Node root = doc->node();
    if (!root.IsMap())
      return InvalidArgument(fmt::format("{}: expected a map at the top level", name));
    for (const auto& o : overrides) {
      Status st = ApplyOverride(root, o);
      if (!st.ok()) return st.WithContext("--set");
    }
    // Re-serialise so line numbers in later messages refer to the overridden document.
    std::stringstream ss;
    ss << root;
    doc = YamlReader::FromString(ss.str(), name + " (with --set overrides)");
    if (!doc.ok()) return doc.status();
  }
  if (!doc->IsMap())
    return InvalidArgument(fmt::format("{}: expected a map at the top level", name));
  return Build(*doc, base_dir);
}

Result<Scenario> LoadScenario(const std::string& path, const std::vector<std::string>& overrides) {
  Result<std::string> text = ReadConfigFile(path, "scenario file");
  if (!text.ok()) return text.status();
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return ParseScenario(*text, path, dir.empty() ? "." : dir, overrides);
}

}  // namespace gimbal
