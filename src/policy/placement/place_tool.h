// The library behind `gimbal place`: read statistics, current placement and topology files, plan
// with a named policy, score the plan and the current placement, and render the report.
//
// Placement JSON (written, and read for --current; see docs/placement.md):
//   {"format": "gimbal.placement/1", "layers": L, "experts": E, "gpus": G, "slots_per_gpu": K,
//    "phy2log": [[expert of slot 0, ...], ... per layer],
//    "logcnt": [[replicas of expert 0, ...], ...], "log2phy": [[[slots of expert 0], ...], ...],
//    "sources": S, "source_routes": [[[[[slot, weight], ...] per expert] per source] per layer]}
// Only the shape and phy2log are read back; logcnt, log2phy and source_routes are derived.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

Result<Placement> ParsePlacementJson(const std::string& text, const std::string& name);
Result<Placement> LoadPlacement(const std::string& path);
std::string PlacementToJson(const Placement& placement);

struct PlaceOptions {
  std::string stats_path;
  std::string current_path;   // empty: contiguous (Placement::Contiguous)
  std::string topology_path;
  std::string policy = "gimbal";
  std::vector<std::string> sets;  // "key=value" policy parameters
};

struct PlaceReport {
  std::string policy;
  SourceExpertCounts stats;
  PlacementTopology topology;
  Placement current, plan;
  PlacementQuality quality, current_quality;
  double plan_seconds = 0;  // wall time of the policy's Plan call
};

Result<PlaceReport> RunPlace(const PlaceOptions& options);
// A table: one row per layer and a total row, for the plan and the current placement.
std::string FormatPlaceReport(const PlaceReport& report);
// {"policy", "plan_seconds", "placement": <placement JSON>, "quality": {...}, "current_quality": {...}}
std::string PlaceReportToJson(const PlaceReport& report);

}  // namespace gimbal
