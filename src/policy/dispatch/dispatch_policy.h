// DispatchPolicy: chooses the DP engine for each incoming request.
//
// A dispatch policy is a pure decider: it sees the request and one EngineView per engine (the
// engine's last snapshot, its age, the front end's exact accounting and the MoE pressure of its
// GPU) and returns an engine index. It performs no I/O, reads no clock (time comes in the request)
// and keeps no state between calls: what a baseline needs to remember (vLLM's local increment per
// pick, a round-robin cursor) is kept by the caller and handed in through EngineView and
// DispatchRequest. The same objects run in the simulator, the emulator and the live router.
//
// Policies are created by name from a registry (MakeDispatchPolicy), with parameters from the
// config; unknown names list the valid ones and unknown parameters are rejected.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/engine_state.h"
#include "core/params.h"
#include "core/random.h"
#include "core/request.h"
#include "core/status.h"

namespace gimbal {

class CostModel;

struct DispatchRequest {
  RequestId id = 0;
  double now = 0;  // the caller's clock, seconds
  int64_t prompt_tokens = 0;
  int64_t max_output_tokens = 0;  // the request's output limit when known, else 0
  uint64_t affinity_key = 0;      // 0: none
  uint64_t sequence = 0;          // the front end's count of dispatches before this one
  // Several front ends (API servers) may share the engines, each dispatching its own arrivals
  // with its own accounting (EngineView's inflight and picks_since_snapshot count only its own
  // requests). `frontends` is how many there are (values below 1 count as 1) and `frontend` which
  // one calls, in [0, frontends) (values outside are clamped). The defaults describe one front
  // end, as the live router is; policies that ignore front ends read neither.
  int frontends = 1;
  int frontend = 0;
  // The request's traffic class as its user declared it (the OpenAI `user` field, a header such
  // as x-gimbal-class, the model alias or adapter name, or the router's tenant map), as an index
  // into the deployment's classes; -1: no hint. Policies that use it read
  // EngineView::class_locality, which the caller fills only for hinted requests.
  int class_hint = -1;
};

class DispatchPolicy {
 public:
  virtual ~DispatchPolicy() = default;
  // Index of the chosen engine, never one with healthy == false; -1 when no engine is healthy.
  // `rng` breaks ties; the result is a pure function of the arguments and the rng state.
  // Thread-safe: Pick is const and policies hold no mutable state (give each thread its own rng).
  virtual int Pick(const DispatchRequest& req, std::span<const EngineView> engines,
                   Rng& rng) const = 0;
  virtual std::string name() const = 0;
  // How many front ends a deployment of this policy runs over `engines` engines when the caller
  // is not told (a simulated stack with frontends = 0): 1, one router, unless the policy models a
  // server that starts several (vLLM 0.33 starts one API server per DP rank). Always >= 1.
  virtual int DefaultFrontends(int /*engines*/) const { return 1; }
};

// What some policies need besides parameters. Pointers may be null when not available.
struct DispatchDeps {
  const CostModel* cost_model = nullptr;  // predictive policies
  int64_t max_num_batched_tokens = 8192;  // per-engine token budget
  // The engines' KV block size in tokens (the simulator: the engine's; the live router: its
  // prefix_cache.block_tokens); 0 when unknown. Peers that size their prefix blocks by the
  // engine's (llm-d autotunes to it, Dynamo reads it from the worker's card) default to it; 16
  // when unknown.
  int64_t kv_block_size = 0;
};

using DispatchFactory = std::function<Result<std::unique_ptr<DispatchPolicy>>(
    const Params& params, const DispatchDeps& deps)>;

// Registers a factory under `name`; false when the name is taken or empty. The built-in policies
// are registered by the registry itself on first use (see builtin_policies.h), so this is only
// for additional policies.
bool RegisterDispatchPolicy(const std::string& name, DispatchFactory factory);
// Builds the named policy; an unknown name gives an error listing DispatchPolicyNames(); unknown
// or malformed parameters give an error naming them.
Result<std::unique_ptr<DispatchPolicy>> MakeDispatchPolicy(const std::string& name,
                                                           const Params& params,
                                                           const DispatchDeps& deps = {});
std::vector<std::string> DispatchPolicyNames();

}  // namespace gimbal
