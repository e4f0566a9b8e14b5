// Small statistics for experiment reports: Student's t quantiles and t confidence intervals.
#pragma once

#include <vector>

namespace gimbal::experiment {

// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
double StudentTCdf(double t, double df);
// The t with P(T <= t) = p, p in (0, 1).
double StudentTQuantile(double p, double df);

struct Interval {
  int n = 0;
  double mean = 0;
  double stddev = 0;      // sample standard deviation (n - 1); 0 when n < 2
  double half_width = 0;  // 0 when n < 2 (no interval)
  double lo = 0, hi = 0;  // mean -/+ half_width
  bool has_interval() const { return n >= 2; }
};

// Two-sided t interval for the mean at `confidence` (e.g. 0.95): mean ± t(1 - α/2, n - 1) · s / √n.
Interval TInterval(const std::vector<double>& samples, double confidence = 0.95);

}  // namespace gimbal::experiment
