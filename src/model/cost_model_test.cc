// The cost model against hand computations (efficiencies set to 1 so the numbers stay readable).
#include "model/cost_model.h"

#include <gtest/gtest.h>

namespace gimbal {
namespace {

ModelSpec Gqa() {
  ModelSpec m;
  m.name = "hand";
  m.hidden = 1024;
  m.layers = 2;
  m.experts = 8;
  m.top_k = 2;
  m.expert_ffn = 512;
  m.vocab = 1000;
  m.q_heads = 8;
  m.kv_heads = 2;
  m.head_dim = 128;
  return m;
}

HardwareSpec Unit() {
  HardwareSpec h;
  h.gpu.peak_flops = 1e15;
  h.gpu.hbm_bandwidth = 3e12;
  h.gpu.nvlink_bandwidth = 400e9;
  h.gpu.nic_bandwidth = 50e9;
  h.mfu_dense = h.mfu_attention = h.mfu_expert = 1.0;
  h.hbm_efficiency = h.link_efficiency = 1.0;
  h.nvlink_latency = 20e-6;
  h.nic_latency = 40e-6;
  h.step_overhead = 1e-3;
  h.per_seq_overhead = 5e-6;
  return h;
}

TEST(CostModelTest, AttentionIsProjectionRooflinePlusScoreRoofline) {
  CostModel cm(Gqa(), Unit());
  RankBatch b;
  b.tokens = 100;
  b.attn_pairs = 5000;
  b.kv_read_tokens = 1000;
  // Projections: params 1024·1024 + 2·1024·256 + 1024·1024 = 2,621,440.
  //   flops 2·2,621,440·100 = 5.24288e8 -> 5.24288e-7 s; bytes 2·2,621,440 + 2·100·1024·2 =
  //   5,652,480 -> 1.88416e-6 s: memory-bound, 1.88416e-6 s.
  // Scores: 2·8·128·2 = 4096 flops per pair · 5000 = 2.048e7 -> 2.048e-8 s; KV bytes
  //   1000 · (2·2·128·2 = 1024) = 1.024e6 -> 3.41333e-7 s: memory-bound.
  EXPECT_NEAR(cm.AttentionTime(b), 1.88416e-6 + 1.024e6 / 3e12, 1e-15);
  EXPECT_DOUBLE_EQ(cm.AttentionTime(RankBatch{}), 0.0);
}

TEST(CostModelTest, ExpertTimeReadsWeightsOncePerActiveExpert) {
  CostModel cm(Gqa(), Unit());
  // Expert params 3·1024·512 = 1,572,864. 1000 token pairs on 4 active experts:
  //   flops 2·1,572,864·1000 = 3.145728e9 -> 3.145728e-6 s;
  //   bytes 4·1,572,864·2 + 2·1000·1024·2 = 16,678,912 -> 5.5596373e-6 s.
  EXPECT_NEAR(cm.ExpertTime(1000, 4), 16678912.0 / 3e12, 1e-15);
  // Compute-bound when many tokens share one expert: 1e6 pairs, 1 expert -> 3.145728e-3 s.
  EXPECT_NEAR(cm.ExpertTime(1e6, 1), 2.0 * 1572864 * 1e6 / 1e15, 1e-12);
  EXPECT_DOUBLE_EQ(cm.ExpertTime(0, 0), 0.0);
}

TEST(CostModelTest, AllToAllIsSlowerLinkPlusItsLatency) {
  CostModel cm(Gqa(), Unit());
  EXPECT_NEAR(cm.AllToAllTime(1e6, 0), 20e-6 + 1e6 / 400e9, 1e-15);
  EXPECT_NEAR(cm.AllToAllTime(1e6, 1e6), 40e-6 + 1e6 / 50e9, 1e-15);
  EXPECT_DOUBLE_EQ(cm.AllToAllTime(0, 0), 0.0);
  EXPECT_DOUBLE_EQ(cm.DispatchBytesPerToken(), 1024 * 2.0);
}

TEST(CostModelTest, HeadDenseSharedAndOverhead) {
  ModelSpec m = Gqa();
  m.dense_ffn = 2048;
  m.shared_experts = 1;
  CostModel cm(m, Unit());
  RankBatch b;
  b.logits = 10;
  // Head: 1000·1024 params, bytes 2,048,000 -> 6.82667e-7 s (memory-bound at 10 rows).
  EXPECT_NEAR(cm.HeadTime(b), 2.048e6 / 3e12, 1e-15);
  // Dense FFN: 3·1024·2048 params = 6,291,456; 10 tokens: bytes 12,582,912 -> 4.194304e-6 s.
  EXPECT_NEAR(cm.DenseFfnTime(10), 12582912.0 / 3e12, 1e-15);
  EXPECT_NEAR(cm.SharedExpertTime(10), 2.0 * 1572864 / 3e12, 1e-15);
  EXPECT_NEAR(cm.StepOverhead(10), 1e-3 + 10 * 5e-6, 1e-15);
}

TEST(CostModelTest, MlaPrefillIsUnabsorbedAndDecodeAbsorbed) {
  ModelSpec m;
  m.attention = AttentionKind::kMla;
  m.q_heads = 128;
  m.head_dim = 128;
  m.rope_head_dim = 64;
  m.v_head_dim = 128;
  m.kv_lora_rank = 512;
  EXPECT_DOUBLE_EQ(m.AttentionScoreFlops(true), 2.0 * 128 * (576 + 512));   // 278,528
  EXPECT_DOUBLE_EQ(m.AttentionScoreFlops(false), 2.0 * 128 * (192 + 128));  // 81,920
  // In a batch, decode pairs are priced absorbed and the rest unabsorbed.
  m.hidden = 1024;
  m.layers = 1;
  m.experts = 8;
  m.top_k = 2;
  m.expert_ffn = 8;
  m.vocab = 8;
  HardwareSpec h = Unit();
  h.gpu.hbm_bandwidth = 1e30;  // make everything compute-bound
  CostModel cm(m, h);
  RankBatch b;
  b.tokens = 1;
  b.attn_pairs = 1e6;
  b.decode_attn_pairs = 4e5;
  const double proj = 2.0 * m.AttentionParamsPerLayer() * 1 / 1e15;
  EXPECT_NEAR(cm.AttentionTime(b) - proj, (278528.0 * 4e5 + 81920.0 * 6e5) / 1e15, 1e-12);
}

TEST(CostModelTest, StepTimeIsMaxUnderAsyncSchedulingAndSumWithout) {
  // docs/baseline.md §4: GPU 10 ms and CPU 2 ms give 10 ms async, 12 ms sync; GPU 1 ms and CPU
  // 2 ms give 2 ms async.
  EXPECT_DOUBLE_EQ(CostModel::StepTime(10e-3, 2e-3, true), 10e-3);
  EXPECT_DOUBLE_EQ(CostModel::StepTime(10e-3, 2e-3, false), 12e-3);
  EXPECT_DOUBLE_EQ(CostModel::StepTime(1e-3, 2e-3, true), 2e-3);
  EXPECT_DOUBLE_EQ(CostModel::StepTime(1e-3, 2e-3, false), 3e-3);
}

TEST(CudaGraphSizes, LargestCaptureSizeFollowsMaxNumSeqs) {
  // min(2 · max_num_seqs, 512), then the largest size of 1, 2, 4, 8k (<= 248), 256 + 16k.
  EXPECT_EQ(MaxCudaGraphCaptureSize(1024), 512);
  EXPECT_EQ(MaxCudaGraphCaptureSize(256), 512);
  EXPECT_EQ(MaxCudaGraphCaptureSize(200), 400);
  EXPECT_EQ(MaxCudaGraphCaptureSize(135), 256);  // 270 -> 256 (next would be 272)
  EXPECT_EQ(MaxCudaGraphCaptureSize(127), 248);  // 254: no size between 248 and 256
  EXPECT_EQ(MaxCudaGraphCaptureSize(100), 200);
  EXPECT_EQ(MaxCudaGraphCaptureSize(3), 4);
  EXPECT_EQ(MaxCudaGraphCaptureSize(1), 2);
  EXPECT_EQ(MaxCudaGraphCaptureSize(0), 2);  // treated as one sequence
}

TEST(CudaGraphSizes, TokensRoundUpToTheNextCaptureSize) {
  EXPECT_EQ(CudaGraphPaddedTokens(0), 1);
  EXPECT_EQ(CudaGraphPaddedTokens(1), 1);
  EXPECT_EQ(CudaGraphPaddedTokens(2), 2);
  EXPECT_EQ(CudaGraphPaddedTokens(3), 4);
  EXPECT_EQ(CudaGraphPaddedTokens(5), 8);
  EXPECT_EQ(CudaGraphPaddedTokens(37), 40);
  EXPECT_EQ(CudaGraphPaddedTokens(40), 40);
  EXPECT_EQ(CudaGraphPaddedTokens(241), 248);
  EXPECT_EQ(CudaGraphPaddedTokens(249), 256);
  EXPECT_EQ(CudaGraphPaddedTokens(257), 272);
  EXPECT_EQ(CudaGraphPaddedTokens(512), 512);
}

}  // namespace
}  // namespace gimbal
