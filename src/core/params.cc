#include "core/params.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace gimbal {

double Params::GetDouble(const std::string& key, double def) const {
  read_.insert(key);
  auto it = values_.find(key);
  if (it == values_.end()) return def;
  const char* s = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  // ERANGE on underflow (1e-308 is subnormal) still gives the nearest number: only overflow fails.
  const bool overflow = errno == ERANGE && std::fabs(v) >= 1;
  if (end == s || *end != '\0' || overflow || !std::isfinite(v)) {
    errors_.push_back("'" + key + "' expects a number, got '" + it->second + "'");
    return def;
  }
  return v;
}

int64_t Params::GetInt(const std::string& key, int64_t def) const {
  read_.insert(key);
  auto it = values_.find(key);
  if (it == values_.end()) return def;
  const char* s = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || errno != 0) {
    errors_.push_back("'" + key + "' expects an integer, got '" + it->second + "'");
    return def;
  }
  return v;
}

int64_t Params::GetInt(const std::string& key, int64_t def, int64_t lo, int64_t hi) const {
  const size_t before = errors_.size();
  const int64_t v = GetInt(key, def);
  if (errors_.size() == before && Has(key) && (v < lo || v > hi)) {
    errors_.push_back("'" + key + "' expects an integer in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], got '" + values_.at(key) + "'");
    return def;
  }
  return v;
}

bool Params::GetBool(const std::string& key, bool def) const {
  read_.insert(key);
  auto it = values_.find(key);
  if (it == values_.end()) return def;
  const std::string& v = it->second;
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  errors_.push_back("'" + key + "' expects true or false, got '" + v + "'");
  return def;
}

std::string Params::GetString(const std::string& key, const std::string& def) const {
  read_.insert(key);
  auto it = values_.find(key);
  return it == values_.end() ? def : it->second;
}

Status Params::Validate(const std::string& what) const {
  std::string msg;
  for (const auto& e : errors_) msg += (msg.empty() ? "" : "; ") + e;
  std::string unknown;
  for (const auto& [k, v] : values_) {
    if (!read_.count(k)) unknown += (unknown.empty() ? "'" : ", '") + k + "'";
  }
  if (!unknown.empty()) {
    std::string known;
    for (const auto& k : read_) known += (known.empty() ? "" : ", ") + k;
    msg += (msg.empty() ? "" : "; ") + std::string("unknown parameter ") + unknown +
           " (known: " + (known.empty() ? "none" : known) + ")";
  }
  if (msg.empty()) return Status::Ok();
  return InvalidArgument(what + ": " + msg);
}

}  // namespace gimbal
