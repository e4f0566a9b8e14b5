#include "net/prometheus_parser.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_message.h"

namespace gimbal::net {

std::string_view PromSample::Label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return v;
  }
  return {};
}

namespace {

constexpr size_t kMaxMessages = 10;

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || (c >= '0' && c <= '9');
}

void SkipSpaces(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

// Parses a float token (Go's ParseFloat spellings Prometheus uses, plus NaN/Inf).
bool ParseValue(std::string_view tok, double* out) {
  if (tok.empty() || tok.size() > 64) return false;
  if (tok == "NaN" || tok == "nan") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (tok == "+Inf" || tok == "Inf" || tok == "+inf" || tok == "inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (tok == "-Inf" || tok == "-inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  char buf[72];
  tok.copy(buf, tok.size());
  buf[tok.size()] = '\0';
  char* end = nullptr;
  double v = std::strtod(buf, &end);
  if (end != buf + tok.size()) return false;
  // strtod also reads hex floats and "infinity"; Prometheus values are decimal.
  for (char c : tok) {
    if (c == 'x' || c == 'X' || c == 'n' || c == 'N' || c == 'i' || c == 'I') return false;
  }
  *out = v;
  return true;
}

// Parses one sample line; on failure sets `why`.
bool ParseSample(std::string_view line, PromSample* s, std::string* why) {
  size_t i = 0;
  if (i >= line.size() || !IsNameStart(line[i])) {
    *why = "expected a metric name";
    return false;
  }
  while (i < line.size() && IsNameChar(line[i])) ++i;
  s->name = std::string(line.substr(0, i));
  SkipSpaces(line, i);
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      SkipSpaces(line, i);
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t ks = i;
      if (i >= line.size() || !IsNameStart(line[i])) {
        *why = "expected a label name";
        return false;
      }
      while (i < line.size() && IsNameChar(line[i])) ++i;
      std::string key(line.substr(ks, i - ks));
      SkipSpaces(line, i);
      if (i >= line.size() || line[i] != '=') {
        *why = "expected '=' after label " + key;
        return false;
      }
      ++i;
      SkipSpaces(line, i);
      if (i >= line.size() || line[i] != '"') {
        *why = "expected '\"' opening the value of label " + key;
        return false;
      }
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i >= line.size()) break;
          char e = line[i++];
          value += e == 'n' ? '\n' : e;  // \\ and \" stand for themselves
        } else {
          value += c;
        }
      }
      if (!closed) {
        *why = "unterminated value of label " + key;
        return false;
      }
      s->labels.emplace_back(std::move(key), std::move(value));
      SkipSpaces(line, i);
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      *why = "expected ',' or '}' in labels";
      return false;
    }
  }
  SkipSpaces(line, i);
  size_t vs = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  if (!ParseValue(line.substr(vs, i - vs), &s->value)) {
    // Quoted, escaped and cut: the text is an engine's, and goes to the router's log.
    *why = "bad value " + JsonForMessage(nlohmann::json(std::string(line.substr(vs, i - vs))));
    return false;
  }
  SkipSpaces(line, i);
  if (i < line.size()) {  // optional integer timestamp, then nothing
    size_t ts = i;
    if (line[i] == '-') ++i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    SkipSpaces(line, i);
    if (i != line.size() || ts == i) {
      *why = "unexpected text after the value";
      return false;
    }
  }
  return true;
}

}  // namespace

PromParseResult ParsePrometheusText(std::string_view text,
                                    const std::function<bool(std::string_view)>& keep) {
  PromParseResult r;
  // A sample line's metric name ends at '{', a space or a tab.
  auto name_of = [](std::string_view l) { return l.substr(0, l.find_first_of("{ \t")); };
  size_t pos = 0;
  int lineno = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t i = 0;
    SkipSpaces(line, i);
    line.remove_prefix(i);
    if (line.empty()) continue;
    if (line.front() == '#') {
      // "# TYPE name type"; other comments (HELP, free text) are skipped.
      constexpr std::string_view kType = "# TYPE ";
      if (line == "# TYPE" || line.substr(0, kType.size()) == kType) {
        std::string_view rest = line.size() > kType.size() ? line.substr(kType.size()) : "";
        if (keep && !keep(name_of(rest))) continue;
        size_t sp = rest.find(' ');
        if (sp != std::string_view::npos && sp > 0) {
          std::string_view type = rest.substr(sp + 1);
          while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
          while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
          r.types[std::string(rest.substr(0, sp))] = std::string(type);
        } else {
          ++r.warnings;
          if (r.messages.size() < kMaxMessages) {
            r.messages.push_back("line " + std::to_string(lineno) + ": malformed TYPE line");
          }
        }
      }
      continue;
    }
    if (keep && !keep(name_of(line))) continue;
    PromSample s;
    std::string why;
    if (ParseSample(line, &s, &why)) {
      r.samples.push_back(std::move(s));
    } else {
      ++r.warnings;
      if (r.messages.size() < kMaxMessages) {
        r.messages.push_back("line " + std::to_string(lineno) + ": " + why);
      }
    }
  }
  return r;
}

}  // namespace gimbal::net
