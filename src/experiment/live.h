// Live runs as a second source of `gimbal report`.
//
// A live folder (scripts/live-demo.sh writes one) holds a manifest `live.json`,
//   {"format": "gimbal.live/1", "scenario": LABEL, "rate": R, "seed": S, "time_scale": X,
//    "description": TEXT, "runs": [{"stack": NAME, "bench_json": FILE}, ...]}
// and, for each run, FILE: the result of `gimbal bench --json FILE` (with --save-detailed, its
// per-request arrays too) against `gimbal serve` over `gimbal engine`. `scenario`, `rate` (req/s
// in the model's time), `seed` and each run's `stack` name the simulated points the run is
// compared with: the same scenario label, stack and rate in the experiment's results.json.
//
// Times are converted to the model's clock: the emulator sleeps each step's modelled duration ×
// time_scale, so live times (`*_ms`, `duration`) are divided by time_scale and rates
// (`*_throughput`, `request_goodput`) multiplied by it. time_scale 1 (real time) changes nothing.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace gimbal::experiment {

// Reads `live_dir`/live.json and its bench results; returns the points (source "live", with id,
// scenario, rate, stack, seed, num_requests, summary = the bench keys). With per-request arrays in
// a bench result, writes `requests_dir`/live__<stack>.requests.csv (the columns of a simulated
// point's request CSV; e2el_ms is TTFT plus the inter-token gaps) and sets the point's
// "requests_path" to it. Errors name the file and the key.
Result<nlohmann::ordered_json> LoadLivePoints(const std::string& live_dir,
                                              const std::string& requests_dir);

// The metrics of the simulated-versus-live table, in order.
const std::vector<std::string>& LiveComparisonMetrics();

// For each live point, the simulated points (source "sim") of the same scenario, stack and rate
// (relative tolerance 1e-6), of the live seed when there are such points, else of every seed:
//   {"metrics": [...], "rows": [{"scenario", "rate", "stack", "sim_seeds": [..], "live_seed",
//     "metrics": {M: {"sim", "live", "gap_pct"}}}], "unmatched": ["stack", ...]}
// `sim` is the mean over the matched seeds; gap_pct = (live − sim) / sim × 100 (null when sim
// is 0). Live points with no simulated match are listed in "unmatched".
nlohmann::ordered_json LiveComparison(const nlohmann::ordered_json& points);

}  // namespace gimbal::experiment
