#include "placement/json_scan.h"

#include <utility>

#include <fmt/format.h>

namespace gimbal {
namespace {

using nlohmann::json;

constexpr double kExact = 9007199254740992.0;  // 2^53

// nlohmann's SAX interface. `level_` is the nesting level inside the key's array (-1: outside
// it); `skip_` the depth of an array or object being dropped.
class Scanner {
 public:
  Scanner(JsonObjectScan& out, std::string_view key, int depth, bool integers, int64_t max_values,
          int64_t max_arrays)
      : out_(out),
        key_(key),
        depth_(depth),
        integers_(integers),
        max_values_(max_values),
        max_arrays_(max_arrays) {
    out_.field.lengths.resize(static_cast<size_t>(depth));
  }

  bool null() { return Scalar(json(nullptr)); }
  bool boolean(bool v) { return Scalar(json(v)); }
  bool number_integer(int64_t v) { return Number(json(v), static_cast<double>(v), true); }
  bool number_unsigned(uint64_t v) { return Number(json(v), static_cast<double>(v), true); }
  bool number_float(double v, const std::string& /*text*/) { return Number(json(v), v, false); }
  bool string(std::string& v) { return Scalar(json(std::move(v))); }
  bool binary(json::binary_t& /*v*/) { return Scalar(json::binary({})); }

  bool key(std::string& k) {
    if (skip_ == 0 && open_ == 1) current_ = std::move(k);
    return true;
  }

  bool start_object(size_t /*size*/) {
    if (skip_ > 0) return ++skip_, true;
    if (open_ == 0) return open_ = 1, true;
    if (level_ >= 0) {
      skip_ = 1;  // its members are dropped
      return Misfit(json::object());
    }
    skip_ = 1;
    if (current_ == key_) {
      if (!Enter()) return false;
      out_.field.not_array = json::object();
      return true;
    }
    Store(json::object());
    return true;
  }
  bool end_object() {
    if (skip_ > 0) return --skip_, true;
    open_ = 0;
    return true;
  }

  bool start_array(size_t /*size*/) {
    if (skip_ > 0) return ++skip_, true;
    if (open_ == 0) {  // the document is an array
      out_.not_object = json::array();
      skip_ = 1;
      return true;
    }
    if (level_ < 0) {
      if (current_ != key_) {
        Store(json::array());
        skip_ = 1;
        return true;
      }
      if (!Enter()) return false;
      level_ = 0;
      index_.assign(1, 0);
      return CountArray();
    }
    if (level_ == depth_ - 1) {
      skip_ = 1;  // its elements are dropped
      return Misfit(json::array());
    }
    ++index_[static_cast<size_t>(level_)];
    ++level_;
    index_.push_back(0);
    return CountArray();
  }
  bool end_array() {
    if (skip_ > 0) return --skip_, true;
    out_.field.lengths[static_cast<size_t>(level_)].push_back(index_.back());
    index_.pop_back();
    --level_;
    return true;
  }

  bool parse_error(size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& e) {
    error_ = std::string("malformed JSON: ") + e.what();
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  bool Scalar(json v) {
    if (skip_ > 0) return true;
    if (open_ == 0) return out_.not_object = std::move(v), true;
    if (level_ >= 0) return Misfit(std::move(v));
    if (current_ == key_) {
      if (!Enter()) return false;
      out_.field.not_array = std::move(v);
      return true;
    }
    Store(std::move(v));
    return true;
  }
  bool Number(json v, double d, bool integral) {
    if (skip_ > 0 || level_ != depth_ - 1 || (integers_ && !integral)) return Scalar(std::move(v));
    if (static_cast<int64_t>(out_.field.values.size()) >= max_values_) {
      error_ = fmt::format("'{}' holds more than {} numbers, more than any valid one", key_,
                           max_values_);
      return false;
    }
    if (!out_.field.first_inexact && !(d > -kExact && d < kExact)) {
      out_.field.first_inexact.emplace(out_.field.values.size(), std::move(v));
    }
    out_.field.values.push_back(d);
    ++index_.back();
    return true;
  }
  // The key's value begins; false when it was given before.
  bool Enter() {
    if (out_.field.present) {
      error_ = fmt::format("'{}' is given twice", key_);
      return false;
    }
    out_.field.present = true;
    return true;
  }
  bool CountArray() {
    if (++arrays_ > max_arrays_) {
      error_ =
          fmt::format("'{}' holds more than {} arrays, more than any valid one", key_, max_arrays_);
      return false;
    }
    return true;
  }
  // An element that its level does not hold: counted in its array, and at the level below it
  // stands for an array of length -1 (so later arrays keep their places); the first one is kept.
  bool Misfit(json v) {
    const auto level = static_cast<size_t>(level_);
    if (!out_.field.bad) {
      std::vector<int64_t> path(index_.begin(), index_.end());
      for (size_t k = 0; k + 1 < path.size(); ++k) --path[k];  // the enclosing arrays' elements
      out_.field.bad.emplace(std::move(path), std::move(v));
    }
    ++index_[level];
    if (level + 1 < out_.field.lengths.size()) {
      out_.field.lengths[level + 1].push_back(-1);
      return CountArray();
    }
    return true;
  }
  // A top-level value under another key (the last of a key given twice wins, as in a DOM).
  void Store(json v) {
    if (open_ == 1 && level_ < 0) out_.scalars[current_] = std::move(v);
  }

  JsonObjectScan& out_;
  std::string_view key_;
  int depth_;
  bool integers_;
  int64_t max_values_;
  int64_t max_arrays_;
  int open_ = 0;  // 1 inside the top-level object
  int skip_ = 0;  // nesting depth of what is being dropped
  int level_ = -1;
  std::vector<int64_t> index_;  // per level: elements so far
  int64_t arrays_ = 0;
  std::string current_;  // the top-level key being read
  std::string error_;
};

}  // namespace

Result<JsonObjectScan> ScanJsonObject(const std::string& text, const std::string& name,
                                      std::string_view key, int depth, bool integers,
                                      int64_t max_values, int64_t max_arrays) {
  JsonObjectScan out;
  Scanner scanner(out, key, depth, integers, max_values, max_arrays);
  const bool whole = json::sax_parse(text, &scanner);
  if (!scanner.error().empty()) {
    return InvalidArgument(fmt::format("{}: {}", name, scanner.error()));
  }
  if (!whole) return InvalidArgument(fmt::format("{}: malformed JSON", name));
  return out;
}

}  // namespace gimbal
