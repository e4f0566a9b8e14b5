#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

#include "core/stats.h"

namespace gimbal::sim {
namespace {

constexpr double kMin = 1e-7;
constexpr double kRatio = 1.01;
const double kLogRatio = std::log(kRatio);
constexpr int kBuckets = 2200;  // up to kMin · 1.01^2200 ≈ 330 s

int BucketOf(double v) {
  if (v <= kMin) return 0;
  const int b = static_cast<int>(std::log(v / kMin) / kLogRatio) + 1;
  return std::min(b, kBuckets - 1);
}

double BucketValue(int b) {
  if (b == 0) return kMin;
  // Geometric middle of the bucket.
  return kMin * std::pow(kRatio, b - 0.5);
}

void Put(nlohmann::ordered_json& out, const std::string& name, std::vector<double>& xs) {
  std::sort(xs.begin(), xs.end());
  out["mean_" + name + "_ms"] = Mean(xs) * 1e3;
  out["median_" + name + "_ms"] = PercentileSorted(xs, 50) * 1e3;
  out["std_" + name + "_ms"] = StdDev(xs) * 1e3;
  out["p90_" + name + "_ms"] = PercentileSorted(xs, 90) * 1e3;
  out["p99_" + name + "_ms"] = PercentileSorted(xs, 99) * 1e3;
}

// TTFT by prompt-length decile: completed requests ordered by prompt length (ties by id), cut
// into ten groups of equal count (the first ones one larger when the count does not divide).
nlohmann::ordered_json PromptDeciles(const std::vector<const RequestRecord*>& done) {
  std::vector<const RequestRecord*> by_len = done;
  std::sort(by_len.begin(), by_len.end(), [](const RequestRecord* a, const RequestRecord* b) {
    return a->prompt_tokens != b->prompt_tokens ? a->prompt_tokens < b->prompt_tokens
                                                : a->id < b->id;
  });
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  const size_t n = by_len.size();
  if (n < 10) return out;  // no deciles for fewer than ten requests
  size_t begin = 0;
  for (size_t d = 0; d < 10; ++d) {
    const size_t size = n / 10 + (d < n % 10 ? 1 : 0);
    std::vector<double> ttft;
    for (size_t i = begin; i < begin + size; ++i) {
      ttft.push_back(by_len[i]->first_token - by_len[i]->arrival);
    }
    std::sort(ttft.begin(), ttft.end());
    out.push_back({{"decile", d + 1},
                   {"requests", size},
                   {"prompt_tokens_min", by_len[begin]->prompt_tokens},
                   {"prompt_tokens_max", by_len[begin + size - 1]->prompt_tokens},
                   {"mean_ttft_ms", Mean(ttft) * 1e3},
                   {"p99_ttft_ms", PercentileSorted(ttft, 99) * 1e3}});
    begin += size;
  }
  return out;
}

}  // namespace

LogHistogram::LogHistogram() : buckets_(kBuckets, 0.0) {}

void LogHistogram::Add(double v, double count) {
  buckets_[BucketOf(v)] += count;
  count_ += count;
  sum_ += v * count;
  sum_sq_ += v * v * count;
}

double LogHistogram::Percentile(double p) const {
  if (count_ <= 0) return 0;
  const double target = std::clamp(p, 0.0, 100.0) / 100.0 * count_;
  double acc = 0;
  for (int b = 0; b < kBuckets; ++b) {
    acc += buckets_[b];
    if (acc >= target && buckets_[b] > 0) return BucketValue(b);
  }
  return BucketValue(kBuckets - 1);
}

double LogHistogram::StdDev() const {
  if (count_ < 2) return 0;
  const double m = Mean();
  return std::sqrt(std::max(0.0, sum_sq_ / count_ - m * m));
}

void Summarise(const std::vector<RequestRecord>& records, const LogHistogram& itl, const Slo& slo,
               nlohmann::ordered_json& out) {
  std::vector<double> ttft, tpot, e2el;
  std::vector<const RequestRecord*> done;
  int64_t completed = 0, input = 0, output = 0, good = 0;
  double first_arrival = records.empty() ? 0 : records.front().arrival;
  double last_finish = first_arrival;
  for (const auto& r : records) {
    first_arrival = std::min(first_arrival, r.arrival);
    if (!r.completed()) continue;
    completed++;
    done.push_back(&r);
    input += r.prompt_tokens;
    output += r.output_tokens;
    last_finish = std::max(last_finish, r.finish);
    const double t = r.first_token - r.arrival;
    const double e = r.finish - r.arrival;
    ttft.push_back(t);
    e2el.push_back(e);
    double tp = 0;
    if (r.output_tokens > 1) {
      tp = (r.finish - r.first_token) / static_cast<double>(r.output_tokens - 1);
      tpot.push_back(tp);
    }
    const bool ok = (slo.ttft_ms <= 0 || t * 1e3 <= slo.ttft_ms) &&
                    (slo.tpot_ms <= 0 || tp * 1e3 <= slo.tpot_ms) &&
                    (slo.e2el_ms <= 0 || e * 1e3 <= slo.e2el_ms);
    good += ok ? 1 : 0;
  }
  const double duration = std::max(last_finish - first_arrival, 1e-9);
  out["completed"] = completed;
  out["failed"] = static_cast<int64_t>(records.size()) - completed;
  out["total_input_tokens"] = input;
  out["total_output_tokens"] = output;
  out["duration"] = duration;
  out["request_throughput"] = static_cast<double>(completed) / duration;
  out["request_goodput"] = static_cast<double>(good) / duration;
  out["output_throughput"] = static_cast<double>(output) / duration;
  out["total_token_throughput"] = static_cast<double>(input + output) / duration;
  Put(out, "ttft", ttft);  // sorts ttft
  // p99.9 only where at least 1,000 requests back it (a tail of one or more requests).
  if (ttft.size() >= 1000) out["p999_ttft_ms"] = PercentileSorted(ttft, 99.9) * 1e3;
  out["ttft_by_prompt_decile"] = PromptDeciles(done);
  Put(out, "tpot", tpot);
  out["mean_itl_ms"] = itl.Mean() * 1e3;
  out["median_itl_ms"] = itl.Percentile(50) * 1e3;
  out["std_itl_ms"] = itl.StdDev() * 1e3;
  out["p90_itl_ms"] = itl.Percentile(90) * 1e3;
  out["p99_itl_ms"] = itl.Percentile(99) * 1e3;
  Put(out, "e2el", e2el);
}

}  // namespace gimbal::sim
