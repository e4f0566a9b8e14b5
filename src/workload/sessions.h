// Session workloads (kinds multiturn and agentic): conversations and agent tool loops whose every
// turn resends the whole history, with prefix identity by chained block hashes.
//
// A session's token sequence is a list of segments, each with a content id: the tenant's system
// prompt (id from the workload's seed and the tenant, so every session of a tenant shares it), the
// first message, then per turn the output and the next message (ids from the seed, the session and
// the turn, so nothing else is shared between sessions). The sequence is cut into blocks of
// B = PrefixHashTokens(spec) tokens; block j's entry is Combine(entry j-1, content of block j),
// the content being the (segment id, offset, length) pieces the block holds. An entry therefore
// identifies the whole prefix up to the end of its block, as Mooncake's hash_ids and vLLM's block
// hashes do: the same prefix gives the same entries in every request and on every engine. A
// request's prefix_hashes are the entries of the full blocks of its prompt (prompt / B, rounded
// down); a partial last block gets none, since the next turn fills it with other tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "workload/workload.h"

namespace gimbal {

struct SessionWorkload {
  std::vector<Request> requests;  // sorted by arrival (stable), ids 0..n-1
  // Per request, in the same order.
  std::vector<int64_t> session;  // session index, in order of session arrival (affinity_key - 1)
  std::vector<int64_t> turn;     // 0 = the first turn
  std::vector<int64_t> tenant;   // system-prompt tenant, -1 = none
  // With keep_sequence_hashes: the entries of the full blocks of the request's prompt followed by
  // its output (its prefix_hashes extended over the output), which the next turn's prompt starts
  // with. Empty otherwise.
  std::vector<std::vector<uint64_t>> sequence_hashes;
};

// Builds the requests of a multiturn or agentic spec (validated by the caller or here). Traffic
// classes are drawn per session by `class_weights`; every turn of a session gets affinity_key =
// session index + 1. Output lengths are cut to spec.max_tokens (when > 0) before the history is
// built, so the next turn resends what was really generated. InvalidArgument when the requests
// would exceed kMaxWorkloadRequests, their prefix hashes `max_hash_entries` (checked as they are
// made, so memory stays within 8 bytes times that), or their arrivals kMaxWorkloadSpanS.
Result<SessionWorkload> BuildSessions(const WorkloadSpec& spec,
                                      const std::vector<double>& class_weights, Rng& rng,
                                      bool keep_sequence_hashes = false,
                                      int64_t max_hash_entries = kMaxSessionHashEntries);

}  // namespace gimbal
