// Trace readers: Azure LLM inference CSV, Mooncake JSONL, BurstGPT CSV.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_message.h"
#include "workload/trace_text.h"
#include "workload/workload.h"
#include "workload/workload_internal.h"

namespace gimbal {
namespace {

using trace::Printable;

// One request as read, before timing is made relative and the spec's options are applied.
struct Row {
  double time = 0;  // seconds, any origin
  int64_t prompt = 0;
  int64_t output = 0;
  int32_t traffic_class = -1;  // -1: draw by weight
  uint64_t affinity_key = 0;
  std::vector<uint64_t> hashes;
};

Status CheckTraceOptions(const WorkloadSpec& spec, const std::vector<double>& class_weights) {
  GIMBAL_RETURN_IF_ERROR(internal::CheckClassWeights(class_weights));
  return internal::CheckTraceOptions(spec);
}

// Makes times relative, draws missing classes, applies start_offset, time_scale and
// max_requests, sorts by arrival and numbers the requests.
Result<std::vector<Request>> Finish(std::vector<Row> rows, const std::string& path,
                                    const WorkloadSpec& spec,
                                    const std::vector<double>& class_weights, Rng& rng) {
  if (rows.empty()) return InvalidArgument(fmt::format("{}: the trace has no requests", path));
  Rng class_rng(rng.NextU64());
  const AliasTable classes(class_weights);
  double t0 = rows.front().time;
  double t1 = rows.front().time;
  for (const Row& r : rows) {
    t0 = std::min(t0, r.time);
    t1 = std::max(t1, r.time);
  }
  std::vector<Request> out;
  out.reserve(rows.size());
  for (Row& row : rows) {
    // Draw for every row, kept or not, so start_offset does not shift later rows' classes.
    const int32_t cls = row.traffic_class >= 0 ? row.traffic_class
                                               : static_cast<int32_t>(classes.Sample(class_rng));
    const double rel = row.time - t0;
    if (rel < spec.start_offset) continue;
    Request r;
    r.arrival = (rel - spec.start_offset) * spec.time_scale;
    r.prompt_tokens = std::max<int64_t>(1, row.prompt);
    r.output_tokens = std::max<int64_t>(1, row.output);
    r.traffic_class = cls;
    r.affinity_key = row.affinity_key;
    r.prefix_hashes = std::move(row.hashes);
    out.push_back(std::move(r));
  }
  if (out.empty()) {
    return InvalidArgument(
        fmt::format("{}: no requests at or after start_offset {} s (the trace spans {} s)", path,
                    spec.start_offset, t1 - t0));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Request& a, const Request& b) { return a.arrival < b.arrival; });
  if (spec.max_requests > 0 && out.size() > static_cast<size_t>(spec.max_requests)) {
    out.resize(static_cast<size_t>(spec.max_requests));
  }
  if (out.size() > static_cast<size_t>(kMaxWorkloadRequests)) {
    return InvalidArgument(
        fmt::format("{}: {} requests, more than the {} a workload may have; set max_requests (and "
                    "start_offset to choose which)",
                    path, out.size(), kMaxWorkloadRequests));
  }
  if (!(out.back().arrival <= kMaxWorkloadSpanS)) {
    return InvalidArgument(fmt::format(
        "{}: the requests span {:.3g} s after time_scale, more than the {:.3g} s (366 days) a "
        "workload may span; set max_requests, start_offset or time_scale",
        path, out.back().arrival, kMaxWorkloadSpanS));
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].id = static_cast<RequestId>(i);
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A CSV file with a header naming at least `required` columns (case-insensitive, any order).
// Calls on_row(fields, column_index_of_required, where) for each non-blank data row.
template <typename OnRow>
Status ReadCsv(trace::LineReader& in, const std::vector<std::string>& required, OnRow on_row) {
  const std::string expected = fmt::format("{}", fmt::join(required, ","));
  std::string line;
  if (!in.Next(line) || line.empty()) {
    GIMBAL_RETURN_IF_ERROR(in.status());
    return InvalidArgument(
        fmt::format("{}:1: missing header: expected columns {}", in.path(), expected));
  }
  auto header = trace::SplitCsvLine(line);
  if (!header.ok()) {
    return InvalidArgument(fmt::format("{}bad header: {} (expected columns {})", in.Where(),
                                       header.status().message(), expected));
  }
  std::vector<size_t> index;
  for (const std::string& name : required) {
    size_t found = header->size();
    for (size_t i = 0; i < header->size(); ++i) {
      if (Lower((*header)[i]) == Lower(name)) found = i;
    }
    if (found == header->size()) {
      return InvalidArgument(
          fmt::format("{}bad header: missing column '{}' (expected columns {}, got '{}')",
                      in.Where(), name, expected, Printable(line, 120)));
    }
    index.push_back(found);
  }
  while (in.Next(line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto fields = trace::SplitCsvLine(line);
    if (!fields.ok()) return InvalidArgument(in.Where() + fields.status().message());
    if (fields->size() < header->size()) {
      return InvalidArgument(fmt::format(
          "{}missing column '{}': the row has {} of the header's {} columns", in.Where(),
          Printable((*header)[fields->size()]), fields->size(), header->size()));
    }
    if (fields->size() > header->size()) {
      return InvalidArgument(fmt::format("{}expected {} columns as in the header, got {}",
                                         in.Where(), header->size(), fields->size()));
    }
    GIMBAL_RETURN_IF_ERROR(on_row(*fields, index));
  }
  return in.status();
}

// A token count of a trace row: an integer in [0, kMaxRequestTokens].
std::optional<int64_t> TokenCount(std::string_view s) {
  const auto v = trace::ParseNonNegativeInt(s);
  if (!v || *v > kMaxRequestTokens) return std::nullopt;
  return v;
}

const std::string kTokenCount = fmt::format("a non-negative integer <= {}", kMaxRequestTokens);

Status BadValue(const trace::LineReader& in, std::string_view column, std::string_view expected,
                std::string_view got) {
  return InvalidArgument(fmt::format("{}column '{}': expected {}, got '{}'", in.Where(), column,
                                     expected, Printable(got)));
}

}  // namespace

Result<std::vector<Request>> ReadAzureTrace(const std::string& path, const WorkloadSpec& spec,
                                            const std::vector<double>& class_weights, Rng& rng) {
  GIMBAL_RETURN_IF_ERROR(CheckTraceOptions(spec, class_weights));
  auto in = trace::LineReader::Open(path);
  if (!in.ok()) return in.status();
  const std::vector<std::string> cols = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"};
  std::vector<Row> rows;
  std::optional<int64_t> base;  // whole seconds of the first row, for precision
  Status st =
      ReadCsv(*in, cols, [&](const std::vector<std::string>& f, const std::vector<size_t>& ix) {
        const auto t = trace::ParseUtcTime(f[ix[0]]);
        if (!t)
          return BadValue(*in, cols[0], "a time like '2023-11-16 18:15:46.6805900'", f[ix[0]]);
        const auto prompt = TokenCount(f[ix[1]]);
        if (!prompt) return BadValue(*in, cols[1], kTokenCount, f[ix[1]]);
        const auto output = TokenCount(f[ix[2]]);
        if (!output) return BadValue(*in, cols[2], kTokenCount, f[ix[2]]);
        if (!base) base = t->seconds;
        Row r;
        r.time = static_cast<double>(t->seconds - *base) + t->fraction;
        r.prompt = *prompt;
        r.output = *output;
        rows.push_back(std::move(r));
        return Status::Ok();
      });
  GIMBAL_RETURN_IF_ERROR(st);
  return Finish(std::move(rows), path, spec, class_weights, rng);
}

int32_t MooncakeClassForHash(uint64_t hash, const std::vector<double>& weights) {
  GIMBAL_CHECK(internal::CheckClassWeights(weights).ok(), "MooncakeClassForHash: bad weights");
  // splitmix64 finaliser: consecutive hash ids land far apart in [0, 1).
  uint64_t z = hash + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  double sum = 0;
  for (double w : weights) sum += w;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53 * sum;
  double cum = 0;
  int32_t last_positive = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0) continue;
    last_positive = static_cast<int32_t>(i);
    cum += weights[i];
    if (u < cum) return last_positive;
  }
  return last_positive;  // rounding at the top end
}

namespace {

// A JSON value that is a non-negative integer (integral floats accepted).
std::optional<uint64_t> JsonNonNegativeInt(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    if (i >= 0) return static_cast<uint64_t>(i);
    return std::nullopt;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= 0 && d < 0x1.0p63 && std::floor(d) == d) return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<Request>> ReadMooncakeTrace(const std::string& path, const WorkloadSpec& spec,
                                               const std::vector<double>& class_weights, Rng& rng) {
  GIMBAL_RETURN_IF_ERROR(CheckTraceOptions(spec, class_weights));
  auto in = trace::LineReader::Open(path);
  if (!in.ok()) return in.status();
  std::vector<Row> rows;
  std::string line;
  while (in->Next(line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      std::string what = e.what();
      if (const auto p = what.find("] ");
          what.starts_with("[json.exception") && p != std::string::npos) {
        what = what.substr(p + 2);
      }
      // The parser sees one line at a time, so its "line 1" is noise.
      if (const auto p = what.find("at line 1, column "); p != std::string::npos) {
        what.replace(p, 18, "at column ");
      }
      return InvalidArgument(fmt::format("{}malformed JSON (expected one object per line): {}",
                                         in->Where(), Printable(what, 200)));
    }
    if (!j.is_object()) {
      return InvalidArgument(fmt::format("{}expected a JSON object, got '{}'", in->Where(),
                                         Printable(JsonForMessage(j))));
    }
    auto field = [&](const char* name) -> const nlohmann::json* {
      const auto it = j.find(name);
      return it == j.end() ? nullptr : &*it;
    };
    auto bad = [&](const char* name, const char* expected, const nlohmann::json& got) {
      return InvalidArgument(fmt::format("{}field '{}': expected {}, got '{}'", in->Where(), name,
                                         expected, Printable(JsonForMessage(got))));
    };
    for (const char* name : {"timestamp", "input_length", "output_length"}) {
      if (!field(name)) {
        return InvalidArgument(
            fmt::format("{}missing field '{}' (expected timestamp, input_length, output_length and "
                        "optional hash_ids)",
                        in->Where(), name));
      }
    }
    Row r;
    const nlohmann::json& ts = *field("timestamp");
    if (!ts.is_number() || !(ts.get<double>() >= 0) || !std::isfinite(ts.get<double>())) {
      return bad("timestamp", "a number of milliseconds >= 0", ts);
    }
    r.time = ts.get<double>() / 1000.0;
    const auto input = JsonNonNegativeInt(*field("input_length"));
    if (!input || *input > static_cast<uint64_t>(kMaxRequestTokens)) {
      return bad("input_length", kTokenCount.c_str(), *field("input_length"));
    }
    const auto output = JsonNonNegativeInt(*field("output_length"));
    if (!output || *output > static_cast<uint64_t>(kMaxRequestTokens)) {
      return bad("output_length", kTokenCount.c_str(), *field("output_length"));
    }
    r.prompt = static_cast<int64_t>(*input);
    r.output = static_cast<int64_t>(*output);
    if (const nlohmann::json* h = field("hash_ids"); h && !h->is_null()) {
      if (!h->is_array()) return bad("hash_ids", "a list of non-negative integers", *h);
      for (const nlohmann::json& v : *h) {
        const auto id = JsonNonNegativeInt(v);
        if (!id) return bad("hash_ids", "a list of non-negative integers", v);
        r.hashes.push_back(*id);
      }
    }
    if (!r.hashes.empty()) {
      r.affinity_key = r.hashes.front() + 1;
      r.traffic_class = MooncakeClassForHash(r.hashes.front(), class_weights);
    }
    rows.push_back(std::move(r));
  }
  GIMBAL_RETURN_IF_ERROR(in->status());
  return Finish(std::move(rows), path, spec, class_weights, rng);
}

Result<std::vector<Request>> ReadBurstGptTrace(const std::string& path, const WorkloadSpec& spec,
                                               const std::vector<double>& class_weights, Rng& rng) {
  GIMBAL_RETURN_IF_ERROR(CheckTraceOptions(spec, class_weights));
  auto in = trace::LineReader::Open(path);
  if (!in.ok()) return in.status();
  const std::vector<std::string> cols = {"Timestamp", "Request tokens", "Response tokens"};
  std::vector<Row> rows;
  int64_t failed = 0;
  Status st =
      ReadCsv(*in, cols, [&](const std::vector<std::string>& f, const std::vector<size_t>& ix) {
        const auto t = trace::ParseDouble(f[ix[0]]);
        if (!t || *t < 0) return BadValue(*in, cols[0], "a number of seconds >= 0", f[ix[0]]);
        const auto prompt = TokenCount(f[ix[1]]);
        if (!prompt) return BadValue(*in, cols[1], kTokenCount, f[ix[1]]);
        const auto output = TokenCount(f[ix[2]]);
        if (!output) return BadValue(*in, cols[2], kTokenCount, f[ix[2]]);
        if (*output == 0) {  // a failed request: BurstGPT logs them with no response
          ++failed;
          return Status::Ok();
        }
        Row r;
        r.time = *t;
        r.prompt = *prompt;
        r.output = *output;
        rows.push_back(std::move(r));
        return Status::Ok();
      });
  GIMBAL_RETURN_IF_ERROR(st);
  if (rows.empty() && failed > 0) {
    return InvalidArgument(fmt::format(
        "{}: the trace has no requests: all {} rows have 0 response tokens (failed requests)", path,
        failed));
  }
  return Finish(std::move(rows), path, spec, class_weights, rng);
}

}  // namespace gimbal
