#include "wire/priority_tag.h"

#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace gimbal::wire {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A scan over the body; each step leaves `i` after what it read. Errors name the byte offset.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  size_t pos() const { return i_; }
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void SkipSpace() {
    while (i_ < s_.size() && IsSpace(s_[i_])) ++i_;
  }
  bool Eat(char c) {
    if (peek() != c || done()) return false;
    ++i_;
    return true;
  }
  // A string starting at `i` (on its opening quote).
  Status String() {
    const size_t start = i_;
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\\') {
        i_ += 2;
      } else if (c == '"') {
        ++i_;
        return Status::Ok();
      } else {
        ++i_;
      }
    }
    return Error("unterminated string", start);
  }
  // One value: a string, a container (nesting counted, brackets matched, no recursion) or a
  // scalar token. `depth` is the nesting of the container holding the value.
  Status Value(int depth) {
    const char c = peek();
    if (c == '"') return String();
    if (c != '{' && c != '[') {
      const size_t start = i_;
      while (i_ < s_.size() && !IsSpace(s_[i_]) && s_[i_] != ',' && s_[i_] != '}' &&
             s_[i_] != ']' && s_[i_] != ':' && s_[i_] != '"' && s_[i_] != '{' && s_[i_] != '[') {
        ++i_;
      }
      if (i_ == start) return Error("expected a value", start);
      return Status::Ok();
    }
    std::vector<char> closers;
    while (i_ < s_.size()) {
      const char ch = s_[i_];
      if (ch == '"') {
        GIMBAL_RETURN_IF_ERROR(String());
        continue;
      }
      if (ch == '{' || ch == '[') {
        if (depth + static_cast<int>(closers.size()) + 1 > kMaxJsonDepth) {
          return InvalidArgument("request body nests deeper than " + std::to_string(kMaxJsonDepth) +
                                 " levels (at byte " + std::to_string(i_) + ")");
        }
        closers.push_back(ch == '{' ? '}' : ']');
      } else if (ch == '}' || ch == ']') {
        if (closers.empty() || closers.back() != ch) return Error("unbalanced bracket", i_);
        closers.pop_back();
        if (closers.empty()) {
          ++i_;
          return Status::Ok();
        }
      }
      ++i_;
    }
    return Error("unterminated container", i_);
  }

  Status Error(const char* what, size_t at) const {
    return InvalidArgument(std::string("request body is not a JSON object: ") + what + " at byte " +
                           std::to_string(at));
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// True when the key token (with its quotes) names "priority", escapes decoded.
bool IsPriorityKey(std::string_view token) {
  std::string_view raw = token.substr(1, token.size() - 2);
  if (raw.find('\\') == std::string_view::npos) return raw == "priority";
  if (raw.size() > 64) return false;  // "priority" with every letter escaped is 48 characters
  auto decoded = nlohmann::json::parse(token, nullptr, /*allow_exceptions=*/false);
  return decoded.is_string() && decoded.get_ref<const std::string&>() == "priority";
}

}  // namespace

Result<std::string> SetPriority(std::string_view body, int64_t priority) {
  Scanner sc(body);
  sc.SkipSpace();
  if (!sc.Eat('{')) return sc.Error("expected '{'", sc.pos());
  const size_t open = sc.pos();                   // just after '{'
  std::vector<std::pair<size_t, size_t>> values;  // the top-level "priority" values
  bool empty = false;
  sc.SkipSpace();
  if (sc.Eat('}')) {
    empty = true;
  } else {
    for (;;) {
      sc.SkipSpace();
      if (sc.peek() != '"' || sc.done()) return sc.Error("expected a member name", sc.pos());
      const size_t key_start = sc.pos();
      GIMBAL_RETURN_IF_ERROR(sc.String());
      const bool is_priority = IsPriorityKey(body.substr(key_start, sc.pos() - key_start));
      sc.SkipSpace();
      if (!sc.Eat(':')) return sc.Error("expected ':'", sc.pos());
      sc.SkipSpace();
      const size_t value_start = sc.pos();
      GIMBAL_RETURN_IF_ERROR(sc.Value(1));
      if (is_priority) values.emplace_back(value_start, sc.pos());
      sc.SkipSpace();
      if (sc.Eat(',')) continue;
      if (sc.Eat('}')) break;
      return sc.Error("expected ',' or '}'", sc.pos());
    }
  }
  sc.SkipSpace();
  if (!sc.done()) return sc.Error("unexpected text after the object", sc.pos());

  const std::string number = std::to_string(priority);
  std::string out;
  if (values.empty()) {
    out.reserve(body.size() + number.size() + 13);
    out.append(body.substr(0, open));
    out += "\"priority\":";
    out += number;
    if (!empty) out += ',';
    out.append(body.substr(open));
    return out;
  }
  out.reserve(body.size() + values.size() * number.size());
  size_t at = 0;
  for (const auto& [start, end] : values) {
    out.append(body.substr(at, start - at));
    out += number;
    at = end;
  }
  out.append(body.substr(at));
  return out;
}

Status CheckJsonNesting(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return InvalidArgument("JSON nests deeper than " + std::to_string(max_depth) +
                               " levels (at byte " + std::to_string(i) + ")");
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return Status::Ok();
}

}  // namespace gimbal::wire
