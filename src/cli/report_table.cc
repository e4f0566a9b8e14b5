#include "cli/report_table.h"

#include <fmt/format.h>

namespace gimbal::cli {
namespace {

double Get(const nlohmann::ordered_json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0;
}

std::string Change(double base, double v) {
  if (base == 0) return "n/a";
  return fmt::format("{:+.1f}%", (v - base) / base * 100);
}

}  // namespace

void PrintComparison(std::ostream& out, const std::vector<nlohmann::ordered_json>& runs) {
  out << fmt::format(
      "{:<22} {:>6} {:>8} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8} {:>10} {:>7} {:>7}\n", "stack",
      "done", "req/s", "out tok/s", "TTFT mean", "TTFT p99", "TPOT mean", "TPOT p99", "ITL mean",
      "E2E mean", "preempt", "EP max/");
  out << fmt::format(
      "{:<22} {:>6} {:>8} {:>9} {:>10} {:>10} {:>9} {:>9} {:>8} {:>10} {:>7} {:>7}\n", "", "", "",
      "", "(ms)", "(ms)", "(ms)", "(ms)", "(ms)", "(ms)", "", "mean");
  for (const auto& r : runs) {
    int64_t preempt = 0;
    if (r.contains("engines")) {
      for (const auto& e : r["engines"]) preempt += e.value("preemptions", int64_t{0});
    }
    out << fmt::format(
        "{:<22} {:>6} {:>8.2f} {:>9.0f} {:>10.1f} {:>10.1f} {:>9.2f} {:>9.2f} {:>8.2f} {:>10.1f} "
        "{:>7} {:>7.3f}\n",
        r.value("stack", std::string("?")), r.value("completed", int64_t{0}),
        Get(r, "request_throughput"), Get(r, "output_throughput"), Get(r, "mean_ttft_ms"),
        Get(r, "p99_ttft_ms"), Get(r, "mean_tpot_ms"), Get(r, "p99_tpot_ms"), Get(r, "mean_itl_ms"),
        Get(r, "mean_e2el_ms"), preempt, Get(r, "expert_load_max_over_mean"));
  }
  if (runs.size() < 2) return;
  const auto& b = runs.front();
  out << fmt::format("\nchange against '{}':\n", b.value("stack", std::string("?")));
  out << fmt::format("{:<22} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "stack", "TTFT mean",
                     "TTFT p99", "TPOT mean", "req/s", "goodput");
  for (size_t i = 1; i < runs.size(); ++i) {
    const auto& r = runs[i];
    out << fmt::format("{:<22} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                       r.value("stack", std::string("?")),
                       Change(Get(b, "mean_ttft_ms"), Get(r, "mean_ttft_ms")),
                       Change(Get(b, "p99_ttft_ms"), Get(r, "p99_ttft_ms")),
                       Change(Get(b, "mean_tpot_ms"), Get(r, "mean_tpot_ms")),
                       Change(Get(b, "request_throughput"), Get(r, "request_throughput")),
                       Change(Get(b, "request_goodput"), Get(r, "request_goodput")));
  }
}

}  // namespace gimbal::cli
