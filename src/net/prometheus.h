// Prometheus metrics: a thread-safe registry rendered in the text exposition format (0.0.4).
//
// A family has a name, help text, a type and label names; each distinct tuple of label values is
// one child (Counter, Gauge or Histogram) created on first use and kept for the registry's life,
// so hot paths may hold the reference. Updates are lock-free atomics; lookups by labels take the
// family's mutex. Render() writes "# HELP" and "# TYPE" lines then one sample per child (for
// histograms: cumulative `_bucket{le=...}`, `_sum`, `_count`).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_annotations.h"

namespace gimbal::net {

class Counter {
 public:
  // v >= 0.
  void Inc(double v = 1) { v_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Gauge {
 public:
  void Set(double v) { v_.store(v, std::memory_order_relaxed); }
  void Add(double v) { v_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {
 public:
  // `bounds`: increasing upper bounds; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts, the +Inf bucket last; and the sum.
  std::vector<uint64_t> counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Default latency buckets in seconds, 1 ms to 60 s.
std::vector<double> LatencyBuckets();

class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::string type,
               std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(std::move(type)),
        label_names_(std::move(label_names)) {}
  virtual ~MetricFamily() = default;
  const std::string& name() const { return name_; }
  // Appends this family's lines to `out`.
  void Render(std::string& out) const;

 protected:
  // Appends the sample lines (not HELP/TYPE).
  virtual void RenderSamples(std::string& out) const = 0;
  // `name{l1="v1",...,extra} value\n`
  void Line(std::string& out, const std::string& name, const std::vector<std::string>& values,
            const std::string& extra, double v) const;

  std::string name_, help_, type_;
  std::vector<std::string> label_names_;
};

// A family of children of type M, created on first use of a label tuple.
template <typename M>
class Family : public MetricFamily {
 public:
  Family(std::string name, std::string help, std::string type, std::vector<std::string> labels,
         std::function<std::unique_ptr<M>()> make)
      : MetricFamily(std::move(name), std::move(help), std::move(type), std::move(labels)),
        make_(std::move(make)) {}
  // The child for `values` (one per label name, in order); created when new.
  M& With(const std::vector<std::string>& values = {}) {
    MutexLock lock(mu_);
    auto& slot = children_[values];
    if (!slot) slot = make_();
    return *slot;
  }

 protected:
  void RenderSamples(std::string& out) const override;

 private:
  std::function<std::unique_ptr<M>()> make_;
  mutable Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_ GIMBAL_GUARDED_BY(mu_);
};

template <>
void Family<Counter>::RenderSamples(std::string& out) const;
template <>
void Family<Gauge>::RenderSamples(std::string& out) const;
template <>
void Family<Histogram>::RenderSamples(std::string& out) const;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class MetricsRegistry {
 public:
  CounterFamily& AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {});
  HistogramFamily& AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names, std::vector<double> bounds);
  // A gauge family whose samples `fn` computes at render time: (label values, value) pairs.
  using GaugeCallback = std::function<std::vector<std::pair<std::vector<std::string>, double>>()>;
  void AddCallbackGauge(std::string name, std::string help, std::vector<std::string> label_names,
                        GaugeCallback fn);
  // The same for a counter that something else keeps (its values must never fall).
  void AddCallbackCounter(std::string name, std::string help, std::vector<std::string> label_names,
                          GaugeCallback fn);
  // The whole registry in the text exposition format, families in registration order.
  std::string Render() const;

 private:
  mutable Mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_ GIMBAL_GUARDED_BY(mu_);
};

// Formats a sample value the way Prometheus reads it: integers without a fraction, "+Inf",
// "-Inf", "NaN".
std::string FormatMetricValue(double v);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& v);

}  // namespace gimbal::net
