#include "model/specs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include <fmt/format.h>

namespace gimbal {

namespace {
double D(int v) {
  return static_cast<double>(v);
}
}  // namespace

double ModelSpec::AttentionParamsPerLayer() const {
  const double h = D(hidden);
  if (attention == AttentionKind::kMla) {
    const double qk_dim = D(head_dim + rope_head_dim);  // per head: no-rope part + rope part
    const double q = q_lora_rank > 0 ? h * q_lora_rank + D(q_lora_rank) * q_heads * qk_dim
                                     : h * q_heads * qk_dim;
    const double kv_down = h * (kv_lora_rank + rope_head_dim);  // latent + shared rope key
    const double kv_up = D(kv_lora_rank) * q_heads * (head_dim + v_head_dim);
    const double o = D(q_heads) * v_head_dim * h;
    return q + kv_down + kv_up + o;
  }
  const double q = h * (D(q_heads) * head_dim);
  const double kv = 2.0 * h * (D(kv_heads) * head_dim);
  const double o = D(q_heads) * head_dim * h;
  return q + kv + o;
}

double ModelSpec::KvBytesPerTokenLayer() const {
  if (attention == AttentionKind::kMla) return D(kv_lora_rank + rope_head_dim) * kv_bytes;
  return 2.0 * kv_heads * head_dim * kv_bytes;
}

double ModelSpec::AttentionScoreFlops(bool decode) const {
  // Two flops per multiply-add; one product for Q·K and one for P·V.
  if (attention == AttentionKind::kMla) {
    if (!decode) {
      // Prefill runs MLA unabsorbed (as vLLM and DeepSeek do): per-head keys of nope + rope
      // dimensions and values of v_head_dim, up-projected from the latent.
      return 2.0 * q_heads * (D(head_dim + rope_head_dim) + v_head_dim);
    }
    // Decode runs the absorbed form: queries meet the cached latent (+ rope key) directly, values
    // are the latent.
    return 2.0 * q_heads * (D(kv_lora_rank + rope_head_dim) + kv_lora_rank);
  }
  return 2.0 * q_heads * head_dim * 2.0;
}

double ModelSpec::ReplicatedParams() const {
  const double h = D(hidden);
  const double attention_params = D(layers) * AttentionParamsPerLayer();
  const double dense = D(dense_layers) * 3.0 * h * dense_ffn;
  const double shared = D(moe_layers()) * shared_experts * ExpertParams();
  const double router = D(moe_layers()) * h * experts;
  const double embeddings = 2.0 * vocab * h;  // input embedding and LM head, untied
  // RMSNorm weights: two per layer and a final one; MLA adds norms on the low-rank latents.
  double norms = D(layers) * 2.0 * h + h;
  if (attention == AttentionKind::kMla) norms += D(layers) * (kv_lora_rank + q_lora_rank);
  return attention_params + dense + shared + router + embeddings + norms;
}

double WeightsPerGpuBytes(const ModelSpec& m, int slots_per_gpu) {
  const double routed = D(slots_per_gpu) * m.moe_layers() * m.ExpertParams();
  return (m.ReplicatedParams() + routed) * m.weight_bytes;
}

Result<int64_t> KvCapacityTokens(const ModelSpec& m, const GpuSpec& g, const EngineConfig& e,
                                 int slots_per_gpu) {
  if (e.kv_capacity_tokens > 0) return e.kv_capacity_tokens;
  if (e.block_size <= 0) {
    return InvalidArgument(fmt::format("block_size must be positive, got {}", e.block_size));
  }
  if (e.gpu_memory_utilization <= 0 || e.gpu_memory_utilization > 1) {
    return InvalidArgument(
        fmt::format("gpu_memory_utilization must be in (0, 1], got {}", e.gpu_memory_utilization));
  }
  if (slots_per_gpu < 0) {
    return InvalidArgument(fmt::format("expert slots per GPU must be >= 0, got {}", slots_per_gpu));
  }
  const double per_token = m.KvBytesPerToken();
  if (!(per_token > 0)) {
    return InvalidArgument(
        fmt::format("model '{}' has no KV cache size (layers or heads are 0)", m.name));
  }
  const double usable = g.memory_bytes * e.gpu_memory_utilization;
  const double weights = WeightsPerGpuBytes(m, slots_per_gpu);
  const double free_bytes = usable - weights - e.activation_reserve_bytes;
  const double block_bytes = per_token * e.block_size;
  const double blocks = std::floor(free_bytes / block_bytes);
  if (blocks < 1) {
    return InvalidArgument(fmt::format(
        "model '{}' does not fit on GPU '{}': weights {:.1f} GB ({} expert slots per MoE layer) "
        "+ activation reserve {:.1f} GB + one KV block need {:.1f} GB, but only {:.1f} GB is "
        "usable ({:.1f} GB x gpu_memory_utilization {}): {:.2f} GB short; use more GPUs (fewer "
        "expert slots each), a GPU with more memory or a smaller activation reserve",
        m.name, g.name, weights / 1e9, slots_per_gpu, e.activation_reserve_bytes / 1e9,
        (weights + e.activation_reserve_bytes + block_bytes) / 1e9, usable / 1e9,
        g.memory_bytes / 1e9, e.gpu_memory_utilization, (block_bytes - free_bytes) / 1e9));
  }
  // Clamped before the cast (1e300 GiB of memory must not wrap); Cluster bounds the blocks.
  return static_cast<int64_t>(std::min(blocks, 1e15)) * e.block_size;
}

void ApplyVllmServerDefaults(const GpuSpec& gpu, EngineConfig& e) {
  std::string name = gpu.name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  if (gpu.memory_bytes >= 160 * kGiB) {
    e.max_num_batched_tokens = 16384;
    e.max_num_seqs = 1024;
    return;
  }
  const bool big = gpu.memory_bytes >= 70 * kGiB && name.find("a100") == std::string::npos &&
                   name.find("gb10") == std::string::npos;
  e.max_num_batched_tokens = big ? 8192 : 2048;
  e.max_num_seqs = big ? 1024 : 256;
}

}  // namespace gimbal
