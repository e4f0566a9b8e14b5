// Fuzz target: a trace file read by each trace reader (ReadAzureTrace, ReadMooncakeTrace,
// ReadBurstGptTrace; they take a path, so the bytes go to one temporary file per process), and
// each line through the text helpers (trace::SplitCsvLine, ParseUtcTime, ParseNonNegativeInt,
// ParseDouble, Printable).
// Invariants: never crashes; a trace read has ids 0..n-1, arrivals finite, >= 0 and sorted,
// token counts >= 1, classes in range, at most max_requests; parsed numbers are in range.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"
#include "fuzz_check.h"
#include "workload/trace_text.h"
#include "workload/workload.h"

namespace {

const std::string& TempPath() {
  static const std::string path = [] {
    std::string p = "/tmp/gimbal-fuzz-traces-" + std::to_string(getpid()) + ".txt";
    std::atexit([] { std::remove(TempPath().c_str()); });
    return p;
  }();
  return path;
}

void CheckRequests(const gimbal::Result<std::vector<gimbal::Request>>& r,
                   const gimbal::WorkloadSpec& spec, size_t classes) {
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty(), "an error without a message");
    return;
  }
  const auto& reqs = *r;
  if (spec.max_requests > 0) {
    FUZZ_CHECK(reqs.size() <= static_cast<size_t>(spec.max_requests), std::to_string(reqs.size()));
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& q = reqs[i];
    FUZZ_CHECK(q.id == static_cast<int64_t>(i), std::to_string(q.id));
    FUZZ_CHECK(std::isfinite(q.arrival) && q.arrival >= 0, std::to_string(q.arrival));
    FUZZ_CHECK(i == 0 || reqs[i - 1].arrival <= q.arrival, "arrivals out of order");
    FUZZ_CHECK(q.prompt_tokens >= 1, std::to_string(q.prompt_tokens));
    FUZZ_CHECK(q.output_tokens >= 1, std::to_string(q.output_tokens));
    FUZZ_CHECK(q.traffic_class >= 0 && static_cast<size_t>(q.traffic_class) < classes,
               std::to_string(q.traffic_class));
  }
}

void CheckText(std::string_view line) {
  auto fields = gimbal::trace::SplitCsvLine(line);
  std::vector<std::string> parts;
  if (fields.ok()) {
    parts = *fields;
  } else {
    parts.emplace_back(line);
  }
  for (const std::string& f : parts) {
    if (auto t = gimbal::trace::ParseUtcTime(f)) {
      FUZZ_CHECK(t->fraction >= 0 && t->fraction < 1, std::to_string(t->fraction));
    }
    if (auto n = gimbal::trace::ParseNonNegativeInt(f)) FUZZ_CHECK(*n >= 0, std::to_string(*n));
    if (auto d = gimbal::trace::ParseDouble(f)) FUZZ_CHECK(std::isfinite(*d), f);
    const std::string p = gimbal::trace::Printable(f, 40);
    for (char c : p) FUZZ_CHECK(c >= 0x20 && c < 0x7f, p);
    FUZZ_CHECK(p.size() <= 4 * 40 + 3, std::to_string(p.size()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = gimbal::fuzz::AsText(data, size);
  {
    std::ofstream out(TempPath(), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  const std::vector<double> weights = {0.5, 0.3, 0.2};
  gimbal::WorkloadSpec all;
  gimbal::WorkloadSpec some;
  some.time_scale = 0.5;
  some.max_requests = 5;
  some.start_offset = 1.5;
  for (const gimbal::WorkloadSpec* spec : {&all, &some}) {
    gimbal::Rng rng(7);
    CheckRequests(gimbal::ReadAzureTrace(TempPath(), *spec, weights, rng), *spec, weights.size());
    CheckRequests(gimbal::ReadMooncakeTrace(TempPath(), *spec, weights, rng), *spec,
                  weights.size());
    CheckRequests(gimbal::ReadBurstGptTrace(TempPath(), *spec, weights, rng), *spec,
                  weights.size());
  }

  size_t start = 0;
  for (int lines = 0; start <= bytes.size() && lines < 256; ++lines) {
    size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) end = bytes.size();
    CheckText(bytes.substr(start, end - start));
    start = end + 1;
  }
  return 0;
}
