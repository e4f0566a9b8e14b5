// Summary statistics over samples: mean, percentiles (linear interpolation between order
// statistics, the convention of numpy.percentile and so of `vllm bench serve`), and weighted
// percentiles for samples that stand for many equal observations (one decode step's inter-token
// latency is shared by every request in the batch).
#pragma once

#include <span>
#include <utility>
#include <vector>

namespace gimbal {

double Mean(std::span<const double> xs);    // 0 for no samples
double StdDev(std::span<const double> xs);  // sample standard deviation; 0 for < 2 samples
// p in [0, 100]. Sorts a copy. 0 for no samples.
double Percentile(std::span<const double> xs, double p);
// Same on already sorted samples.
double PercentileSorted(std::span<const double> sorted, double p);

// Samples (value, weight): the p-th percentile of the distribution in which `value` occurs
// `weight` times (weights are counts >= 0). Sorts its argument.
double WeightedPercentile(std::vector<std::pair<double, double>>& samples, double p);
double WeightedMean(std::span<const std::pair<double, double>> samples);

}  // namespace gimbal
