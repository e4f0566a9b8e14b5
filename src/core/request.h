// Request: what a workload produces and every front door dispatches.
//
// Lengths are in tokens; `output_tokens` is what the engine will generate, which no front end knows
// in advance (it sees `max_tokens`). `traffic_class` indexes the scenario's traffic classes (code,
// math, chat, ...), which decide how the request's tokens are routed to experts; a live router does
// not know it. `affinity_key` groups related traffic (session, user, tenant or prompt prefix); 0
// means none. `prefix_hashes` are Mooncake-style block hashes of the prompt, empty when unknown.
#pragma once

#include <cstdint>
#include <vector>

namespace gimbal {

using RequestId = int64_t;
using EngineId = int32_t;

struct Request {
  RequestId id = 0;
  double arrival = 0;         // seconds since the workload's start
  int64_t prompt_tokens = 0;  // >= 1
  int64_t output_tokens = 0;  // >= 1: tokens to generate, including the first
  // The output cap the client sends (OpenAI max_tokens): all a front end knows of the output, so
  // what it reserves. >= output_tokens when set; 0 = the output length, as `vllm bench serve`
  // sends it.
  int64_t max_tokens = 0;
  int32_t traffic_class = 0;
  int64_t priority = 0;  // explicit priority (lower first), used by the priority queue policy
  uint64_t affinity_key = 0;
  std::vector<uint64_t> prefix_hashes;
};

}  // namespace gimbal
