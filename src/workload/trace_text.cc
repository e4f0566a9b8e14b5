#include "workload/trace_text.h"

#include <sys/stat.h>

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace gimbal::trace {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses exactly `width` decimal digits at s[pos...]; -1 when they are not all digits.
int Digits(std::string_view s, size_t pos, size_t width) {
  if (pos + width > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + width; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
int64_t DaysSinceEpoch(int64_t year, int month, int day) {
  // Count from March so the leap day is the last day of the (shifted) year.
  const int64_t y = month <= 2 ? year - 1 : year;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t year_of_era = y - era * 400;
  const int64_t shifted_month = month > 2 ? month - 3 : month + 9;
  const int64_t day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

bool IsLeap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

}  // namespace

Result<std::vector<std::string>> SplitCsvLine(std::string_view line) {
  std::vector<std::string> fields;
  size_t i = 0;
  while (true) {
    // Skip leading blanks of the field.
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field.push_back(line[i++]);
      }
      if (!closed) return InvalidArgument("unterminated quoted field");
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < line.size() && line[i] != ',') {
        return InvalidArgument(
            fmt::format("unexpected text after a quoted field: '{}'", Printable(line.substr(i))));
      }
    } else {
      const size_t start = i;
      while (i < line.size() && line[i] != ',') ++i;
      field = std::string(Trim(line.substr(start, i - start)));
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;  // the comma
  }
  return fields;
}

std::optional<int64_t> ParseNonNegativeInt(std::string_view s) {
  s = Trim(s);
  if (s.empty() || s.front() == '-' || s.front() == '+') return std::nullopt;
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc()) return std::nullopt;
  if (p != end) {
    // Allow an integral value written with a zero fraction ("12.0", "12.").
    if (*p != '.') return std::nullopt;
    for (const char* q = p + 1; q < end; ++q) {
      if (*q != '0') return std::nullopt;
    }
  }
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  s = Trim(s);
  if (s.empty()) return std::nullopt;
  if (s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<UtcTime> ParseUtcTime(std::string_view s) {
  s = Trim(s);
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) s.remove_suffix(1);
  // YYYY-MM-DD HH:MM:SS = 19 characters.
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  const int year = Digits(s, 0, 4);
  const int month = Digits(s, 5, 2);
  const int day = Digits(s, 8, 2);
  const int hour = Digits(s, 11, 2);
  const int minute = Digits(s, 14, 2);
  const int second = Digits(s, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
      minute > 59 || second < 0 || second > 60) {
    return std::nullopt;
  }
  static constexpr int kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int days_in_month = kDaysIn[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0);
  if (day > days_in_month) return std::nullopt;
  UtcTime t;
  t.seconds = DaysSinceEpoch(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  if (s.size() > 19) {
    if (s[19] != '.' || s.size() == 20) return std::nullopt;
    double scale = 0.1;
    for (size_t i = 20; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      t.fraction += (s[i] - '0') * scale;
      scale /= 10;
    }
  }
  return t;
}

std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

Result<LineReader> LineReader::Open(const std::string& path, const LineLimits& limits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return NotFound(fmt::format("{}: cannot open trace file", path));
  }
  if (S_ISDIR(st.st_mode)) {
    return InvalidArgument(fmt::format("{}: is a directory, expected a trace file", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument(fmt::format(
        "{}: is not a regular file (a device, pipe or socket), expected a trace file", path));
  }
  if (st.st_size > limits.max_file_bytes) {
    return InvalidArgument(fmt::format("{}: {} bytes, more than the {} bytes a trace file may have",
                                       path, static_cast<int64_t>(st.st_size),
                                       limits.max_file_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("{}: cannot open trace file", path));
  return LineReader(path, std::move(in), limits);
}

bool LineReader::Next(std::string& line) {
  line.clear();
  if (!status_.ok()) return false;
  std::streambuf* buf = in_.rdbuf();
  bool any = false;
  for (int c = buf->sbumpc(); c != std::char_traits<char>::eof(); c = buf->sbumpc()) {
    any = true;
    if (c == '\n') break;
    if (line.size() >= limits_.max_line_bytes) {
      status_ =
          InvalidArgument(fmt::format("{}:{}: line longer than {} bytes (is this a trace file?)",
                                      path_, line_ + 1, limits_.max_line_bytes));
      line.clear();
      return false;
    }
    line.push_back(static_cast<char>(c));
  }
  if (!any) return false;
  if (line_ >= limits_.max_lines) {
    status_ = InvalidArgument(fmt::format("{}:{}: more than {} lines; cut the trace", path_,
                                          line_ + 1, limits_.max_lines));
    line.clear();
    return false;
  }
  ++line_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
  return true;
}

std::string LineReader::Where() const {
  return fmt::format("{}:{}: ", path_, line_);
}

}  // namespace gimbal::trace
