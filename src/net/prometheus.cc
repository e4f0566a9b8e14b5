#include "net/prometheus.h"

#include <cmath>
#include <cstdio>

namespace gimbal::net {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Renders a family whose samples a callback computes (a gauge, or a counter kept elsewhere).
class CallbackFamily final : public MetricFamily {
 public:
  CallbackFamily(std::string name, std::string help, const char* type,
                 std::vector<std::string> labels, MetricsRegistry::GaugeCallback fn)
      : MetricFamily(std::move(name), std::move(help), type, std::move(labels)),
        fn_(std::move(fn)) {}

 protected:
  void RenderSamples(std::string& out) const override {
    for (const auto& [values, v] : fn_()) Line(out, name_, values, "", v);
  }

 private:
  MetricsRegistry::GaugeCallback fn_;
};

}  // namespace

void MetricFamily::Render(std::string& out) const {
  out += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
  out += "# TYPE " + name_ + " " + type_ + "\n";
  RenderSamples(out);
}

void MetricFamily::Line(std::string& out, const std::string& name,
                        const std::vector<std::string>& values, const std::string& extra,
                        double v) const {
  out += name;
  if (!values.empty() || !extra.empty()) {
    out += '{';
    bool first = true;
    for (size_t i = 0; i < values.size() && i < label_names_.size(); ++i) {
      if (!first) out += ',';
      first = false;
      out += label_names_[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
    }
    if (!extra.empty()) {
      if (!first) out += ',';
      out += extra;
    }
    out += '}';
  }
  out += ' ';
  out += FormatMetricValue(v);
  out += '\n';
}

template <>
void Family<Counter>::RenderSamples(std::string& out) const {
  MutexLock lock(mu_);
  for (const auto& [values, c] : children_) Line(out, name_, values, "", c->value());
}

template <>
void Family<Gauge>::RenderSamples(std::string& out) const {
  MutexLock lock(mu_);
  for (const auto& [values, g] : children_) Line(out, name_, values, "", g->value());
}

template <>
void Family<Histogram>::RenderSamples(std::string& out) const {
  MutexLock lock(mu_);
  for (const auto& [values, h] : children_) {
    auto counts = h->counts();
    uint64_t cum = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      cum += counts[i];
      std::string le = i < h->bounds().size() ? FormatMetricValue(h->bounds()[i]) : "+Inf";
      Line(out, name_ + "_bucket", values, "le=\"" + le + "\"", static_cast<double>(cum));
    }
    Line(out, name_ + "_sum", values, "", h->sum());
    Line(out, name_ + "_count", values, "", static_cast<double>(cum));
  }
}

CounterFamily& MetricsRegistry::AddCounter(std::string name, std::string help,
                                           std::vector<std::string> label_names) {
  auto f = std::make_unique<CounterFamily>(std::move(name), std::move(help), "counter",
                                           std::move(label_names),
                                           [] { return std::make_unique<Counter>(); });
  auto& ref = *f;
  MutexLock lock(mu_);
  families_.push_back(std::move(f));
  return ref;
}

GaugeFamily& MetricsRegistry::AddGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  auto f = std::make_unique<GaugeFamily>(std::move(name), std::move(help), "gauge",
                                         std::move(label_names),
                                         [] { return std::make_unique<Gauge>(); });
  auto& ref = *f;
  MutexLock lock(mu_);
  families_.push_back(std::move(f));
  return ref;
}

HistogramFamily& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> bounds) {
  auto f = std::make_unique<HistogramFamily>(
      std::move(name), std::move(help), "histogram", std::move(label_names),
      [bounds] { return std::make_unique<Histogram>(bounds); });
  auto& ref = *f;
  MutexLock lock(mu_);
  families_.push_back(std::move(f));
  return ref;
}

void MetricsRegistry::AddCallbackGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names, GaugeCallback fn) {
  auto f = std::make_unique<CallbackFamily>(std::move(name), std::move(help), "gauge",
                                            std::move(label_names), std::move(fn));
  MutexLock lock(mu_);
  families_.push_back(std::move(f));
}

void MetricsRegistry::AddCallbackCounter(std::string name, std::string help,
                                         std::vector<std::string> label_names, GaugeCallback fn) {
  auto f = std::make_unique<CallbackFamily>(std::move(name), std::move(help), "counter",
                                            std::move(label_names), std::move(fn));
  MutexLock lock(mu_);
  families_.push_back(std::move(f));
}

std::string MetricsRegistry::Render() const {
  std::string out;
  MutexLock lock(mu_);
  for (const auto& f : families_) f->Render(out);
  return out;
}

}  // namespace gimbal::net
