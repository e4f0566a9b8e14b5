// Params: a flat string-keyed set of policy parameters, as written in a config file.
//
// Policies read their parameters through typed getters with defaults; after construction the
// caller asks for keys nobody read, so a misspelt parameter is an error rather than silently
// ignored ("unknown parameter 'w_kvv' for dispatch policy 'gimbal'; known: w_kv, w_pf, ...").
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace gimbal {

class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  void Set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  bool Has(const std::string& key) const { return values_.count(key) > 0; }

  // Typed getters: return `def` when absent; record an error when present but malformed.
  double GetDouble(const std::string& key, double def) const;
  int64_t GetInt(const std::string& key, int64_t def) const;
  // As GetInt, with an error (and `def`) when the value is outside [lo, hi]: for values narrowed
  // to a smaller type, which would otherwise wrap (2^32 moves read as 0).
  int64_t GetInt(const std::string& key, int64_t def, int64_t lo, int64_t hi) const;
  int GetInt32(const std::string& key, int def) const {
    return static_cast<int>(GetInt(key, def, INT32_MIN, INT32_MAX));
  }
  bool GetBool(const std::string& key, bool def) const;
  std::string GetString(const std::string& key, const std::string& def) const;

  // Ok when every given key was read and every value parsed; otherwise a message naming the
  // offending keys, `what` (e.g. "dispatch policy 'gimbal'") and the keys that were read.
  Status Validate(const std::string& what) const;

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
  mutable std::set<std::string> read_;
  mutable std::vector<std::string> errors_;
};

}  // namespace gimbal
