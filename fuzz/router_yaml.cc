// Fuzz target: a router config as `gimbal serve --config` reads it: router::ParseRouterConfig,
// then router::ValidateRouterConfig.
// Invariants: never crashes; a config that validates has backends with unique names, each URL
// parsed to a host, and its URL parses again to the same host, port and path.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_check.h"
#include "net/http_types.h"
#include "router/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(gimbal::fuzz::AsText(data, size));
  auto c = gimbal::router::ParseRouterConfig(yaml, "fuzz.yaml");
  if (!c.ok()) {
    FUZZ_CHECK(!c.status().message().empty(), "an error without a message");
    return 0;
  }
  const gimbal::Status v = gimbal::router::ValidateRouterConfig(*c);
  if (!v.ok()) {
    FUZZ_CHECK(!v.message().empty(), "an error without a message");
    return 0;
  }
  FUZZ_CHECK(!c->backends.empty(), "validated without backends");
  std::set<std::string> names;
  for (const auto& b : c->backends) {
    FUZZ_CHECK(names.insert(b.name).second, "duplicate backend name " + b.name);
    FUZZ_CHECK(!b.parsed.host.empty(), "backend " + b.name + " without a host: " + b.url);
    gimbal::net::Url again;
    std::string error;
    FUZZ_CHECK(gimbal::net::Url::Parse(b.url, &again, &error), b.url + ": " + error);
    FUZZ_CHECK(again.host == b.parsed.host && again.port == b.parsed.port &&
                   again.base_path == b.parsed.base_path,
               b.url);
  }
  FUZZ_CHECK(c->threads > 0, std::to_string(c->threads));
  return 0;
}
