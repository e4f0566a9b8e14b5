// YamlReader: typed, checked access to a YAML document with errors that name the place.
//
// Every accessor takes a key, a default (std::nullopt = required) and a valid range. The first
// problem is kept and later reads return defaults, so a loader reads straight through and checks
// status() once. Messages look like
//   configs/x.yaml:12:9: 'workload.rate': expected a number >= 0, got 'fast'
// Children share the error slot of their parent. CheckKeys() rejects unknown keys (typos);
// parsing rejects a key given twice in one map (YAML would silently keep one of them).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/status.h"

namespace gimbal {

// The largest configuration file read whole (YAML, JSON): 16 MiB.
inline constexpr int64_t kMaxConfigFileBytes = int64_t{16} << 20;

// Reads a whole configuration file: a regular file or a pipe (not a directory or a device such as
// /dev/zero) of at most `max_bytes`. NotFound when it cannot be opened; InvalidArgument naming
// `path` otherwise. `what` names the file's role in messages ("scenario file", "routing
// statistics").
Result<std::string> ReadConfigFile(const std::string& path, const std::string& what,
                                   int64_t max_bytes = kMaxConfigFileBytes);

class YamlReader {
 public:
  // Parses a file or a string (named `name` in messages). A key given twice in one map is an
  // error naming the line of both.
  static Result<YamlReader> FromFile(const std::string& path);
  static Result<YamlReader> FromString(const std::string& text, const std::string& name);
  YamlReader(std::string file, YAML::Node node, std::string path);

  bool Has(const std::string& key) const;
  bool IsMap() const { return node_.IsMap(); }
  bool IsSequence() const { return node_.IsSequence(); }
  size_t size() const { return node_.size(); }

  // A child map (or any node), required unless `optional` is set (then absent -> null reader).
  YamlReader Child(const std::string& key, bool optional = false) const;
  // The i-th element of a sequence.
  YamlReader At(size_t i) const;
  // The elements of a sequence under `key` (empty when absent and optional).
  std::vector<YamlReader> Items(const std::string& key, bool optional = false) const;
  // The keys of this map in document order.
  std::vector<std::string> Keys() const;

  static constexpr double kInf = std::numeric_limits<double>::infinity();
  double Double(const std::string& key, std::optional<double> def, double lo = -kInf,
                double hi = kInf) const;
  int64_t Int(const std::string& key, std::optional<int64_t> def,
              int64_t lo = std::numeric_limits<int64_t>::min(),
              int64_t hi = std::numeric_limits<int64_t>::max()) const;
  bool Bool(const std::string& key, std::optional<bool> def) const;
  std::string String(const std::string& key, std::optional<std::string> def) const;
  // One of `allowed`.
  std::string Enum(const std::string& key, std::optional<std::string> def,
                   const std::vector<std::string>& allowed) const;
  // A list of numbers under `key`.
  std::vector<double> Doubles(const std::string& key, bool optional = false) const;
  // This node as a scalar string (for sequences of scalars).
  std::string Scalar() const;

  // Records an error for any key of this map not in `known`.
  void CheckKeys(const std::vector<std::string>& known) const;
  // Records an error at this node (or at `key` under it).
  void Fail(const std::string& what, const std::string& key = "") const;

  const Status& status() const { return *error_; }
  bool ok() const { return error_->ok(); }
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }

 private:
  YamlReader(std::string file, YAML::Node node, std::string path, std::shared_ptr<Status> err);
  std::string Where(const YAML::Node& n, const std::string& key) const;
  std::string KeyPath(const std::string& key) const;

  std::string file_;
  YAML::Node node_;
  std::string path_;
  std::shared_ptr<Status> error_;
};

// Applies `key.path=value` overrides to a YAML tree: dots separate map keys, integers index
// sequences (`stacks.1.queue.policy=fcfs`); the value is parsed as YAML. Missing maps are created.
Status ApplyOverride(YAML::Node& root, const std::string& assignment);

}  // namespace gimbal
