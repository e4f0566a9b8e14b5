// Parser for the Prometheus text exposition format, as engines (vLLM) serve on /metrics.
//
// Reads `name{label="value",...} value [timestamp]` samples, `# TYPE` lines and ignores `# HELP`
// and other comments. Never throws: a malformed line is skipped and counted as a warning, so a
// scrape of a half-written or foreign page yields what could be read.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gimbal::net {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;

  // The value of label `key`, "" when absent.
  std::string_view Label(std::string_view key) const;
};

struct PromParseResult {
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // family name -> counter/gauge/histogram/...
  int warnings = 0;                          // malformed lines skipped
  std::vector<std::string> messages;         // the first few warnings, "line N: why"
};

// With `keep`, only samples (and TYPE lines) of the metric names it accepts are parsed and kept;
// other lines are skipped unparsed, so a page of millions of series the reader does not use
// costs a scan, not memory (a router reads six names of an engine's page).
PromParseResult ParsePrometheusText(std::string_view text,
                                    const std::function<bool(std::string_view)>& keep = {});

}  // namespace gimbal::net
