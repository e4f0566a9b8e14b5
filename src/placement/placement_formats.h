// The file formats of the placement tools: routing statistics (JSON), topologies (YAML or JSON)
// and placements (JSON), parsed from text, loaded from files and written back. The planners of
// src/policy/placement work on the values only; `gimbal place`, the engine emulator's HTTP
// endpoints and the fuzz targets read and write them through this header. Schemas with examples:
// docs/placement.md.
//
// Routing statistics (SourceExpertCounts):
//   {"format": "gimbal.routing_stats/1", "layers": L, "sources": S, "experts": E,
//    "counts": [[[A[0][0][0], ..., A[0][0][E-1]], ... S rows], ... L layers]}
// `format` is optional. Counts must pass SourceExpertCounts::Validate; the shape is capped at
// kMaxRoutingCells counts before anything is allocated. Statistics and placements are scanned
// (json_scan.h), not built into a document: memory stays near 8 bytes per count, and arrays or
// objects under other keys are dropped unread (they used to be built, at up to 30 times the
// file's size).
//
// Topology (PlacementTopology), YAML or JSON:
//   {gpus, gpus_per_node, alpha, beta, slots_per_gpu, expert_groups, expert_bytes}
// Unknown keys are errors; costs are bounded by kMaxHopCost and kMaxExpertBytes.
//
// Placement:
//   {"format": "gimbal.placement/1", "layers": L, "experts": E, "gpus": G, "slots_per_gpu": K,
//    "phy2log": [[expert of slot 0, ...], ... per layer],
//    "logcnt": [[replicas of expert 0, ...], ...], "log2phy": [[[slots of expert 0], ...], ...],
//    "sources": S, "source_routes": [[[[[slot, weight], ...] per expert] per source] per layer]}
// Only the shape and phy2log are read back; logcnt, log2phy and source_routes are derived (the
// last two keys are written only when the placement has routes).
//
// Every reader returns InvalidArgument whose message starts with `name` (the file, or where the
// text came from) and says what is wrong and where. Loaders read regular files or pipes up to a
// size cap (ReadConfigFile): kMaxRoutingStatsFileBytes for statistics and placements.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

// The largest statistics or placement file read: 1 GiB.
inline constexpr int64_t kMaxRoutingStatsFileBytes = int64_t{1} << 30;

Result<SourceExpertCounts> ParseRoutingStatsJson(const std::string& text, const std::string& name);
Result<SourceExpertCounts> LoadRoutingStats(const std::string& path);
std::string RoutingStatsToJson(const SourceExpertCounts& stats);

Result<PlacementTopology> ParseTopology(const std::string& text, const std::string& name);
Result<PlacementTopology> LoadTopology(const std::string& path);

Result<Placement> ParsePlacementJson(const std::string& text, const std::string& name);
Result<Placement> LoadPlacement(const std::string& path);
std::string PlacementToJson(const Placement& placement);
// The placement as a JSON value (what PlacementToJson dumps), to embed in a larger document.
nlohmann::json PlacementJsonValue(const Placement& placement);

}  // namespace gimbal
