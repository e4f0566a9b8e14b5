// Fuzz target: the bytes of one client connection, read as HttpServer reads them
// (net::detail::ParseRequestBytes), with the default limits and with small ones.
// Invariants: the parser never throws; every request read respects the limits; an error has a
// 4xx/5xx status and a message; a request read is read the same again when written back out
// with Content-Length framing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "net/http_server.h"
#include "net/http_types.h"
#include "net/http_wire.h"

namespace {

using gimbal::net::EqualsIgnoreCase;
using gimbal::net::HttpRequest;
using gimbal::net::HttpServerOptions;
using gimbal::net::detail::ParseRequestBytes;
using gimbal::net::detail::RequestStream;

bool FramingHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Trailer") || EqualsIgnoreCase(name, "Connection") ||
         EqualsIgnoreCase(name, "Upgrade");
}

// `r` written back as one request with Content-Length framing.
std::string Serialise(const HttpRequest& r) {
  std::string out = r.method + " " + r.target + " HTTP/1.1\r\n";
  for (const auto& [name, value] : r.headers.items()) {
    if (FramingHeader(name)) continue;
    out += name + ": " + value + "\r\n";
  }
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
  out += r.body;
  return out;
}

void CheckStream(const RequestStream& s, const HttpServerOptions& opts, bool round_trip) {
  // ParseRequestBytes reports an exception the parser threw as "parser threw: ..." (a finding).
  FUZZ_CHECK(s.error.rfind("parser threw: ", 0) != 0, s.error);
  if (s.error_status != 0) {
    FUZZ_CHECK(s.error_status >= 400 && s.error_status <= 599, std::to_string(s.error_status));
    FUZZ_CHECK(!s.error.empty(), std::to_string(s.error_status));
  }
  const size_t buffer_limit = gimbal::net::detail::ServerBufferLimit(opts);
  for (const HttpRequest& r : s.requests) {
    FUZZ_CHECK(!r.method.empty(), "empty method");
    FUZZ_CHECK(!r.target.empty(), "empty target");
    FUZZ_CHECK(r.body.size() <= opts.body_limit, std::to_string(r.body.size()));
    for (const auto& [name, value] : r.headers.items()) {
      FUZZ_CHECK(!name.empty(), "empty header name");
      // Beast throws for a value of 64 KiB or more; the buffer limit keeps every field below it.
      FUZZ_CHECK(value.size() < 65536, name + ": " + std::to_string(value.size()) + " bytes");
      FUZZ_CHECK(name.size() + value.size() <= buffer_limit, name);
    }
    if (!round_trip) continue;
    const std::string again = Serialise(r);
    // Only when the head written back stays well inside the limit (it gains a Content-Length).
    if (again.size() - r.body.size() + 64 > opts.header_limit) continue;
    const RequestStream s2 = ParseRequestBytes(again, opts);
    FUZZ_CHECK(s2.error_status == 0, std::to_string(s2.error_status) + " " + s2.error);
    FUZZ_CHECK(s2.requests.size() == 1, std::to_string(s2.requests.size()));
    const HttpRequest& r2 = s2.requests[0];
    FUZZ_CHECK(r2.method == r.method, r2.method + " vs " + r.method);
    FUZZ_CHECK(r2.target == r.target, r2.target + " vs " + r.target);
    FUZZ_CHECK(r2.body == r.body, "body differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = gimbal::fuzz::AsText(data, size);

  const HttpServerOptions defaults;
  CheckStream(ParseRequestBytes(bytes, defaults), defaults, /*round_trip=*/true);

  HttpServerOptions small;
  small.header_limit = 4096;
  small.body_limit = 65536;
  CheckStream(ParseRequestBytes(bytes, small), small, /*round_trip=*/true);

  HttpServerOptions tiny;
  tiny.header_limit = 1024;
  tiny.body_limit = 16;
  CheckStream(ParseRequestBytes(bytes, tiny), tiny, /*round_trip=*/false);
  return 0;
}
