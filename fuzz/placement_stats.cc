// Fuzz target: the files `gimbal place` reads (placement/placement_formats.h). The whole input
// goes through each reader: ParseRoutingStatsJson (routing statistics), ParsePlacementJson
// (--current) and ParseTopology (--topology, YAML or JSON). An input of parts separated by a line
// "====" is read as stats ==== topology [==== current placement]; when all parse and fit together
// (CheckPlacementInputs) and the instance is small, it is planned with the "gimbal" and "eplb"
// policies and scored, as `gimbal place` does.
// Invariants: never crashes; what a reader accepts validates, and round-trips through its writer
// (RoutingStatsToJson, PlacementToJson); a plan validates, keeps the current shape, and scores
// without NaN.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/params.h"
#include "fuzz_check.h"
#include "placement/placement_formats.h"
#include "policy/placement/placement.h"
#include "policy/placement/placement_policy.h"
#include "policy/placement/placement_problem.h"
#include "policy/placement/routing_stats.h"

namespace gimbal {
namespace {

void CheckStats(const std::string& text) {
  auto s = ParseRoutingStatsJson(text, "stats.json");
  if (!s.ok()) return;
  const Status v = s->Validate();
  FUZZ_CHECK(v.ok(), v.message());
  auto again = ParseRoutingStatsJson(RoutingStatsToJson(*s), "again.json");
  FUZZ_CHECK(again.ok(), again.status().message());
  FUZZ_CHECK(again->layers == s->layers && again->sources == s->sources &&
                 again->experts == s->experts && again->counts == s->counts,
             "routing statistics do not round trip");
}

void CheckPlacement(const std::string& text) {
  auto p = ParsePlacementJson(text, "current.json");
  if (!p.ok()) return;
  const Status v = p->Validate();
  FUZZ_CHECK(v.ok(), v.message());
  auto again = ParsePlacementJson(PlacementToJson(*p), "again.json");
  FUZZ_CHECK(again.ok(), again.status().message());
  FUZZ_CHECK(again->layers == p->layers && again->experts == p->experts && again->gpus == p->gpus &&
                 again->slots_per_gpu == p->slots_per_gpu && again->phy2log == p->phy2log,
             "placement does not round trip");
}

void CheckTopology(const std::string& text) {
  auto t = ParseTopology(text, "topology.yaml");
  if (!t.ok()) return;
  const Status v = t->Validate();
  FUZZ_CHECK(v.ok(), v.message());
}

void CheckQuality(const Result<PlacementQuality>& q, size_t layers) {
  FUZZ_CHECK(q.ok(), q.status().message());
  FUZZ_CHECK(q->layers.size() == layers, std::to_string(q->layers.size()));
  FUZZ_CHECK(!std::isnan(q->objective), "NaN objective");
  FUZZ_CHECK(!std::isnan(q->mean_max_over_mean), "NaN max/mean");
  FUZZ_CHECK(q->experts_moved >= 0, std::to_string(q->experts_moved));
}

void Plan(const std::vector<std::string>& parts) {
  auto stats = ParseRoutingStatsJson(parts[0], "stats.json");
  if (!stats.ok()) return;
  auto topo = ParseTopology(parts[1], "topology.yaml");
  if (!topo.ok()) return;
  // Small instances only: the planners are not what this target looks at.
  if (stats->counts.size() > 4096 || stats->layers > 8 || topo->gpus > 32) {
    return;
  }
  Result<Placement> current = parts.size() > 2 ? ParsePlacementJson(parts[2], "current.json")
                                               : DefaultCurrentPlacement(*stats, *topo);
  if (!current.ok()) return;
  if (static_cast<int64_t>(current->gpus) * current->slots_per_gpu > 256) return;
  if (!CheckPlacementInputs(*stats, *current, *topo).ok()) return;
  for (const char* name : {"gimbal", "eplb"}) {
    auto policy = MakePlacementPolicy(name, Params{});
    FUZZ_CHECK(policy.ok(), policy.status().message());
    auto plan = (*policy)->Plan(*stats, *current, *topo);
    if (!plan.ok()) continue;
    const Status v = plan->Validate();
    FUZZ_CHECK(v.ok(), std::string(name) + ": " + v.message());
    FUZZ_CHECK(plan->layers == current->layers && plan->experts == current->experts &&
                   plan->gpus == current->gpus && plan->slots_per_gpu == current->slots_per_gpu,
               std::string(name) + ": the plan changed the shape");
    const ObjectiveWeights w = (*policy)->weights();
    CheckQuality(EvaluatePlacement(*stats, *plan, *current, *topo, w),
                 static_cast<size_t>(stats->layers));
  }
  CheckQuality(EvaluatePlacement(*stats, *current, *current, *topo, ObjectiveWeights{}),
               static_cast<size_t>(stats->layers));
}

}  // namespace
}  // namespace gimbal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(gimbal::fuzz::AsText(data, size));
  gimbal::CheckStats(text);
  gimbal::CheckPlacement(text);
  gimbal::CheckTopology(text);

  constexpr std::string_view kSeparator = "\n====\n";
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() < 3) {
    const size_t sep = text.find(kSeparator, start);
    parts.push_back(text.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos) break;
    start = sep + kSeparator.size();
  }
  if (parts.size() >= 2) gimbal::Plan(parts);
  return 0;
}
