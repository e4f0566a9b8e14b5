#include "net/http_types.h"

#include <algorithm>
#include <charconv>

namespace gimbal::net {
namespace {

char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Headers::Get(std::string_view name) const {
  for (const auto& [k, v] : items_) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

bool Headers::Has(std::string_view name) const {
  return std::any_of(items_.begin(), items_.end(),
                     [&](const auto& kv) { return EqualsIgnoreCase(kv.first, name); });
}

void Headers::Set(std::string name, std::string value) {
  Remove(name);
  items_.emplace_back(std::move(name), std::move(value));
}

void Headers::Add(std::string name, std::string value) {
  items_.emplace_back(std::move(name), std::move(value));
}

void Headers::Remove(std::string_view name) {
  items_.erase(std::remove_if(items_.begin(), items_.end(),
                              [&](const auto& kv) { return EqualsIgnoreCase(kv.first, name); }),
               items_.end());
}

std::string_view HttpRequest::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

HttpResponse MakeResponse(int status, std::string content_type, std::string body) {
  HttpResponse r;
  r.status = status;
  r.headers.Set("Content-Type", std::move(content_type));
  r.body = std::move(body);
  return r;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

bool Url::Parse(std::string_view text, Url* out, std::string* error) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    *error = "expected a URL starting with http://, got '" + std::string(text) + "'";
    return false;
  }
  text.remove_prefix(kScheme.size());
  size_t slash = text.find('/');
  std::string_view hostport = text.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : text.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  Url u;
  size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos && hostport.find(']', colon) == std::string_view::npos) {
    std::string_view p = hostport.substr(colon + 1);
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535) {
      *error = "bad port in URL '" + std::string(text) + "'";
      return false;
    }
    u.port = static_cast<uint16_t>(port);
    hostport = hostport.substr(0, colon);
  }
  if (hostport.size() >= 2 && hostport.front() == '[' && hostport.back() == ']') {
    hostport = hostport.substr(1, hostport.size() - 2);
  }
  if (hostport.empty()) {
    *error = "missing host in URL 'http://" + std::string(text) + "'";
    return false;
  }
  u.host = std::string(hostport);
  u.base_path = std::string(path);
  *out = std::move(u);
  return true;
}

std::string Url::HostPort() const {
  return host + ":" + std::to_string(port);
}

}  // namespace gimbal::net
