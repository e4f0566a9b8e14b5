#include "model/specs.h"

#include <gtest/gtest.h>

#include "model/test_specs.h"

namespace gimbal {
namespace {

// The architectures are written out here so these tests check the formulas alone; the
// catalogue tests check the data files give the same numbers.
ModelSpec Qwen3_30B() {
  return testing::HandQwen3_30B();
}

ModelSpec DeepSeekV3() {
  ModelSpec m;
  m.name = "deepseek-v3";
  m.hidden = 7168;
  m.layers = 61;
  m.dense_layers = 3;
  m.dense_ffn = 18432;
  m.experts = 256;
  m.top_k = 8;
  m.shared_experts = 1;
  m.expert_ffn = 2048;
  m.vocab = 129280;
  m.attention = AttentionKind::kMla;
  m.q_heads = 128;
  m.head_dim = 128;
  m.v_head_dim = 128;
  m.q_lora_rank = 1536;
  m.kv_lora_rank = 512;
  m.rope_head_dim = 64;
  m.weight_bytes = 1;
  return m;
}

GpuSpec Gpu(double memory_bytes) {
  GpuSpec g;
  g.name = "test-gpu";
  g.memory_bytes = memory_bytes;
  return g;
}

TEST(ModelSpec, GqaAttentionParamsAreQKVOProjections) {
  // q 2048·4096 + k,v 2·2048·512 + o 4096·2048.
  EXPECT_DOUBLE_EQ(Qwen3_30B().AttentionParamsPerLayer(), 8388608.0 + 2097152.0 + 8388608.0);
}

TEST(ModelSpec, MlaAttentionParamsWithAndWithoutLowRankQuery) {
  // DeepSeek-V3: q_a 7168·1536 + q_b 1536·128·192 + kv_a 7168·576 + kv_b 512·128·256
  // + o 128·128·7168.
  const ModelSpec v3 = DeepSeekV3();
  EXPECT_DOUBLE_EQ(v3.AttentionParamsPerLayer(),
                   11010048.0 + 37748736.0 + 4128768.0 + 16777216.0 + 117440512.0);
  // Without a low-rank query the projection is hidden·heads·(nope + rope) = 7168·128·192.
  ModelSpec no_lora = v3;
  no_lora.q_lora_rank = 0;
  EXPECT_DOUBLE_EQ(no_lora.AttentionParamsPerLayer(),
                   176160768.0 + 4128768.0 + 16777216.0 + 117440512.0);
}

TEST(ModelSpec, KvBytesPerTokenGqaAndMla) {
  // GQA: k and v, 4 heads of 128, bf16, 48 layers: 2·4·128·2·48.
  EXPECT_DOUBLE_EQ(Qwen3_30B().KvBytesPerTokenLayer(), 2048.0);
  EXPECT_DOUBLE_EQ(Qwen3_30B().KvBytesPerToken(), 98304.0);
  // MLA: latent 512 + rope key 64, bf16, 61 layers.
  EXPECT_DOUBLE_EQ(DeepSeekV3().KvBytesPerTokenLayer(), 1152.0);
  EXPECT_DOUBLE_EQ(DeepSeekV3().KvBytesPerToken(), 576.0 * 2 * 61);
}

TEST(ModelSpec, AttentionScoreFlopsPerQueryKeyPair) {
  EXPECT_DOUBLE_EQ(Qwen3_30B().AttentionScoreFlops(), 2.0 * 32 * 128 * 2);
  EXPECT_DOUBLE_EQ(DeepSeekV3().AttentionScoreFlops(), 2.0 * 128 * (576 + 512));
}

TEST(ModelSpec, TotalParamsMatchPublishedSizes) {
  EXPECT_NEAR(Qwen3_30B().TotalParams() / 1e9, 30.5, 0.3);
  EXPECT_NEAR(DeepSeekV3().TotalParams() / 1e9, 671, 5);
}

TEST(ModelSpec, MoeLayersExcludeDenseLayers) {
  EXPECT_EQ(DeepSeekV3().moe_layers(), 58);
  EXPECT_EQ(Qwen3_30B().moe_layers(), 48);
}

TEST(WeightsPerGpu, ReplicatedPlusExpertSlots) {
  const ModelSpec m = Qwen3_30B();
  const double replicated = m.ReplicatedParams() * 2;
  EXPECT_DOUBLE_EQ(WeightsPerGpuBytes(m, 0), replicated);
  // 16 slots in each of 48 MoE layers, 3·2048·768 parameters each, 2 bytes.
  EXPECT_DOUBLE_EQ(WeightsPerGpuBytes(m, 16), replicated + 16.0 * 48 * 4718592 * 2);
}

TEST(KvCapacity, RoundsDownToWholeBlocks) {
  const ModelSpec m = Qwen3_30B();
  EngineConfig e;
  e.gpu_memory_utilization = 1.0;
  e.activation_reserve_bytes = 0;
  // Room for exactly 100 blocks of 16 tokens plus half a block.
  const double memory = WeightsPerGpuBytes(m, 16) + 100.5 * 16 * m.KvBytesPerToken();
  auto cap = KvCapacityTokens(m, Gpu(memory), e, 16);
  ASSERT_TRUE(cap.ok()) << cap.status().ToString();
  EXPECT_EQ(*cap, 1600);
}

TEST(KvCapacity, ExplicitCapacityOverridesMemory) {
  EngineConfig e;
  e.kv_capacity_tokens = 12345;
  auto cap = KvCapacityTokens(Qwen3_30B(), Gpu(1e9), e, 128);
  ASSERT_TRUE(cap.ok());
  EXPECT_EQ(*cap, 12345);
}

TEST(KvCapacity, WeightsThatDoNotFitGiveAnActionableError) {
  // All 256 experts of DeepSeek-V3 on one 80 GB GPU: about 671 GB of fp8 weights.
  auto cap = KvCapacityTokens(DeepSeekV3(), Gpu(80e9), EngineConfig{}, 256);
  ASSERT_FALSE(cap.ok());
  EXPECT_EQ(cap.status().code(), ErrorCode::kInvalidArgument);
  const std::string& msg = cap.status().message();
  EXPECT_NE(msg.find("deepseek-v3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test-gpu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("GB short"), std::string::npos) << msg;
  EXPECT_NE(msg.find("256 expert slots"), std::string::npos) << msg;
}

TEST(KvCapacity, RejectsInvalidEngineSettings) {
  EngineConfig e;
  e.block_size = 0;
  EXPECT_FALSE(KvCapacityTokens(Qwen3_30B(), Gpu(80e9), e, 16).ok());
  e = EngineConfig{};
  e.gpu_memory_utilization = 1.5;
  EXPECT_FALSE(KvCapacityTokens(Qwen3_30B(), Gpu(80e9), e, 16).ok());
}

}  // namespace
}  // namespace gimbal

namespace gimbal {
namespace {

TEST(VllmServerDefaults, DependOnMemoryAndExcludeA100) {
  auto defaults = [](const std::string& name, double gib) {
    GpuSpec g;
    g.name = name;
    g.memory_bytes = gib * 1024 * 1024 * 1024;
    EngineConfig e;
    e.max_num_batched_tokens = -1;
    e.max_num_seqs = -1;
    ApplyVllmServerDefaults(g, e);
    return std::pair<int64_t, int64_t>(e.max_num_batched_tokens, e.max_num_seqs);
  };
  using P = std::pair<int64_t, int64_t>;
  EXPECT_EQ(defaults("h200", 141), (P{8192, 1024}));
  EXPECT_EQ(defaults("h100-sxm", 80), (P{8192, 1024}));
  EXPECT_EQ(defaults("A100-80GB", 80), (P{2048, 256}));  // vLLM excludes A100 by name
  EXPECT_EQ(defaults("l40s", 48), (P{2048, 256}));
}

TEST(SpecsTest, VllmDefaultsByMemory) {
  // docs/baseline.md §8 (vLLM 0.33): 80 GB -> 8192/1024, 141 GB -> 8192/1024, 192 GB ->
  // 16384/1024, A100 80 GB -> 2048/256.
  auto defaults = [](const std::string& name, double gb) {
    GpuSpec g;
    g.name = name;
    g.memory_bytes = gb * 1e9;
    EngineConfig e;
    ApplyVllmServerDefaults(g, e);
    return std::pair<int64_t, int64_t>(e.max_num_batched_tokens, e.max_num_seqs);
  };
  using P = std::pair<int64_t, int64_t>;
  EXPECT_EQ(defaults("h100-sxm", 80), (P{8192, 1024}));
  EXPECT_EQ(defaults("h200", 141), (P{8192, 1024}));
  EXPECT_EQ(defaults("b200", 192), (P{16384, 1024}));
  EXPECT_EQ(defaults("a100-sxm-80gb", 80), (P{2048, 256}));
  // The tier edges, in GiB as vLLM measures: 160 GiB is the top tier, just below it is not; GB10
  // (128 GB unified memory) is excluded from the 70 GiB tier by name.
  const double gib = 1024.0 * 1024 * 1024 / 1e9;
  EXPECT_EQ(defaults("next-gpu", 160 * gib), (P{16384, 1024}));
  EXPECT_EQ(defaults("next-gpu", 159.9 * gib), (P{8192, 1024}));
  EXPECT_EQ(defaults("nvidia-gb10", 128), (P{2048, 256}));
}

TEST(SpecsTest, EngineDefaultsAreVllm034s) {
  // vLLM 0.34: 64-token blocks, and the KV cache sized from the whole GPU less the weights, the
  // activation peak and 512 MiB (docs/baseline.md, "vLLM 0.34.0").
  const EngineConfig defaults;
  EXPECT_EQ(defaults.block_size, 64);
  EXPECT_DOUBLE_EQ(defaults.gpu_memory_utilization, 1.0);
  EXPECT_DOUBLE_EQ(defaults.activation_reserve_bytes, 4.5e9);
  // And they are what KvCapacityTokens uses: all of the memory less weights and the reserve, in
  // whole 64-token blocks.
  const ModelSpec m = Qwen3_30B();
  const double block = 64 * m.KvBytesPerToken();
  const double memory = WeightsPerGpuBytes(m, 16) + 4.5e9 + 100.5 * block;
  auto cap = KvCapacityTokens(m, Gpu(memory), defaults, 16);
  ASSERT_TRUE(cap.ok()) << cap.status().ToString();
  EXPECT_EQ(*cap, 6400);
}

}  // namespace
}  // namespace gimbal
