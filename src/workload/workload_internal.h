// Pieces shared between the files of src/workload; not part of the public interface.
#pragma once

#include <vector>

#include "workload/workload.h"

namespace gimbal::internal {

// InvalidArgument unless `weights` is non-empty, finite, >= 0 and not all zero.
Status CheckClassWeights(const std::vector<double>& weights);

// InvalidArgument unless a trace spec's time_scale, start_offset and max_requests are in range.
Status CheckTraceOptions(const WorkloadSpec& spec);

// InvalidArgument naming workload.<name> unless `d` is a valid length distribution.
Status CheckLengthDist(const LengthDist& d, const char* name);

// The ranges of a multiturn or agentic spec's session fields (sessions.cc); arrivals are checked
// by ValidateWorkloadSpec.
Status CheckSessionSpec(const WorkloadSpec& spec);

// The session generator behind BuildWorkload (sessions.h, BuildSessions).
Result<std::vector<Request>> BuildSessionRequests(const WorkloadSpec& spec,
                                                  const std::vector<double>& class_weights,
                                                  Rng& rng);

// The synthetic generator behind BuildWorkload (spec already validated).
Result<std::vector<Request>> BuildSynthetic(const WorkloadSpec& spec,
                                            const std::vector<double>& class_weights, Rng& rng);

}  // namespace gimbal::internal
