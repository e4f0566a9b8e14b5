// Internal entry point of the replica routing (replica_routing.cc), for tests: RouteAndEvaluateInto
// with its early exit switchable.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "policy/placement/placement_problem.h"

namespace gimbal {
namespace placement_internal {

// RouteAndEvaluateInto (placement_problem.h). With early_exit (what RouteAndEvaluateInto does),
// a candidate pass stops as soon as a lower bound on its objective shows it cannot beat the best
// so far; the result and the routes are bit for bit those without it. stopped_passes (when not
// null) is incremented once per pass stopped early.
//
// give_up (only without routes, with early_exit, and with weights and costs >= 0; else ignored):
// passes whose objective would reach give_up are stopped as soon as a lower bound shows it, or
// dropped at their end. When every pass is, the result has objective and max_load +infinity,
// and then the full evaluation's objective is at least give_up - 1e-12 (its best is within
// 1e-12 of its lowest pass). Otherwise the result is that of the passes below give_up, which is
// the full evaluation's, bit for bit, whenever *exact (when not null) is set true; when it is
// false (a pass within 1e-12 of give_up), a caller wanting exact figures evaluates again.
LayerEval RouteAndEvaluateWith(const LayerProblem& p, std::span<const int32_t> phy2log,
                               SourceRoutes* routes, bool early_exit, int* stopped_passes,
                               double give_up, bool* exact);

}  // namespace placement_internal
}  // namespace gimbal
