// Model, GPU and topology specifications, loaded from the data files under data/.
//
// Every number in a data file carries its source in a `source:` field beside it. These structs
// are plain values; the cost model (cost_model.h) turns them into step times, and KvCapacity
// into KV-cache sizes. Units: bytes, FLOP/s, bytes/s, seconds.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace gimbal {

enum class AttentionKind { kGqa, kMla };

struct ModelSpec {
  std::string name;
  int hidden = 0;
  int layers = 0;        // decoder layers
  int dense_layers = 0;  // leading layers with a dense FFN instead of MoE
  int dense_ffn = 0;     // intermediate size of those dense FFNs
  int experts = 0;       // routed experts per MoE layer
  int top_k = 0;
  int shared_experts = 0;
  int expert_ffn = 0;  // intermediate size of one routed (and shared) expert
  int vocab = 0;
  AttentionKind attention = AttentionKind::kGqa;
  int q_heads = 0;
  int kv_heads = 0;           // GQA
  int head_dim = 0;           // GQA head dim; MLA: qk_nope_head_dim
  int v_head_dim = 0;         // MLA
  int q_lora_rank = 0;        // MLA (0: no low-rank query)
  int kv_lora_rank = 0;       // MLA
  int rope_head_dim = 0;      // MLA qk_rope_head_dim
  double weight_bytes = 2;    // bytes per parameter as served (bf16 2, fp8 1)
  double kv_bytes = 2;        // bytes per KV element
  double dispatch_bytes = 2;  // bytes per hidden element sent in the all-to-all dispatch
  double combine_bytes = 2;   // ... and in the combine

  int moe_layers() const { return layers - dense_layers; }
  // Attention projection parameters of one layer.
  double AttentionParamsPerLayer() const;
  // Parameters of one routed expert (gate, up, down).
  double ExpertParams() const { return 3.0 * hidden * expert_ffn; }
  // KV-cache bytes one token occupies in one layer.
  double KvBytesPerTokenLayer() const;
  double KvBytesPerToken() const { return KvBytesPerTokenLayer() * layers; }
  // FLOPs of the attention score and value products per (query token × context token), one layer.
  // MLA uses the absorbed form in decode and the unabsorbed one in prefill; GQA is the same in
  // both.
  double AttentionScoreFlops(bool decode = true) const;
  // Parameters every rank holds: attention, dense FFNs, shared experts, embeddings, head, norms.
  double ReplicatedParams() const;
  double TotalParams() const {
    return ReplicatedParams() + ExpertParams() * experts * moe_layers();
  }
};

struct GpuSpec {
  std::string name;
  double memory_bytes = 0;
  double peak_flops = 0;        // dense bf16 FLOP/s
  double hbm_bandwidth = 0;     // bytes/s
  double nvlink_bandwidth = 0;  // bytes/s per direction per GPU
  double nic_bandwidth = 0;     // bytes/s per direction per GPU (InfiniBand / RoCE)
};

// How the GPUs are wired and how efficiently kernels run. Efficiencies are fractions of peak.
struct HardwareSpec {
  GpuSpec gpu;
  int gpus_per_node = 8;
  double nvlink_latency = 0;   // seconds per all-to-all phase within a node
  double nic_latency = 0;      // seconds per all-to-all phase across nodes
  double mfu_dense = 0.5;      // attention projections, dense FFN, head
  double mfu_attention = 0.4;  // attention score/value products
  double mfu_expert = 0.45;    // grouped expert GEMMs
  double hbm_efficiency = 0.8;
  double link_efficiency = 0.7;  // achieved fraction of link bandwidth in all-to-all
  double comm_overlap = 0;  // fraction of min(compute, all-to-all) hidden by micro-batch overlap
  double step_overhead = 0.002;    // CPU scheduling, sampling and launch per step, seconds
  double per_seq_overhead = 5e-6;  // added CPU time per sequence in the batch, seconds
};

// vLLM-style engine settings.
struct EngineConfig {
  int64_t max_num_batched_tokens = 8192;
  int64_t max_num_seqs = 1024;
  // vLLM 0.34's defaults (docs/baseline.md, "vLLM 0.34.0"): KV blocks of 64 tokens
  // (config/cache.py, DEFAULT_BLOCK_SIZE; 16 in 0.33), and the KV cache sized after warm-up from
  // the whole GPU less the weights, the activation peak and 512 MiB outside PyTorch
  // (gpu_memory_utilization None; 0.33: 92% of the GPU less weights and activations). Here: all
  // of the memory, less the weights and a 4.5 GB reserve (a 4 GB activation and CUDA-graph peak
  // plus the 0.5 GiB). vLLM 0.33's engine: 16, 0.92 and 4 GB.
  int block_size = 64;
  double gpu_memory_utilization = 1.0;
  double activation_reserve_bytes = 4.5e9;  // activations, CUDA graphs, non-torch memory
  int64_t kv_capacity_tokens = 0;           // when > 0, overrides the memory-derived capacity
  // Engine behaviour of vLLM 0.33 and 0.34 (docs/baseline.md), each switchable so that the 2025
  // engine model (all off, interval 1) stays reproducible.
  bool enable_prefix_caching = true;      // automatic prefix caching (block hashes, LRU eviction)
  bool reserve_full_isl = true;           // admission needs blocks for the whole current sequence
  bool async_scheduling = true;           // CPU overhead overlaps the GPU step; late slot release
  int64_t prefill_schedule_interval = 1;  // MoE DP prefill cadence in steps; 1 = off
  bool cuda_graph_padding = true;         // small batches pad to a capture size, then the DP max
  // vLLM 0.34's cache-aware admission (docs/baseline.md, row 10): within the first N waiting
  // requests, those with a deeper cached prefix go first once KV usage reaches the threshold.
  // vLLM's defaults: 0 (off) and 0.5.
  int64_t cache_aware_admission_window = 0;
  double cache_aware_admission_threshold = 0.5;
  // Prompt tokens each Request::prefix_hashes entry covers; 0 = block_size. Set from the workload
  // (PrefixHashTokens: 512 for Mooncake traces), not a scenario key.
  int64_t prefix_hash_tokens = 0;
};

// vLLM 0.33's OpenAI-server scheduler defaults for `gpu` (vllm/engine/arg_utils.py,
// EngineArgs.get_batch_defaults; docs/baseline.md §8): 16384 batched tokens and 1024 sequences on
// GPUs with at least 160 GiB (B200, B300); 8192 and 1024 on GPUs with at least 70 GiB that are
// neither A100 nor GB10 (by name); else 2048 and 256. Sets only those two fields of `e`.
void ApplyVllmServerDefaults(const GpuSpec& gpu, EngineConfig& e);

// Parameters held on one GPU when it hosts `slots_per_gpu` expert slots per MoE layer.
double WeightsPerGpuBytes(const ModelSpec& m, int slots_per_gpu);
// KV capacity in tokens of one rank (rounded down to whole blocks); an error when the weights and
// reserve do not fit in the usable memory.
Result<int64_t> KvCapacityTokens(const ModelSpec& m, const GpuSpec& g, const EngineConfig& e,
                                 int slots_per_gpu);

}  // namespace gimbal
