// Helpers the workload tests share: parse a scenario's `workload:` map from YAML text, and expect
// a parse error that names every given piece.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "workload/workload.h"

namespace gimbal::workload_test {

inline Result<WorkloadSpec> Parse(const std::string& yaml,
                                  const std::string& base_dir = "/scenarios") {
  auto doc = YamlReader::FromString(yaml, "s.yaml");
  if (!doc.ok()) return doc.status();
  return ParseWorkloadSpec(doc->Child("workload"), base_dir);
}

// Parsing fails with kInvalidArgument and the message has every piece of `parts`.
inline void ExpectError(const std::string& yaml, const std::vector<std::string>& parts) {
  auto r = Parse(yaml);
  ASSERT_FALSE(r.ok()) << yaml;
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  for (const auto& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos)
        << "'" << p << "' not in: " << r.status().message();
  }
}

}  // namespace gimbal::workload_test
