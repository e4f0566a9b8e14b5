#include "model/catalog.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace gimbal {
namespace {

namespace fs = std::filesystem;

ModelSpec Model(const std::string& name) {
  auto m = LoadModel(name);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? *m : ModelSpec{};
}

GpuSpec Gpu(const std::string& name) {
  auto g = LoadGpu(name);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? *g : GpuSpec{};
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A temporary directory of this test alone (tests may run in parallel processes), removed
// when the object goes out of scope.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::path(::testing::TempDir()) /
            ("gimbal_catalog_" + std::to_string(getpid()) + "_" + info->name());
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  // Writes `text` to `file_name` here and returns its path.
  std::string Write(const std::string& file_name, const std::string& text) const {
    const fs::path file = path_ / file_name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  fs::path path_;
};

// Sets an environment variable for the lifetime of the object, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Catalog, EveryEntryLoadsAndIsNamedAfterItsFile) {
  const auto models = ListModels();
  const auto gpus = ListGpus();
  const auto topologies = ListTopologies();
  for (const char* m :
       {"qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v2-lite", "deepseek-v3", "mixtral-8x7b"}) {
    EXPECT_NE(std::find(models.begin(), models.end(), m), models.end()) << m;
  }
  for (const char* g : {"a100-80gb", "h100-sxm", "h200", "h800"}) {
    EXPECT_NE(std::find(gpus.begin(), gpus.end(), g), gpus.end()) << g;
  }
  EXPECT_NE(std::find(topologies.begin(), topologies.end(), "hgx-8gpu"), topologies.end());
  for (const auto& name : models) {
    auto m = LoadModel(name);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->name, name);
    EXPECT_GT(m->KvBytesPerToken(), 0) << name;
    EXPECT_LE(m->top_k, m->experts) << name;
  }
  for (const auto& name : gpus) {
    auto g = LoadGpu(name);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(g->name, name);
    for (const auto& topo : topologies) {
      auto hw = LoadTopology(topo, *g);
      ASSERT_TRUE(hw.ok()) << hw.status().ToString();
      EXPECT_EQ(hw->gpu.name, name);
      EXPECT_GT(hw->link_efficiency, 0);
      EXPECT_LE(hw->link_efficiency, 1);
    }
  }
}

TEST(Catalog, GpuUnitsAreConvertedToBytesAndSeconds) {
  const GpuSpec h100 = Gpu("h100-sxm");
  EXPECT_DOUBLE_EQ(h100.memory_bytes, 80.0 * 1073741824.0);
  EXPECT_DOUBLE_EQ(h100.peak_flops, 989e12);
  EXPECT_DOUBLE_EQ(h100.hbm_bandwidth, 3.35e12);
  EXPECT_DOUBLE_EQ(h100.nvlink_bandwidth, 450e9);
  EXPECT_DOUBLE_EQ(h100.nic_bandwidth, 50e9);
  EXPECT_DOUBLE_EQ(Gpu("a100-80gb").nic_bandwidth, 25e9);  // HDR 200 Gb/s
  EXPECT_DOUBLE_EQ(Gpu("h800").nvlink_bandwidth, 200e9);

  auto hw = LoadTopology("hgx-8gpu-ll", h100);
  ASSERT_TRUE(hw.ok()) << hw.status().ToString();
  EXPECT_EQ(hw->gpus_per_node, 8);
  EXPECT_DOUBLE_EQ(hw->nic_latency, 20e-6);
  EXPECT_DOUBLE_EQ(hw->step_overhead, 2e-3);
  EXPECT_DOUBLE_EQ(hw->per_seq_overhead, 5e-6);
}

TEST(Catalog, KvBytesPerTokenFromTheDataFiles) {
  // GQA: k and v · 4 kv heads · head 128 · bf16 · 48 layers.
  EXPECT_DOUBLE_EQ(Model("qwen3-30b-a3b").KvBytesPerToken(), 2.0 * 4 * 128 * 2 * 48);
  EXPECT_DOUBLE_EQ(Model("qwen3-30b-a3b").KvBytesPerToken(), 98304.0);
  // MLA: (kv_lora 512 + rope 64) · bf16 · 61 layers.
  EXPECT_DOUBLE_EQ(Model("deepseek-v3").KvBytesPerToken(), 576.0 * 2 * 61);
  // Mixtral: 2 · 8 · 128 · 2 · 32; DeepSeek-V2-Lite: 576 · 2 · 27.
  EXPECT_DOUBLE_EQ(Model("mixtral-8x7b").KvBytesPerToken(), 131072.0);
  EXPECT_DOUBLE_EQ(Model("deepseek-v2-lite").KvBytesPerToken(), 31104.0);
}

TEST(Catalog, TotalParamsMatchPublishedTotals) {
  // Published: Qwen3-30B-A3B 30.5B, Qwen3-235B-A22B 235B, DeepSeek-V2-Lite 15.7B,
  // DeepSeek-V3 671B (without its MTP module), Mixtral-8x7B 46.7B. Within 2%.
  const std::pair<const char*, double> published[] = {{"qwen3-30b-a3b", 30.5e9},
                                                      {"qwen3-235b-a22b", 235e9},
                                                      {"deepseek-v2-lite", 15.7e9},
                                                      {"deepseek-v3", 671e9},
                                                      {"mixtral-8x7b", 46.7e9}};
  for (const auto& [name, total] : published) {
    EXPECT_NEAR(Model(name).TotalParams() / total, 1.0, 0.02) << name;
  }
}

// The hand derivations below use gpu_memory_utilization 0.9, 16-token blocks and a 4 GB reserve
// (round figures); vLLM 0.34's defaults are pinned by SpecsTest.EngineDefaultsAreVllm034s.
EngineConfig EngineAt90() {
  EngineConfig e;
  e.gpu_memory_utilization = 0.9;
  e.block_size = 16;
  e.activation_reserve_bytes = 4e9;
  return e;
}

TEST(Catalog, KvCapacityOfGqaModelOnH200ByHand) {
  // Qwen3-30B-A3B with EP8 on H200: 128 experts / 8 GPUs = 16 expert slots per MoE layer.
  //   usable   = 141 · 2^30 B · 0.9                              = 136,257,837,465.6 B
  //   replicated params:
  //     attention 48 · (2048·4096 + 2·2048·512 + 4096·2048)      =     905,969,664
  //     router    48 · 2048 · 128                                =      12,582,912
  //     embedding and LM head 2 · 151936 · 2048                  =     622,329,856
  //     norms     48 · 2 · 2048 + 2048                           =         198,656
  //                                                        total =   1,541,081,088
  //   routed    16 slots · 48 layers · 3·2048·768                =   3,623,878,656
  //   weights   (1,541,081,088 + 3,623,878,656) · 2 B            =  10,329,919,488 B
  //   free      136,257,837,465.6 − 10,329,919,488 − 4e9 reserve = 121,927,917,977.6 B
  //   tokens    121,927,917,977.6 / 98,304 B                     =   1,240,314.9
  //   blocks    floor(1,240,314.9 / 16) = 77,519 → 77,519 · 16   =   1,240,304 tokens
  const ModelSpec m = Model("qwen3-30b-a3b");
  EXPECT_DOUBLE_EQ(WeightsPerGpuBytes(m, 16), 10329919488.0);
  auto cap = KvCapacityTokens(m, Gpu("h200"), EngineAt90(), 16);
  ASSERT_TRUE(cap.ok()) << cap.status().ToString();
  EXPECT_EQ(*cap, 1240304);
}

TEST(Catalog, KvCapacityOfMlaModelOnH200ByHand) {
  // DeepSeek-V3 with EP8 on H200: 256 experts / 8 GPUs = 32 expert slots per MoE layer, fp8.
  //   usable   = 141 · 2^30 B · 0.9                              = 136,257,837,465.6 B
  //   replicated params:
  //     attention 61 · (7168·1536 + 1536·128·192 + 7168·576
  //                     + 512·128·256 + 128·128·7168)            =  11,413,422,080
  //     dense FFN 3 · 3 · 7168 · 18432                           =   1,189,085,184
  //     shared    58 · 3 · 7168 · 2048                           =   2,554,331,136
  //     router    58 · 7168 · 256                                =     106,430,464
  //     embedding and LM head 2 · 129280 · 7168                  =   1,853,358,080
  //     norms     61 · 2 · 7168 + 7168 + 61 · (512 + 1536)       =       1,006,592
  //                                                        total =  17,117,633,536
  //   routed    32 slots · 58 layers · 3·7168·2048               =  81,738,596,352
  //   weights   (17,117,633,536 + 81,738,596,352) · 1 B          =  98,856,229,888 B
  //   free      136,257,837,465.6 − 98,856,229,888 − 4e9         =  33,401,607,577.6 B
  //   tokens    33,401,607,577.6 / (576 · 2 · 61 = 70,272 B)     =     475,318.9
  //   blocks    floor(475,318.9 / 16) = 29,707 → 29,707 · 16     =     475,312 tokens
  const ModelSpec m = Model("deepseek-v3");
  EXPECT_DOUBLE_EQ(m.ReplicatedParams(), 17117633536.0);
  EXPECT_DOUBLE_EQ(WeightsPerGpuBytes(m, 32), 98856229888.0);
  auto cap = KvCapacityTokens(m, Gpu("h200"), EngineAt90(), 32);
  ASSERT_TRUE(cap.ok()) << cap.status().ToString();
  EXPECT_EQ(*cap, 475312);
}

TEST(Catalog, WeightsNotFittingNameModelGpuAndShortfall) {
  // DeepSeek-V3 EP8 on H100: 98.9 GB of weights + 4 GB reserve against 77.3 GB usable.
  auto cap = KvCapacityTokens(Model("deepseek-v3"), Gpu("h100-sxm"), EngineAt90(), 32);
  ASSERT_FALSE(cap.ok());
  const std::string& msg = cap.status().message();
  EXPECT_TRUE(Contains(msg, "'deepseek-v3' does not fit on GPU 'h100-sxm'")) << msg;
  EXPECT_TRUE(Contains(msg, "weights 98.9 GB")) << msg;
  EXPECT_TRUE(Contains(msg, "25.55 GB short")) << msg;
}

TEST(Catalog, UnknownNameListsAvailableNames) {
  auto m = LoadModel("qwen4-moe");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(m.status().message(), "unknown model 'qwen4-moe'")) << m.status().message();
  EXPECT_TRUE(Contains(m.status().message(), "deepseek-v3, mixtral-8x7b, qwen3-235b-a22b"))
      << m.status().message();
  auto g = LoadGpu("b200");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(Contains(g.status().message(), "a100-80gb, h100-sxm, h200, h800"))
      << g.status().message();
  auto t = LoadTopology("torus", GpuSpec{});
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(Contains(t.status().message(), "hgx-8gpu")) << t.status().message();
}

TEST(Catalog, MissingPathIsNotFound) {
  auto m = LoadModel("/nonexistent/dir/model.yaml");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), ErrorCode::kNotFound);
}

constexpr char kGoodGpu[] =
    "name: test-gpu\n"
    "source: a datasheet\n"
    "memory_gib: 80\n"
    "peak_bf16_tflops: 989\n"
    "hbm_tb_per_s: 3.35\n"
    "nvlink_gb_per_s: 450\n"
    "nic_gbit_per_s: 400\n"
    "sources:\n"
    "  memory_gib: a\n"
    "  peak_bf16_tflops: b\n"
    "  hbm_tb_per_s: c\n"
    "  nvlink_gb_per_s: d\n"
    "  nic_gbit_per_s: e\n";

TEST(Catalog, WellFormedFileLoadsByPath) {
  const TempDir tmp;
  auto g = LoadGpu(tmp.Write("test-gpu.yaml", kGoodGpu));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->name, "test-gpu");
}

TEST(Catalog, UnknownKeyNamesFileLineAndKey) {
  const TempDir tmp;
  std::string text = kGoodGpu;
  text.replace(text.find("hbm_tb_per_s: 3.35"), 18, "hbm_tbps: 3.35");
  const std::string path = tmp.Write("test-gpu.yaml", text);
  auto g = LoadGpu(path);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(g.status().message(), path + ":5:")) << g.status().message();
  EXPECT_TRUE(Contains(g.status().message(), "'hbm_tbps': unknown key")) << g.status().message();
}

TEST(Catalog, BadValueNamesFileLineAndKey) {
  const TempDir tmp;
  std::string text = kGoodGpu;
  text.replace(text.find("memory_gib: 80"), 14, "memory_gib: lots");
  const std::string path = tmp.Write("test-gpu.yaml", text);
  auto g = LoadGpu(path);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().message(),
            path + ":3:13: 'memory_gib': expected a number in [0, 1000000], got 'lots'");
}

TEST(Catalog, NumberWithoutSourceIsRejected) {
  const TempDir tmp;
  std::string text = kGoodGpu;
  text.erase(text.find("  nic_gbit_per_s: e\n"));
  const std::string path = tmp.Write("test-gpu.yaml", text);
  auto g = LoadGpu(path);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(Contains(g.status().message(), path + ":7:")) << g.status().message();
  EXPECT_TRUE(Contains(g.status().message(), "'nic_gbit_per_s': no source given"))
      << g.status().message();
}

TEST(Catalog, MalformedYamlNamesFileAndLine) {
  const TempDir tmp;
  const std::string path = tmp.Write("broken.yaml", "name: broken\nmemory_gib: [80\nsource: x\n");
  auto g = LoadGpu(path);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(Contains(g.status().message(), path + ":")) << g.status().message();
  EXPECT_TRUE(Contains(g.status().message(), "malformed YAML")) << g.status().message();
}

TEST(Catalog, NameMustMatchFileName) {
  const TempDir tmp;
  const std::string path = tmp.Write("other-gpu.yaml", kGoodGpu);
  auto g = LoadGpu(path);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(Contains(g.status().message(), path + ":1:")) << g.status().message();
  EXPECT_TRUE(Contains(g.status().message(), "must match the file name 'other-gpu'"))
      << g.status().message();
}

constexpr char kGqaModel[] =
    "source: a config.json\n"
    "attention: gqa\n"
    "hidden: 64\n"
    "layers: 2\n"
    "experts: 4\n"
    "top_k: 2\n"
    "expert_ffn: 32\n"
    "vocab: 100\n"
    "q_heads: 4\n"
    "kv_heads: 2\n"
    "head_dim: 16\n"
    "sources: {hidden: a, layers: b, experts: c, top_k: d, expert_ffn: e, vocab: f, q_heads: g,\n"
    "          kv_heads: h, head_dim: i}\n";

TEST(Catalog, ModelDefaultsAndChecks) {
  const TempDir tmp;
  auto m = LoadModel(tmp.Write("tiny.yaml", kGqaModel));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->name, "tiny");
  EXPECT_EQ(m->dense_layers, 0);
  EXPECT_DOUBLE_EQ(m->weight_bytes, 2);

  std::string bad_topk = kGqaModel;
  bad_topk.replace(bad_topk.find("top_k: 2"), 8, "top_k: 5");
  const std::string path = tmp.Write("tiny.yaml", bad_topk);
  auto e = LoadModel(path);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), path + ":6:8: 'top_k': expected an integer in [1, 4], got '5'");

  std::string mla_key = kGqaModel;
  mla_key += "kv_lora_rank: 512\n";
  auto e2 = LoadModel(tmp.Write("tiny.yaml", mla_key));
  ASSERT_FALSE(e2.ok());
  EXPECT_TRUE(Contains(e2.status().message(), "'kv_lora_rank': only meaningful for attention: mla"))
      << e2.status().message();

  std::string heads = kGqaModel;
  heads.replace(heads.find("kv_heads: 2"), 11, "kv_heads: 3");
  auto e3 = LoadModel(tmp.Write("tiny.yaml", heads));
  ASSERT_FALSE(e3.ok());
  EXPECT_TRUE(Contains(e3.status().message(), "must be a multiple of kv_heads"))
      << e3.status().message();
}

TEST(Catalog, DataDirFollowsEnvironmentAndFallsBackToCompiledDefault) {
  const TempDir tmp;
  const fs::path dir = tmp.path();
  tmp.Write("models/tiny.yaml", kGqaModel);
  {
    ScopedEnv env("GIMBAL_DATA_DIR", dir.c_str());
    EXPECT_EQ(DataDir(), dir.string());
    EXPECT_EQ(ListModels(), std::vector<std::string>{"tiny"});
    EXPECT_TRUE(LoadModel("tiny").ok());
  }
  {
    ScopedEnv env("GIMBAL_DATA_DIR", nullptr);
    EXPECT_TRUE(LoadModel("deepseek-v3").ok());
  }
}

// Values that parse but would break a run are bounded as a scenario's own overrides are: a GPU of
// 1e300 GiB (its KV capacity wrapped in a cast), a step overhead of 1e9 ms (simulated time grew
// past where a snapshot interval moves it, and the run never ended).
TEST(Catalog, ValuesThatWouldBreakARunAreBounded) {
  const TempDir tmp;
  std::string text = kGoodGpu;
  text.replace(text.find("memory_gib: 80"), 14, "memory_gib: 1e300");
  auto g = LoadGpu(tmp.Write("test-gpu.yaml", text));
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(Contains(g.status().message(), "'memory_gib': expected a number in [0, 1000000]"))
      << g.status().message();
  auto h200 = LoadGpu("h200");
  ASSERT_TRUE(h200.ok());
  std::ifstream in(std::string(GIMBAL_SOURCE_DIR) + "/data/topologies/hgx-8gpu.yaml");
  std::stringstream text_of;
  text_of << in.rdbuf();
  std::string topo = text_of.str();
  const size_t at = topo.find("step_overhead_ms:");
  ASSERT_NE(at, std::string::npos);
  topo.replace(at, topo.find('\n', at) - at, "step_overhead_ms: 1e9");
  auto t = LoadTopology(tmp.Write("hgx-8gpu.yaml", topo), *h200);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(
      Contains(t.status().message(), "'step_overhead_ms': expected a number in [0, 1000000]"))
      << t.status().message();
}

}  // namespace
}  // namespace gimbal
