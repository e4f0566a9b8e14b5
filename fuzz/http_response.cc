// Fuzz target: the bytes an upstream engine answers one request with, read as HttpClient reads
// them (net::detail::ParseResponseBytes), with a large and a small body limit.
// Invariants: the parser never throws; a final answer is never 1xx (interim answers are skipped,
// 101 refused) and respects the body limit; an error leaves nothing complete or reusable.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "net/http_wire.h"

namespace {

using gimbal::net::detail::ParseResponseBytes;
using gimbal::net::detail::ResponseStream;

void Check(const ResponseStream& r, size_t body_limit) {
  FUZZ_CHECK(r.error.rfind("parser threw: ", 0) != 0, r.error);
  if (!r.error.empty()) {
    FUZZ_CHECK(!r.complete, r.error);
    FUZZ_CHECK(!r.reusable, r.error);
    return;
  }
  if (!r.complete) {
    FUZZ_CHECK(!r.reusable, "an incomplete answer marked reusable");
    return;
  }
  FUZZ_CHECK(r.status >= 200 && r.status <= 999, std::to_string(r.status));
  FUZZ_CHECK(r.body.size() <= body_limit, std::to_string(r.body.size()));
  for (const auto& [name, value] : r.headers.items()) {
    FUZZ_CHECK(!name.empty(), "empty header name");
    FUZZ_CHECK(value.size() < gimbal::net::detail::kClientBufferLimit,
               name + ": " + std::to_string(value.size()) + " bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = gimbal::fuzz::AsText(data, size);
  for (size_t limit : {size_t{4} << 20, size_t{64}}) {
    const ResponseStream r = ParseResponseBytes(bytes, limit);
    Check(r, limit);
    // Deterministic: the same bytes give the same answer.
    const ResponseStream again = ParseResponseBytes(bytes, limit);
    FUZZ_CHECK(again.status == r.status && again.body == r.body && again.error == r.error &&
                   again.complete == r.complete && again.reusable == r.reusable,
               "two reads of the same bytes differ");
  }
  return 0;
}
