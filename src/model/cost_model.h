// CostModel: roofline estimates of the pieces of one lockstep DP+EP step.
//
// Each piece is max(FLOPs / (peak · MFU), bytes / (bandwidth · efficiency)) for one layer on one
// rank or GPU; the simulator composes them (DESIGN §4): per layer, the slowest rank's attention
// and dense work, the dispatch all-to-all, the slowest GPU's expert work and the combine
// all-to-all; then the LM head and a per-step CPU overhead. Weights are read once per step per
// layer (per active expert for routed experts). All methods are pure and cheap.
#pragma once

#include <cstdint>

#include "model/specs.h"

namespace gimbal {

// What one rank computes in one step.
struct RankBatch {
  int64_t tokens = 0;            // new tokens: prefill chunk tokens + one per decoding sequence
  int64_t sequences = 0;         // sequences in the batch
  int64_t logits = 0;            // sequences that sample a token this step
  double attn_pairs = 0;         // query·key pairs: Σ new · (context_before + (new + 1) / 2)
  double decode_attn_pairs = 0;  // the part of attn_pairs from one-token (decode) sequences
  double kv_read_tokens = 0;     // Σ (context_before + new) over sequences: KV entries read
};

// CUDA-graph capture sizes as vLLM builds them by default (config/vllm.py): 1, 2, 4, then
// multiples of 8 up to 248, then multiples of 16, up to min(2 · max_num_seqs, 512) (one query
// token per decode; no speculative decoding). Returns the largest size in that list (>= 1).
int64_t MaxCudaGraphCaptureSize(int64_t max_num_seqs);
// `tokens` rounded up to the smallest capture size that holds it (tokens <= 1 gives 1); tokens
// must be <= MaxCudaGraphCaptureSize(...) for the result to be a capture size.
int64_t CudaGraphPaddedTokens(int64_t tokens);

class CostModel {
 public:
  CostModel(ModelSpec model, HardwareSpec hw);

  // Attention (projections, score/value products, KV reads) of one layer on one rank.
  double AttentionTime(const RankBatch& b) const;
  // The dense FFN of one dense layer for `tokens` tokens.
  double DenseFfnTime(int64_t tokens) const;
  // The shared experts of one MoE layer for `tokens` tokens (0 when the model has none).
  double SharedExpertTime(int64_t tokens) const;
  // Embedding lookup and LM head once per step.
  double HeadTime(const RankBatch& b) const;
  // Routed-expert compute of one GPU in one layer: `token_pairs` token-expert assignments and
  // `active_experts` expert replicas that received at least one token (may be fractional, an
  // expectation).
  double ExpertTime(double token_pairs, double active_experts) const;
  // One all-to-all phase given the largest per-GPU volume crossing NVLink and crossing the
  // network (bytes, in or out, whichever is larger); 0 volume costs nothing.
  double AllToAllTime(double max_intra_node_bytes, double max_inter_node_bytes) const;
  // CPU time per step: fixed part plus a per-sequence part.
  double StepOverhead(int64_t sequences) const;
  // A step's wall time from its GPU time and its CPU overhead. With async scheduling (vLLM's
  // default since it plans step k+1 while step k runs) the CPU work hides behind the GPU step
  // unless it is longer: max(gpu, cpu); without it the two run serially: gpu + cpu.
  static double StepTime(double gpu_seconds, double cpu_seconds, bool async_scheduling) {
    return async_scheduling ? (gpu_seconds > cpu_seconds ? gpu_seconds : cpu_seconds)
                            : gpu_seconds + cpu_seconds;
  }
  // One rank's own step time with the all-to-all left out — the policies' estimate of a rank's
  // next step: attention and dense layers for `b`, shared experts for its tokens, routed experts
  // for `expert_pairs` token-expert pairs spread over its GPU's experts / ep_ranks experts (the
  // expected number of them hit), LM head and CPU overhead, the overhead added serially or, with
  // `async_scheduling`, hidden behind the GPU part as StepTime() does.
  double RankStepEstimate(const RankBatch& b, double expert_pairs, int ep_ranks,
                          bool async_scheduling = false) const;
  // Bytes one token carries in the dispatch / combine phase for one expert assignment.
  double DispatchBytesPerToken() const { return model_.hidden * model_.dispatch_bytes; }
  double CombineBytesPerToken() const { return model_.hidden * model_.combine_bytes; }

  const ModelSpec& model() const { return model_; }
  const HardwareSpec& hardware() const { return hw_; }

 private:
  double Roofline(double flops, double bytes, double mfu) const;

  ModelSpec model_;
  HardwareSpec hw_;
};

}  // namespace gimbal
