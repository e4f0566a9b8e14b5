// The library behind `gimbal place`: load statistics, the current placement and a topology
// (placement_formats.h), plan with a named policy (timing the Plan call), score the plan and the
// current placement, and render the report as a table or JSON. Input errors come back as
// InvalidArgument naming the file; a report with a non-finite number is refused.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {

struct PlaceOptions {
  std::string stats_path;
  std::string current_path;  // empty: contiguous (Placement::Contiguous)
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
// {"policy", "plan_seconds", "placement": <placement JSON>, "quality": {...}, "current_quality":
// {...}}
std::string PlaceReportToJson(const PlaceReport& report);

}  // namespace gimbal
