// Plain HTTP message types shared by the server, the client and their users.
//
// These structs keep Boost.Beast out of every header but the two .cc files that speak the wire
// protocol, so code that handles requests compiles quickly. Header names compare
// case-insensitively; values are kept as received.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gimbal::net {

class Headers {
 public:
  // The first value of `name` (case-insensitive), or "" when absent.
  std::string_view Get(std::string_view name) const;
  bool Has(std::string_view name) const;
  // Replaces every value of `name` with one `value`.
  void Set(std::string name, std::string value);
  // Appends a value, keeping any earlier ones.
  void Add(std::string name, std::string value);
  void Remove(std::string_view name);
  // Removes every header (keeps the storage).
  void Clear() { items_.clear(); }
  // Makes room for `n` headers in all, so that adding them allocates no more than their strings.
  void Reserve(size_t n) { items_.reserve(n); }
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// True when `a` and `b` are equal ignoring ASCII case.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent
  Headers headers;
  std::string body;
  std::string remote;  // peer address, "ip:port"

  // The path without the query string.
  std::string_view path() const;
};

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::string body;
};

// A response with `status`, `content_type` and `body`.
HttpResponse MakeResponse(int status, std::string content_type, std::string body);

// "OK", "Not Found", ...; "Unknown" for codes this table lacks.
std::string_view ReasonPhrase(int status);

// An http:// URL split into its parts. Only plain HTTP is supported.
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string base_path;  // path prefix without a trailing '/', "" for the root

  // Parses "http://host[:port][/path]". Whitespace and a trailing '/' are ignored.
  static bool Parse(std::string_view text, Url* out, std::string* error);
  std::string HostPort() const;  // "host:port"
};

}  // namespace gimbal::net
