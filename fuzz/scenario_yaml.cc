// Fuzz target: a scenario file as `gimbal simulate --config` reads it (ParseScenario). Leading
// lines "#set key.path=value" (YAML comments) are also passed as --set overrides.
// Invariants: never crashes; a scenario accepted has stacks, a cluster with engines, and a
// workload that passes ValidateWorkloadSpec; parsing is deterministic.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/scenario.h"
#include "fuzz_check.h"
#include "workload/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(gimbal::fuzz::AsText(data, size));

  std::vector<std::string> overrides;
  constexpr std::string_view kSet = "#set ";
  size_t pos = 0;
  while (overrides.size() < 8 && text.compare(pos, kSet.size(), kSet) == 0) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    overrides.push_back(text.substr(pos + kSet.size(), end - pos - kSet.size()));
    pos = end + 1;
    if (pos >= text.size()) break;
  }

  auto s = gimbal::ParseScenario(text, "fuzz.yaml", "/nonexistent-fuzz-dir");
  if (s.ok()) {
    FUZZ_CHECK(!s->stacks.empty(), "a scenario without stacks");
    const gimbal::Status wl = gimbal::ValidateWorkloadSpec(s->workload);
    FUZZ_CHECK(wl.ok(), wl.message());
    auto again = gimbal::ParseScenario(text, "fuzz.yaml", "/nonexistent-fuzz-dir");
    FUZZ_CHECK(again.ok() && again->name == s->name && again->stacks.size() == s->stacks.size() &&
                   again->workload.num_requests == s->workload.num_requests,
               "parsing twice differs");
  } else {
    FUZZ_CHECK(!s.status().message().empty(), "an error without a message");
  }
  if (!overrides.empty()) {
    auto o = gimbal::ParseScenario(text, "fuzz.yaml", "/nonexistent-fuzz-dir", overrides);
    if (o.ok()) {
      const gimbal::Status wl = gimbal::ValidateWorkloadSpec(o->workload);
      FUZZ_CHECK(wl.ok(), wl.message());
    }
  }
  return 0;
}
