// Metrics: per-request records and the summary `vllm bench serve` reports.
//
// Key names follow vLLM's benchmark JSON (mean_ttft_ms, p99_tpot_ms, request_throughput, ...), so
// simulated, emulated and real runs compare column for column. TTFT is first token − arrival at
// the front end; TPOT is (finish − first token) / (output − 1) per request with output > 1; ITL is
// every gap between consecutive tokens of a request; E2EL is finish − arrival. Duration runs from
// the first arrival to the last finish. Goodput counts requests meeting every SLO that is set.
// Beyond vLLM's keys: `p999_ttft_ms` when at least 1,000 requests completed, and
// `ttft_by_prompt_decile`, the completed requests ordered by prompt length (ties by id) and cut
// into ten equal-count groups (the first n mod 10 one larger; empty below ten requests), each with
// its prompt-length range and mean and p99 TTFT — so a tail traded for a mean shows by length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gimbal::sim {

struct RequestRecord {
  int64_t id = 0;
  int32_t engine = -1;
  int32_t traffic_class = 0;
  double arrival = 0;
  double first_token = -1;
  double finish = -1;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  int preemptions = 0;
  bool completed() const { return finish >= 0; }
};

// A histogram with 1% relative resolution for values in [1e-7, 330] seconds: exact count and
// sum, percentiles to within 1%.
class LogHistogram {
 public:
  LogHistogram();
  void Add(double v, double count = 1);
  double count() const { return count_; }
  double Mean() const { return count_ > 0 ? sum_ / count_ : 0; }
  double Percentile(double p) const;  // p in [0, 100]
  double StdDev() const;

 private:
  std::vector<double> buckets_;
  double count_ = 0, sum_ = 0, sum_sq_ = 0;
};

struct Slo {
  double ttft_ms = 0;  // 0: not set
  double tpot_ms = 0;
  double e2el_ms = 0;
};

// Fills the `vllm bench serve` keys into `out` from the records and the ITL histogram.
void Summarise(const std::vector<RequestRecord>& records, const LogHistogram& itl, const Slo& slo,
               nlohmann::ordered_json& out);

}  // namespace gimbal::sim
