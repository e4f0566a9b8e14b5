#include "model/catalog.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <system_error>

#include <fmt/format.h>

#include "core/install_paths.h"
#include "core/yaml_reader.h"

#ifndef GIMBAL_DEFAULT_DATA_DIR
#define GIMBAL_DEFAULT_DATA_DIR "data"
#endif

namespace gimbal {

namespace fs = std::filesystem;

namespace {

// Keys every catalogue file may carry besides its numbers.
const std::vector<std::string> kCommonKeys = {"name", "source", "sources"};

const std::vector<std::string> kModelNumbers = {
    "hidden",        "layers",         "dense_layers", "dense_ffn",      "experts",
    "top_k",         "shared_experts", "expert_ffn",   "vocab",          "q_heads",
    "kv_heads",      "head_dim",       "v_head_dim",   "q_lora_rank",    "kv_lora_rank",
    "rope_head_dim", "weight_bytes",   "kv_bytes",     "dispatch_bytes", "combine_bytes"};
const std::vector<std::string> kGqaOnly = {"kv_heads"};
const std::vector<std::string> kMlaOnly = {"v_head_dim", "q_lora_rank", "kv_lora_rank",
                                           "rope_head_dim"};

const std::vector<std::string> kGpuNumbers = {"memory_gib", "peak_bf16_tflops", "hbm_tb_per_s",
                                              "nvlink_gb_per_s", "nic_gbit_per_s"};

const std::vector<std::string> kTopologyNumbers = {
    "gpus_per_node",    "nvlink_latency_us",  "nic_latency_us", "mfu_dense",
    "mfu_attention",    "mfu_expert",         "hbm_efficiency", "link_efficiency",
    "step_overhead_ms", "per_seq_overhead_us"};

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool IsPath(const std::string& s) {
  return s.find('/') != std::string::npos ||
         (s.size() >= 5 && s.compare(s.size() - 5, 5, ".yaml") == 0);
}

std::vector<std::string> ListStems(const std::string& section) {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path dir = fs::path(DataDir()) / section;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".yaml" && it->is_regular_file(ec)) {
      out.push_back(it->path().stem().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Opens the catalogue file for `name_or_path` in `section` ("models"); `kind` names it in
// messages ("model"). Checks the common keys: `name` (optional, must equal the file stem).
Result<YamlReader> Open(const std::string& section, const std::string& kind,
                        const std::string& name_or_path, std::string* name) {
  std::string path = name_or_path;
  if (!IsPath(name_or_path)) {
    path = (fs::path(DataDir()) / section / (name_or_path + ".yaml")).string();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      const std::vector<std::string> names = ListStems(section);
      return NotFound(fmt::format(
          "unknown {} '{}' (no file {}); available: {}", kind, name_or_path, path,
          names.empty()
              ? fmt::format("none (is the data directory {} right? set GIMBAL_DATA_DIR)", DataDir())
              : fmt::format("{}", fmt::join(names, ", "))));
    }
  }
  Result<YamlReader> r = YamlReader::FromFile(path);
  if (!r.ok()) return r.status();
  if (!r->IsMap())
    return InvalidArgument(fmt::format("{}: expected a map of keys to values", path));
  const std::string stem = fs::path(path).stem().string();
  *name = r->String("name", stem);
  if (r->ok() && *name != stem) {
    r->Fail(fmt::format("the {} name '{}' must match the file name '{}'", kind, *name, stem),
            "name");
  }
  return r;
}

// Every number says where it comes from: the top-level `source` names the main document and
// `sources.<key>` gives the source of each numeric key present in the file.
void CheckSources(const YamlReader& r, const std::vector<std::string>& numbers) {
  if (r.String("source", std::nullopt).empty()) r.Fail("the source must not be empty", "source");
  const YamlReader sources = r.Child("sources");
  if (!r.ok()) return;
  if (!sources.IsMap()) {
    r.Fail("expected a map from each numeric key to the source of its number", "sources");
    return;
  }
  sources.CheckKeys(numbers);
  for (const std::string& key : sources.Keys()) {
    if (sources.String(key, std::nullopt).empty())
      sources.Fail("the source must not be empty", key);
  }
  for (const std::string& key : numbers) {
    if (r.Has(key) && !sources.Has(key)) {
      r.Fail(fmt::format("no source given for this number; add 'sources.{}' naming where it "
                         "comes from",
                         key),
             key);
    }
  }
}

// A number that must be > 0, read with YamlReader's checks.
double Positive(const YamlReader& r, const std::string& key, std::optional<double> def,
                double hi = YamlReader::kInf) {
  const double v = r.Double(key, def, 0, hi);
  if (r.ok() && !(v > 0)) r.Fail(fmt::format("expected a number > 0, got '{}'", v), key);
  return v;
}

int ReadInt(const YamlReader& r, const std::string& key, std::optional<int64_t> def, int64_t lo,
            int64_t hi) {
  return static_cast<int>(r.Int(key, def, lo, std::max(lo, hi)));
}

}  // namespace

std::string DataDir() {
  const char* env = std::getenv("GIMBAL_DATA_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  if (const std::string& share = InstalledShareDir(); !share.empty()) {
    std::error_code ec;
    const fs::path data = fs::path(share) / "data";
    if (fs::is_directory(data / "models", ec)) return data.string();
  }
  return GIMBAL_DEFAULT_DATA_DIR;
}

std::vector<std::string> ListModels() {
  return ListStems("models");
}
std::vector<std::string> ListGpus() {
  return ListStems("gpus");
}
std::vector<std::string> ListTopologies() {
  return ListStems("topologies");
}

Result<ModelSpec> LoadModel(const std::string& name_or_path) {
  ModelSpec m;
  Result<YamlReader> opened = Open("models", "model", name_or_path, &m.name);
  if (!opened.ok()) return opened.status();
  const YamlReader& r = *opened;
  r.CheckKeys(Concat(Concat(kCommonKeys, {"attention"}), kModelNumbers));

  const bool mla = r.Enum("attention", std::nullopt, {"gqa", "mla"}) == "mla";
  m.attention = mla ? AttentionKind::kMla : AttentionKind::kGqa;
  constexpr int64_t kMaxDim = int64_t{1} << 24;
  m.hidden = ReadInt(r, "hidden", std::nullopt, 1, kMaxDim);
  m.layers = ReadInt(r, "layers", std::nullopt, 1, 100000);
  m.dense_layers = ReadInt(r, "dense_layers", 0, 0, m.layers - 1);
  m.dense_ffn = m.dense_layers > 0 ? ReadInt(r, "dense_ffn", std::nullopt, 1, kMaxDim)
                                   : ReadInt(r, "dense_ffn", 0, 0, kMaxDim);
  m.experts = ReadInt(r, "experts", std::nullopt, 1, 1 << 20);
  m.top_k = ReadInt(r, "top_k", std::nullopt, 1, m.experts);
  m.shared_experts = ReadInt(r, "shared_experts", 0, 0, 1024);
  m.expert_ffn = ReadInt(r, "expert_ffn", std::nullopt, 1, kMaxDim);
  m.vocab = ReadInt(r, "vocab", std::nullopt, 1, int64_t{1} << 30);
  m.q_heads = ReadInt(r, "q_heads", std::nullopt, 1, 1 << 16);
  m.head_dim = ReadInt(r, "head_dim", std::nullopt, 1, 1 << 16);
  for (const std::string& key : mla ? kGqaOnly : kMlaOnly) {
    if (r.Has(key)) {
      r.Fail(fmt::format("only meaningful for attention: {}", mla ? "gqa" : "mla"), key);
    }
  }
  if (mla) {
    m.v_head_dim = ReadInt(r, "v_head_dim", std::nullopt, 1, 1 << 16);
    m.q_lora_rank = ReadInt(r, "q_lora_rank", 0, 0, kMaxDim);
    m.kv_lora_rank = ReadInt(r, "kv_lora_rank", std::nullopt, 1, kMaxDim);
    m.rope_head_dim = ReadInt(r, "rope_head_dim", std::nullopt, 0, 1 << 16);
  } else {
    m.kv_heads = ReadInt(r, "kv_heads", std::nullopt, 1, m.q_heads);
    if (r.ok() && m.q_heads % m.kv_heads != 0) {
      r.Fail(fmt::format("q_heads ({}) must be a multiple of kv_heads ({})", m.q_heads, m.kv_heads),
             "kv_heads");
    }
  }
  m.weight_bytes = Positive(r, "weight_bytes", 2, 8);
  m.kv_bytes = Positive(r, "kv_bytes", 2, 8);
  m.dispatch_bytes = Positive(r, "dispatch_bytes", 2, 8);
  m.combine_bytes = Positive(r, "combine_bytes", 2, 8);
  CheckSources(r, kModelNumbers);
  if (!r.ok()) return r.status();
  return m;
}

Result<GpuSpec> LoadGpu(const std::string& name_or_path) {
  GpuSpec g;
  Result<YamlReader> opened = Open("gpus", "GPU", name_or_path, &g.name);
  if (!opened.ok()) return opened.status();
  const YamlReader& r = *opened;
  r.CheckKeys(Concat(kCommonKeys, kGpuNumbers));
  g.memory_bytes = Positive(r, "memory_gib", std::nullopt, 1e6) * 1073741824.0;  // 2^30
  g.peak_flops = Positive(r, "peak_bf16_tflops", std::nullopt) * 1e12;
  g.hbm_bandwidth = Positive(r, "hbm_tb_per_s", std::nullopt) * 1e12;
  g.nvlink_bandwidth = Positive(r, "nvlink_gb_per_s", std::nullopt) * 1e9;
  g.nic_bandwidth = Positive(r, "nic_gbit_per_s", std::nullopt) * 1e9 / 8;
  CheckSources(r, kGpuNumbers);
  if (!r.ok()) return r.status();
  return g;
}

Result<HardwareSpec> LoadTopology(const std::string& name_or_path, const GpuSpec& gpu) {
  HardwareSpec hw;
  std::string name;
  Result<YamlReader> opened = Open("topologies", "topology", name_or_path, &name);
  if (!opened.ok()) return opened.status();
  const YamlReader& r = *opened;
  r.CheckKeys(Concat(kCommonKeys, kTopologyNumbers));
  hw.gpu = gpu;
  hw.gpus_per_node = ReadInt(r, "gpus_per_node", hw.gpus_per_node, 1, 1 << 16);
  // Bounded as a scenario's `hardware:` overrides are (1000 s): larger values made simulated time
  // so large that adding a snapshot interval no longer moved it.
  hw.nvlink_latency = r.Double("nvlink_latency_us", hw.nvlink_latency * 1e6, 0, 1e9) * 1e-6;
  hw.nic_latency = r.Double("nic_latency_us", hw.nic_latency * 1e6, 0, 1e9) * 1e-6;
  hw.mfu_dense = Positive(r, "mfu_dense", hw.mfu_dense, 1);
  hw.mfu_attention = Positive(r, "mfu_attention", hw.mfu_attention, 1);
  hw.mfu_expert = Positive(r, "mfu_expert", hw.mfu_expert, 1);
  hw.hbm_efficiency = Positive(r, "hbm_efficiency", hw.hbm_efficiency, 1);
  hw.link_efficiency = Positive(r, "link_efficiency", hw.link_efficiency, 1);
  hw.step_overhead = r.Double("step_overhead_ms", hw.step_overhead * 1e3, 0, 1e6) * 1e-3;
  hw.per_seq_overhead = r.Double("per_seq_overhead_us", hw.per_seq_overhead * 1e6, 0, 1e9) * 1e-6;
  CheckSources(r, kTopologyNumbers);
  if (!r.ok()) return r.status();
  return hw;
}

}  // namespace gimbal
