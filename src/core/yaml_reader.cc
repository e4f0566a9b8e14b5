#include "core/yaml_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace gimbal {

Result<std::string> ReadConfigFile(const std::string& path, const std::string& what,
                                   int64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return NotFound(fmt::format("{}: cannot open {}", path, what));
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    return InvalidArgument(fmt::format("{}: is a {}, expected a {}", path,
                                       S_ISDIR(st.st_mode) ? "directory" : "device or socket",
                                       what));
  }
  if (st.st_size > max_bytes) {
    return InvalidArgument(fmt::format("{}: {} bytes, more than the {} bytes a {} may have", path,
                                       static_cast<int64_t>(st.st_size), max_bytes, what));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("{}: cannot open {}", path, what));
  std::string text;
  text.resize(static_cast<size_t>(st.st_size));
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  // The file may have grown since stat(): read on, up to the limit.
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (static_cast<int64_t>(text.size()) > max_bytes) {
      return InvalidArgument(
          fmt::format("{}: more than the {} bytes a {} may have", path, max_bytes, what));
    }
  }
  return text;
}

Result<YamlReader> YamlReader::FromFile(const std::string& path) {
  Result<std::string> text = ReadConfigFile(path, "file");
  if (!text.ok()) return text.status();
  return FromString(*text, path);
}

namespace {

// Where each document of a YAML stream starts; builds nothing. yaml-cpp 0.7 (Debian 12's) can
// hand back a document without consuming any input, at a ',' where a node should start
// (jbeder/yaml-cpp#1040; fixed upstream after 0.8 by #1319), so its LoadAll looped for good,
// adding a null document each time until memory ran out: one comma in a config file took a
// process to 24 GB. Documents are therefore counted here, at most three, and two in a row that
// start at the same place mean the parser is stuck there.
class DocumentStarts final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    starts.push_back(mark);
    roots.push_back(mark);  // replaced by the root node's mark, which messages name
    rooted = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { Node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { Node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(m);
  }
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;  // where each document starts
  std::vector<YAML::Mark> roots;   // where each document's root node is

 private:
  void Node(const YAML::Mark& m) {
    if (!rooted && !roots.empty()) roots.back() = m;
    rooted = true;
  }
  bool rooted = false;
};

// Null when `text` holds at most one document; otherwise what is wrong, and where.
std::optional<std::string> CheckOneDocument(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (docs.starts.size() < 3 && parser.HandleNextDocument(docs)) {
    const size_t n = docs.starts.size();
    if (n >= 2 && docs.starts[n - 1].pos == docs.starts[n - 2].pos) {
      const YAML::Mark at = docs.starts[n - 1];
      const auto pos = static_cast<size_t>(std::max(at.pos, 0));
      return fmt::format("{}:{}:{}: malformed YAML: unexpected '{}'", name, at.line + 1,
                         at.column + 1, pos < text.size() ? text.substr(pos, 1) : "end of input");
    }
  }
  if (docs.starts.size() < 2) return std::nullopt;
  const YAML::Mark at = docs.roots[1];
  return fmt::format("{}:{}: a second YAML document starts here ('---'); a file holds one", name,
                     at.is_null() ? 0 : at.line + 1);
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// The first key given twice in one map, anywhere under `n`: "file:line:col: 'path': ...".
// Collections reached again through an alias are walked once (an alias has its anchor's mark).
std::optional<std::string> FindDuplicateKey(const YAML::Node& n, const std::string& path,
                                            const std::string& file, std::set<size_t>& seen) {
  if (!n.IsMap() && !n.IsSequence()) return std::nullopt;
  const YAML::Mark m = n.Mark();
  if (m.pos >= 0 && !seen.insert(static_cast<size_t>(m.pos)).second) return std::nullopt;
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) {
      auto d = FindDuplicateKey(n[i], fmt::format("{}[{}]", path, i), file, seen);
      if (d) return d;
    }
    return std::nullopt;
  }
  std::map<std::string, int> first_line;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) continue;
    const std::string key = kv.first.Scalar();
    const YAML::Mark km = kv.first.Mark();
    auto [it, inserted] = first_line.emplace(key, km.line + 1);
    if (!inserted) {
      return fmt::format(
          "{}:{}:{}: '{}': duplicate key (first given on line {}); give each key "
          "once",
          file, km.line + 1, km.column + 1, Join(path, key), it->second);
    }
  }
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) continue;
    auto d = FindDuplicateKey(kv.second, Join(path, kv.first.Scalar()), file, seen);
    if (d) return d;
  }
  return std::nullopt;
}

}  // namespace

Result<YamlReader> YamlReader::FromString(const std::string& text, const std::string& name) {
  YAML::Node n;
  try {
    // Every document is looked at: a second one (after '---') was silently ignored.
    if (auto wrong = CheckOneDocument(text, name)) return InvalidArgument(*wrong);
    n = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    return InvalidArgument(fmt::format("{}:{}:{}: malformed YAML: nested deeper than {} levels",
                                       name, e.mark.line + 1, e.mark.column + 1, e.depth() - 1));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{}:{}:{}: malformed YAML: {}", name, e.mark.line + 1,
                                       e.mark.column + 1, e.msg));
  }
  std::set<size_t> seen;
  if (auto dup = FindDuplicateKey(n, "", name, seen)) return InvalidArgument(*dup);
  return YamlReader(name, n, "");
}

YamlReader::YamlReader(std::string file, YAML::Node node, std::string path)
    : YamlReader(std::move(file), std::move(node), std::move(path), std::make_shared<Status>()) {}

YamlReader::YamlReader(std::string file, YAML::Node node, std::string path,
                       std::shared_ptr<Status> err)
    : file_(std::move(file)),
      node_(std::move(node)),
      path_(std::move(path)),
      error_(std::move(err)) {}

std::string YamlReader::KeyPath(const std::string& key) const {
  if (key.empty()) return path_.empty() ? "(top level)" : path_;
  return path_.empty() ? key : path_ + "." + key;
}

std::string YamlReader::Where(const YAML::Node& n, const std::string& key) const {
  const YAML::Mark m = n.Mark();
  if (m.line >= 0)
    return fmt::format("{}:{}:{}: '{}'", file_, m.line + 1, m.column + 1, KeyPath(key));
  return fmt::format("{}: '{}'", file_, KeyPath(key));
}

void YamlReader::Fail(const std::string& what, const std::string& key) const {
  if (!error_->ok()) return;
  YAML::Node at = node_;
  if (!key.empty() && node_.IsMap() && node_[key]) at = node_[key];
  *error_ = InvalidArgument(Where(at, key) + ": " + what);
}

bool YamlReader::Has(const std::string& key) const {
  return node_.IsMap() && node_[key] && !node_[key].IsNull();
}

YamlReader YamlReader::Child(const std::string& key, bool optional) const {
  if (!Has(key)) {
    if (!optional) Fail("required key is missing", key);
    return YamlReader(file_, YAML::Node(), KeyPath(key), error_);
  }
  return YamlReader(file_, node_[key], KeyPath(key), error_);
}

YamlReader YamlReader::At(size_t i) const {
  return YamlReader(file_, node_[i], fmt::format("{}[{}]", path_, i), error_);
}

std::vector<YamlReader> YamlReader::Items(const std::string& key, bool optional) const {
  std::vector<YamlReader> out;
  if (!Has(key)) {
    if (!optional) Fail("required list is missing", key);
    return out;
  }
  YamlReader c = Child(key);
  if (!c.node_.IsSequence()) {
    Fail("expected a list", key);
    return out;
  }
  for (size_t i = 0; i < c.node_.size(); ++i) out.push_back(c.At(i));
  return out;
}

std::vector<std::string> YamlReader::Keys() const {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (const auto& kv : node_) {
    if (kv.first.IsScalar()) out.push_back(kv.first.Scalar());
  }
  return out;
}

std::string YamlReader::Scalar() const {
  if (!node_.IsScalar()) {
    Fail("expected a single value");
    return "";
  }
  return node_.Scalar();
}

namespace {
std::string Range(double lo, double hi) {
  if (std::isinf(lo) && std::isinf(hi)) return "";
  if (std::isinf(hi)) return fmt::format(" >= {}", lo);
  if (std::isinf(lo)) return fmt::format(" <= {}", hi);
  return fmt::format(" in [{}, {}]", lo, hi);
}
}  // namespace

double YamlReader::Double(const std::string& key, std::optional<double> def, double lo,
                          double hi) const {
  if (!Has(key)) {
    if (!def) Fail("required number is missing", key);
    return def.value_or(0);
  }
  const YAML::Node n = node_[key];
  double v = 0;
  bool good = n.IsScalar();
  if (good) {
    const std::string& s = n.Scalar();
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    good = !s.empty() && end && *end == '\0' && std::isfinite(v);
  }
  if (!good || v < lo || v > hi) {
    Fail(fmt::format("expected a number{}, got '{}'", Range(lo, hi),
                     n.IsScalar() ? n.Scalar() : std::string("a non-scalar")),
         key);
    return def.value_or(0);
  }
  return v;
}

int64_t YamlReader::Int(const std::string& key, std::optional<int64_t> def, int64_t lo,
                        int64_t hi) const {
  if (!Has(key)) {
    if (!def) Fail("required integer is missing", key);
    return def.value_or(0);
  }
  const YAML::Node n = node_[key];
  long long v = 0;
  bool good = n.IsScalar();
  if (good) {
    const std::string& s = n.Scalar();
    char* end = nullptr;
    errno = 0;
    v = std::strtoll(s.c_str(), &end, 10);
    good = !s.empty() && end && *end == '\0' && errno == 0;
  }
  if (!good || v < lo || v > hi) {
    std::string range;
    if (lo != std::numeric_limits<int64_t>::min() && hi != std::numeric_limits<int64_t>::max()) {
      range = fmt::format(" in [{}, {}]", lo, hi);
    } else if (lo != std::numeric_limits<int64_t>::min()) {
      range = fmt::format(" >= {}", lo);
    }
    Fail(fmt::format("expected an integer{}, got '{}'", range,
                     n.IsScalar() ? n.Scalar() : std::string("a non-scalar")),
         key);
    return def.value_or(0);
  }
  return v;
}

bool YamlReader::Bool(const std::string& key, std::optional<bool> def) const {
  if (!Has(key)) {
    if (!def) Fail("required true/false is missing", key);
    return def.value_or(false);
  }
  const YAML::Node n = node_[key];
  const std::string s = n.IsScalar() ? n.Scalar() : "";
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(fmt::format("expected true or false, got '{}'", s), key);
  return def.value_or(false);
}

std::string YamlReader::String(const std::string& key, std::optional<std::string> def) const {
  if (!Has(key)) {
    if (!def) Fail("required value is missing", key);
    return def.value_or("");
  }
  const YAML::Node n = node_[key];
  if (!n.IsScalar()) {
    Fail("expected a single value", key);
    return def.value_or("");
  }
  return n.Scalar();
}

std::string YamlReader::Enum(const std::string& key, std::optional<std::string> def,
                             const std::vector<std::string>& allowed) const {
  std::string v = String(key, def);
  if (!ok()) return v;
  for (const auto& a : allowed) {
    if (a == v) return v;
  }
  Fail(fmt::format("'{}' is not one of: {}", v, fmt::join(allowed, ", ")), key);
  return def.value_or("");
}

std::vector<double> YamlReader::Doubles(const std::string& key, bool optional) const {
  std::vector<double> out;
  for (const auto& item : Items(key, optional)) {
    const std::string s = item.Scalar();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) {
      item.Fail(fmt::format("expected a number, got '{}'", s));
      return out;
    }
    out.push_back(v);
  }
  return out;
}

void YamlReader::CheckKeys(const std::vector<std::string>& known) const {
  if (!node_.IsMap()) return;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) {  // `? [a, b]: v`: a key that is a list or a map
      Fail("a key must be a plain string, not a list or a map");
      return;
    }
    const std::string k = kv.first.Scalar();
    bool found = false;
    for (const auto& a : known) found = found || a == k;
    if (!found) {
      Fail(fmt::format("unknown key (known here: {})", fmt::join(known, ", ")), k);
      return;
    }
  }
}

Status ApplyOverride(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument(fmt::format("override '{}': expected key.path=value", assignment));
  }
  const std::string path = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty())
      return InvalidArgument(fmt::format("override '{}': empty key in path", assignment));
    parts.push_back(p);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(
        fmt::format("override '{}': value is not valid YAML: {}", assignment, e.msg));
  }
  // A list index: digits only, read whole; nullopt when `p` is not one or is out of range.
  auto index_in = [](const std::string& p, size_t size) -> std::optional<size_t> {
    size_t i = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), i);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || i >= size) {
      return std::nullopt;
    }
    return i;
  };
  // yaml-cpp nodes are handles: walking by assignment re-binds, so collect the chain first.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node cur = chain.back();
    const std::string& p = parts[i];
    if (cur.IsSequence()) {
      const auto index = index_in(p, cur.size());
      if (!index) {
        return InvalidArgument(fmt::format(
            "override '{}': '{}' is a list of {} items; '{}' is not an index in it", assignment,
            fmt::join(parts.begin(), parts.begin() + static_cast<long>(i), "."), cur.size(), p));
      }
      chain.push_back(cur[*index]);
    } else {
      if (cur.IsScalar()) {
        return InvalidArgument(
            fmt::format("override '{}': '{}' is a value, not a map", assignment, p));
      }
      if (!cur[p] || cur[p].IsNull()) cur[p] = YAML::Node(YAML::NodeType::Map);
      chain.push_back(cur[p]);
    }
  }
  YAML::Node last = chain.back();
  const std::string& key = parts.back();
  if (last.IsSequence()) {
    const auto index = index_in(key, last.size());
    if (!index) {
      return InvalidArgument(
          fmt::format("override '{}': '{}' is not an index of the list", assignment, key));
    }
    last[*index] = parsed;
  } else if (last.IsScalar()) {
    return InvalidArgument(fmt::format("override '{}': '{}' is a value, not a map", assignment,
                                       fmt::join(parts.begin(), parts.end() - 1, ".")));
  } else {
    last[key] = parsed;
  }
  return Status::Ok();
}

}  // namespace gimbal
