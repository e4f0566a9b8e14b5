// Small hand-made model, hardware and policies for simulator tests.
#pragma once

#include <string>
#include <vector>

#include "core/random.h"
#include "core/request.h"
#include "model/specs.h"
#include "policy/queue/queue_policy.h"
#include "sim/cluster.h"

namespace gimbal::sim::testing {

// A 4-layer GQA MoE model with 8 experts, top-2.
inline ModelSpec TinyModel() {
  ModelSpec m;
  m.name = "tiny-moe";
  m.hidden = 1024;
  m.layers = 4;
  m.experts = 8;
  m.top_k = 2;
  m.expert_ffn = 512;
  m.vocab = 32000;
  m.attention = AttentionKind::kGqa;
  m.q_heads = 8;
  m.kv_heads = 2;
  m.head_dim = 128;
  return m;
}

inline HardwareSpec TinyHardware() {
  HardwareSpec h;
  h.gpu.name = "test-gpu";
  h.gpu.memory_bytes = 80e9;
  h.gpu.peak_flops = 1e15;
  h.gpu.hbm_bandwidth = 3e12;
  h.gpu.nvlink_bandwidth = 400e9;
  h.gpu.nic_bandwidth = 50e9;
  h.gpus_per_node = 8;
  h.nvlink_latency = 20e-6;
  h.nic_latency = 40e-6;
  h.step_overhead = 1e-3;
  h.per_seq_overhead = 0;
  return h;
}

inline ClusterSpec TinyCluster(int dp) {
  ClusterSpec c;
  c.model = TinyModel();
  c.hardware = TinyHardware();
  c.dp = dp;
  c.engine.max_num_batched_tokens = 2048;
  c.engine.max_num_seqs = 256;
  c.engine.activation_reserve_bytes = 1e9;
  return c;
}

// Poisson arrivals at `rate`; prompts uniform in [prompt_min, prompt_min + prompt_span), outputs
// in [output_min, output_min + output_span), classes uniform over `classes`.
inline std::vector<Request> PoissonWorkload(int n, double rate, uint64_t seed, int64_t prompt_min,
                                            uint64_t prompt_span, int64_t output_min,
                                            uint64_t output_span, int classes = 2) {
  Rng rng(seed);
  std::vector<Request> out;
  double t = 0;
  for (int i = 0; i < n; ++i) {
    t += rng.Exponential(rate);
    Request r;
    r.id = i;
    r.arrival = t;
    r.prompt_tokens = prompt_min + static_cast<int64_t>(rng.UniformInt(prompt_span));
    r.output_tokens = output_min + static_cast<int64_t>(rng.UniformInt(output_span));
    r.traffic_class = static_cast<int32_t>(rng.UniformInt(static_cast<uint64_t>(classes)));
    out.push_back(r);
  }
  return out;
}

class FcfsForTest : public QueuePolicy {
 public:
  double Key(const QueueEntry& e) const override { return e.arrival; }
  std::string name() const override { return "fcfs-test"; }
};

}  // namespace gimbal::sim::testing
