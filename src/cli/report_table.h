// Tables for the terminal: stacks side by side, and each stack's change against the first.
#pragma once

#include <ostream>
#include <vector>

#include <nlohmann/json.hpp>

namespace gimbal::cli {

// One row per run: throughput, TTFT, TPOT, ITL, E2E, preemptions, expert balance; then the
// percentage change of the headline figures of every run against the first one.
void PrintComparison(std::ostream& out, const std::vector<nlohmann::ordered_json>& runs);

}  // namespace gimbal::cli
