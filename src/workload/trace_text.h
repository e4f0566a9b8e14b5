// Text helpers shared by the trace readers (internal to src/workload).
//
// The readers are line-oriented and dependency-free: a CSV splitter that understands quoted
// fields ("a,b" and "" for a quote) on a single line, strict number parsers that never throw, a
// UTC date-time parser for Azure timestamps, and Printable(), which makes an arbitrary field safe
// to quote in an error message (non-printable bytes escaped, long values cut).
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "workload/workload.h"

namespace gimbal::trace {

// Splits one CSV line. Fields are trimmed of surrounding spaces unless quoted. Fails on an
// unterminated quote or text after a closing quote.
Result<std::vector<std::string>> SplitCsvLine(std::string_view line);

// A non-negative decimal integer (optional surrounding spaces; "12.0" is accepted as 12).
std::optional<int64_t> ParseNonNegativeInt(std::string_view s);
// A finite decimal number (optional surrounding spaces).
std::optional<double> ParseDouble(std::string_view s);

// A UTC time split as whole seconds since 1970-01-01 and a fraction in [0, 1), so differences
// keep sub-microsecond precision.
struct UtcTime {
  int64_t seconds = 0;
  double fraction = 0;
};
// "YYYY-MM-DD HH:MM:SS[.fraction]" ('T' also accepted between date and time; optional 'Z').
std::optional<UtcTime> ParseUtcTime(std::string_view s);

// `s` made safe for a message: bytes outside printable ASCII as \xNN, cut to `max` characters.
std::string Printable(std::string_view s, size_t max = 40);

// Limits of a LineReader; by default the trace bounds of workload.h.
struct LineLimits {
  int64_t max_file_bytes = kMaxTraceFileBytes;
  size_t max_line_bytes = kMaxTraceLineBytes;
  int64_t max_lines = kMaxTraceRows + 1;  // a header and kMaxTraceRows rows
};

// Reads a file line by line, stripping a trailing '\r' and a UTF-8 byte-order mark on line 1.
class LineReader {
 public:
  // NotFound when the file cannot be opened; InvalidArgument when it is not a regular file (a
  // directory, a device such as /dev/zero, a pipe) or is larger than limits.max_file_bytes.
  static Result<LineReader> Open(const std::string& path, const LineLimits& limits = {});
  // False at end of file, or when a line is longer than max_line_bytes or there are more than
  // max_lines lines: then status() is an error naming path:line.
  bool Next(std::string& line);
  const Status& status() const { return status_; }
  int64_t line_number() const { return line_; }
  const std::string& path() const { return path_; }
  // "path:line: " for the line just read.
  std::string Where() const;

 private:
  LineReader(std::string path, std::ifstream in, const LineLimits& limits)
      : path_(std::move(path)), in_(std::move(in)), limits_(limits) {}
  std::string path_;
  std::ifstream in_;
  LineLimits limits_;
  int64_t line_ = 0;
  Status status_;
};

}  // namespace gimbal::trace
