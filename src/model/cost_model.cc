#include "model/cost_model.h"

#include <algorithm>
#include <cmath>

namespace gimbal {

int64_t MaxCudaGraphCaptureSize(int64_t max_num_seqs) {
  const int64_t cap = std::min<int64_t>(2 * std::max<int64_t>(max_num_seqs, 1), 512);
  if (cap < 8) return cap >= 4 ? 4 : (cap >= 2 ? 2 : 1);
  if (cap < 256) return std::min<int64_t>(cap / 8 * 8, 248);
  return 256 + (cap - 256) / 16 * 16;
}

int64_t CudaGraphPaddedTokens(int64_t tokens) {
  if (tokens <= 1) return 1;
  if (tokens <= 2) return 2;
  if (tokens <= 4) return 4;
  if (tokens <= 248) return (tokens + 7) / 8 * 8;
  return std::max<int64_t>(256, (tokens + 15) / 16 * 16);
}

CostModel::CostModel(ModelSpec model, HardwareSpec hw)
    : model_(std::move(model)), hw_(std::move(hw)) {}

double CostModel::Roofline(double flops, double bytes, double mfu) const {
  const double compute = flops / (hw_.gpu.peak_flops * mfu);
  const double memory = bytes / (hw_.gpu.hbm_bandwidth * hw_.hbm_efficiency);
  return std::max(compute, memory);
}

double CostModel::AttentionTime(const RankBatch& b) const {
  if (b.tokens <= 0 && b.kv_read_tokens <= 0) return 0;
  const double params = model_.AttentionParamsPerLayer();
  const double linear_flops = 2.0 * params * static_cast<double>(b.tokens);
  const double score_flops =
      model_.AttentionScoreFlops(true) * b.decode_attn_pairs +
      model_.AttentionScoreFlops(false) * (b.attn_pairs - b.decode_attn_pairs);
  const double weight_bytes = params * model_.weight_bytes;
  const double kv_bytes = b.kv_read_tokens * model_.KvBytesPerTokenLayer();
  const double act_bytes = 2.0 * static_cast<double>(b.tokens) * model_.hidden * 2.0;
  // Projections and score products run as separate kernels: add their times.
  return Roofline(linear_flops, weight_bytes + act_bytes, hw_.mfu_dense) +
         Roofline(score_flops, kv_bytes, hw_.mfu_attention);
}

double CostModel::DenseFfnTime(int64_t tokens) const {
  if (tokens <= 0 || model_.dense_ffn <= 0) return 0;
  const double params = 3.0 * model_.hidden * model_.dense_ffn;
  return Roofline(2.0 * params * static_cast<double>(tokens), params * model_.weight_bytes,
                  hw_.mfu_dense);
}

double CostModel::SharedExpertTime(int64_t tokens) const {
  if (tokens <= 0 || model_.shared_experts <= 0) return 0;
  const double params = model_.ExpertParams() * model_.shared_experts;
  return Roofline(2.0 * params * static_cast<double>(tokens), params * model_.weight_bytes,
                  hw_.mfu_dense);
}

double CostModel::HeadTime(const RankBatch& b) const {
  if (b.logits <= 0) return 0;
  const double params = static_cast<double>(model_.vocab) * model_.hidden;
  return Roofline(2.0 * params * static_cast<double>(b.logits), params * model_.weight_bytes,
                  hw_.mfu_dense);
}

double CostModel::ExpertTime(double token_pairs, double active_experts) const {
  if (token_pairs <= 0 && active_experts <= 0) return 0;
  const double params = model_.ExpertParams();
  const double flops = 2.0 * params * token_pairs;
  const double bytes =
      active_experts * params * model_.weight_bytes + 2.0 * token_pairs * model_.hidden * 2.0;
  return Roofline(flops, bytes, hw_.mfu_expert);
}

double CostModel::AllToAllTime(double max_intra_node_bytes, double max_inter_node_bytes) const {
  double t = 0;
  if (max_intra_node_bytes > 0) {
    t = std::max(t, hw_.nvlink_latency +
                        max_intra_node_bytes / (hw_.gpu.nvlink_bandwidth * hw_.link_efficiency));
  }
  if (max_inter_node_bytes > 0) {
    t = std::max(
        t, hw_.nic_latency + max_inter_node_bytes / (hw_.gpu.nic_bandwidth * hw_.link_efficiency));
  }
  return t;
}

double CostModel::StepOverhead(int64_t sequences) const {
  return hw_.step_overhead + hw_.per_seq_overhead * static_cast<double>(sequences);
}

double CostModel::RankStepEstimate(const RankBatch& b, double expert_pairs, int ep_ranks,
                                   bool async_scheduling) const {
  const ModelSpec& m = model_;
  const double local =
      std::ceil(static_cast<double>(m.experts) / static_cast<double>(std::max(1, ep_ranks)));
  const double active = local > 0 ? local * (1.0 - std::exp(-expert_pairs / local)) : 0.0;
  double t = AttentionTime(b) * m.layers;
  t += DenseFfnTime(b.tokens) * m.dense_layers;
  t += (SharedExpertTime(b.tokens) + ExpertTime(expert_pairs, active)) * m.moe_layers();
  t += HeadTime(b);
  return StepTime(t, StepOverhead(b.sequences), async_scheduling);
}

}  // namespace gimbal
