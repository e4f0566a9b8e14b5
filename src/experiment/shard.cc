#include "experiment/shard.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/json_depth.h"
#include "core/json_message.h"

namespace gimbal::experiment {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "gimbal.shard/1";

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ULL;
  void Bytes(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(p[i]);
      h *= 0x100000001b3ULL;
    }
  }
  void Add(const std::string& s) {
    Bytes(s.data(), s.size());
    End();
  }
  // A file's bytes, read a piece at a time (a trace may be hundreds of MB).
  void AddFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      Add("<missing>");
      return;
    }
    std::string piece(1 << 16, '\0');
    while (in.read(piece.data(), static_cast<std::streamsize>(piece.size())) || in.gcount() > 0) {
      Bytes(piece.data(), static_cast<size_t>(in.gcount()));
    }
    End();
  }
  // A separator, so that ("ab", "c") and ("a", "bc") differ.
  void End() {
    h ^= 0xff;
    h *= 0x100000001b3ULL;
  }
};

uint64_t HashId(const std::string& id) {
  Fnv1a f;
  f.Add(id);
  return f.h;
}

// The file's bytes, or "<missing>" when it cannot be read.
std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<missing>";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A non-empty run of decimal digits, at most 9 of them, as an int; -1 otherwise.
int ParseCount(const std::string& s) {
  if (s.empty() || s.size() > 9) return -1;
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.front() == '+' || s.front() == '-') {
    return -1;
  }
  return v;
}

std::string Label(ShardSpec s) {
  return fmt::format("{}/{}", s.index, s.count);
}

nlohmann::ordered_json Manifest(const Suite& suite, const SuitePlan& plan, ShardSpec shard,
                                const std::vector<size_t>& indices, bool complete) {
  nlohmann::ordered_json m;
  m["format"] = kFormat;
  m["suite"] = suite.name;
  m["suite_file"] = suite.file;
  m["suite_hash"] = SuiteHash(suite, plan);
  m["shard"] = shard.index;
  m["shards"] = shard.count;
  m["complete"] = complete;
  m["points"] = nlohmann::ordered_json::array();
  for (const size_t i : indices) m["points"].push_back(plan.points[i].id);
  return m;
}

// A shard folder's manifest, checked for its keys and types.
struct Loaded {
  std::string dir;
  std::string suite, suite_hash;
  ShardSpec shard;
  bool complete = false;
  std::vector<std::string> points;
};

Result<Loaded> LoadManifest(const std::string& dir) {
  const fs::path path = fs::path(dir) / "shard.json";
  std::ifstream in(path);
  if (!in) {
    return NotFound(fmt::format(
        "{}: no shard.json (not a folder written by `gimbal experiment --shard K/N`)", dir));
  }
  Loaded l;
  l.dir = dir;
  try {
    auto parsed = ParseJsonBounded<nlohmann::json>(in);
    if (!parsed.ok()) {
      return InvalidArgument(fmt::format("{}: {}", path.string(), parsed.status().message()));
    }
    const nlohmann::json& m = *parsed;
    if (m.value("format", "") != kFormat) {
      return InvalidArgument(fmt::format("{}: format is not {}", path.string(), kFormat));
    }
    l.suite = m.at("suite").get<std::string>();
    l.suite_hash = m.at("suite_hash").get<std::string>();
    // Whole numbers in range before narrowing: 4294967298 or 2.9 read as shard 2.
    for (const char* key : {"shard", "shards"}) {
      const auto& v = m.at(key);
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxShards) {
        return InvalidArgument(fmt::format("{}: '{}' must be an integer in [1, {}], got {}",
                                           path.string(), key, kMaxShards, JsonForMessage(v)));
      }
    }
    l.shard.index = m.at("shard").get<int>();
    l.shard.count = m.at("shards").get<int>();
    l.complete = m.at("complete").get<bool>();
    l.points = m.at("points").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(fmt::format("{}: unreadable: {}", path.string(), e.what()));
  }
  if (l.shard.count < 1 || l.shard.count > kMaxShards || l.shard.index < 1 ||
      l.shard.index > l.shard.count) {
    return InvalidArgument(
        fmt::format("{}: shard {} is not K/N with 1 <= K <= N", path.string(), Label(l.shard)));
  }
  return l;
}

// Copies `from` to `to` through a temporary file and a rename; nothing when they are one file.
Status CopyAtomic(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  if (fs::exists(to) && fs::equivalent(from, to, ec)) return Status::Ok();
  const fs::path tmp = fmt::format("{}.tmp.{}", to.string(), static_cast<long>(::getpid()));
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return IoError(
        fmt::format("cannot copy {} to {}: {}", from.string(), tmp.string(), ec.message()));
  }
  fs::rename(tmp, to, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return IoError(fmt::format("cannot rename {} to {}", tmp.string(), to.string()));
  }
  return Status::Ok();
}

}  // namespace

Result<ShardSpec> ParseShard(const std::string& text) {
  const size_t slash = text.find('/');
  const int k = slash == std::string::npos ? -1 : ParseCount(text.substr(0, slash));
  const int n = slash == std::string::npos ? -1 : ParseCount(text.substr(slash + 1));
  if (k < 0 || n < 0) {
    return InvalidArgument(fmt::format(
        "--shard {}: expected K/N, two whole numbers with 1 <= K <= N (e.g. --shard 2/8)", text));
  }
  if (n < 1 || n > kMaxShards) {
    return InvalidArgument(fmt::format("--shard {}: N must be in 1..{}", text, kMaxShards));
  }
  if (k < 1 || k > n) {
    return InvalidArgument(fmt::format("--shard {}: K must be in 1..N (here 1..{})", text, n));
  }
  return ShardSpec{k, n};
}

std::string SuiteHash(const Suite& suite, const SuitePlan& plan) {
  Fnv1a f;
  f.Add(FileBytes(suite.file));
  // The files' bytes, not their paths: a suite named by another path is the same suite.
  for (const auto& s : suite.scenarios) f.Add(FileBytes(s.path));
  for (const uint64_t seed : suite.seeds) f.Add(std::to_string(seed));
  for (const Point& p : plan.points) f.Add(p.id);
  // The traces the scenarios replay, by their bytes too: shards run on another trace of the same
  // name merged silently.
  std::set<std::string> traces;
  for (const Point& p : plan.points) {
    if (p.spec && !p.spec->workload.path.empty()) traces.insert(p.spec->workload.path);
  }
  for (const std::string& t : traces) f.AddFile(t);
  return fmt::format("{:016x}", f.h);
}

std::vector<size_t> ShardPoints(const SuitePlan& plan, ShardSpec shard) {
  std::vector<std::pair<uint64_t, size_t>> order;
  order.reserve(plan.points.size());
  for (size_t i = 0; i < plan.points.size(); ++i) order.emplace_back(HashId(plan.points[i].id), i);
  std::sort(order.begin(), order.end());
  std::vector<size_t> mine;
  const size_t n = static_cast<size_t>(std::max(shard.count, 1));
  for (size_t j = 0; j < order.size(); ++j) {
    if (j % n == static_cast<size_t>(shard.index - 1)) mine.push_back(order[j].second);
  }
  std::sort(mine.begin(), mine.end());
  return mine;
}

Result<RunSummary> RunShard(const Suite& suite, const SuitePlan& plan, ShardSpec shard,
                            const RunOptions& options) {
  if (shard.count < 1 || shard.index < 1 || shard.index > shard.count) {
    return InvalidArgument(fmt::format("shard {}: K must be in 1..N", Label(shard)));
  }
  const std::string hash = SuiteHash(suite, plan);
  const fs::path manifest = fs::path(options.out_dir) / "shard.json";
  if (fs::exists(manifest)) {
    auto old = LoadManifest(options.out_dir);
    if (!old.ok()) return old.status();
    if (old->suite_hash != hash || old->shard.index != shard.index ||
        old->shard.count != shard.count) {
      return InvalidArgument(fmt::format(
          "{} holds shard {} of suite '{}' (hash {}), not shard {} of suite '{}' (hash {}): give "
          "each shard its own --out",
          options.out_dir, Label(old->shard), old->suite, old->suite_hash, Label(shard), suite.name,
          hash));
    }
  }
  const std::vector<size_t> mine = ShardPoints(plan, shard);
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) return IoError(fmt::format("cannot create {}: {}", options.out_dir, ec.message()));
  GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(
      manifest.string(), Manifest(suite, plan, shard, mine, false)
                                 .dump(1, ' ', false, nlohmann::json::error_handler_t::replace) +
                             "\n"));
  if (options.log) {
    *options.log << fmt::format("shard {}: {} of the suite's {} points\n", Label(shard),
                                mine.size(), plan.points.size());
  }
  auto summary = RunPoints(suite, plan, mine, options);
  if (!summary.ok()) return summary.status();
  GIMBAL_RETURN_IF_ERROR(WriteFileAtomic(
      manifest.string(), Manifest(suite, plan, shard, mine, true)
                                 .dump(1, ' ', false, nlohmann::json::error_handler_t::replace) +
                             "\n"));
  return summary;
}

Result<MergeSummary> MergeShards(const Suite& suite, const SuitePlan& plan,
                                 const std::vector<std::string>& shard_dirs,
                                 const std::string& out_dir) {
  if (shard_dirs.empty()) return InvalidArgument("no shard folders to merge");
  const std::string hash = SuiteHash(suite, plan);
  std::vector<Loaded> shards;
  int n = 0;                // N, from the first shard
  std::string first_label;  // the first shard's K/N
  for (const auto& dir : shard_dirs) {
    auto l = LoadManifest(dir);
    if (!l.ok()) return l.status();
    if (l->suite_hash != hash) {
      return InvalidArgument(fmt::format(
          "{}: shard {} of suite '{}' (hash {}) is not a shard of {} (hash {}): the suite file, a "
          "scenario file or the seeds differ",
          dir, Label(l->shard), l->suite, l->suite_hash, suite.file, hash));
    }
    if (n == 0) {
      n = l->shard.count;
      first_label = Label(l->shard);
    }
    if (l->shard.count != n) {
      return InvalidArgument(fmt::format(
          "{} is shard {} but {} is shard {}: every shard must split the suite into the same N",
          dir, Label(l->shard), shard_dirs.front(), first_label));
    }
    shards.push_back(std::move(*l));
  }
  std::map<int, const Loaded*> by_index;
  for (const auto& s : shards) {
    auto [it, fresh] = by_index.emplace(s.shard.index, &s);
    if (!fresh) {
      return InvalidArgument(
          fmt::format("shard {} given twice: {} and {}", Label(s.shard), it->second->dir, s.dir));
    }
  }
  std::vector<std::string> missing;
  for (int k = 1; k <= n; ++k) {
    if (!by_index.count(k)) missing.push_back(Label({k, n}));
  }
  if (!missing.empty()) {
    return InvalidArgument(fmt::format("missing shard{} {} (given {} of {})",
                                       missing.size() > 1 ? "s" : "", fmt::join(missing, ", "),
                                       shards.size(), n));
  }
  // Every point listed by exactly one shard, the one it belongs to, and finished there.
  std::map<std::string, const Loaded*> owner;
  for (const auto& [k, s] : by_index) {
    if (!s->complete) {
      return InvalidArgument(
          fmt::format("{}: shard {} is unfinished (shard.json says complete: false); rerun its "
                      "`gimbal experiment --shard {}` command to finish it",
                      s->dir, Label(s->shard), Label(s->shard)));
    }
    for (const auto& id : s->points) {
      auto [it, fresh] = owner.emplace(id, s);
      if (!fresh) {
        return InvalidArgument(fmt::format("point {} is in shard {} ({}) and in shard {} ({})", id,
                                           Label(it->second->shard), it->second->dir,
                                           Label(s->shard), s->dir));
      }
    }
  }
  for (const auto& [k, s] : by_index) {
    const std::vector<size_t> want = ShardPoints(plan, s->shard);
    std::set<std::string> listed(s->points.begin(), s->points.end());
    for (const size_t i : want) {
      const std::string& id = plan.points[i].id;
      if (!listed.count(id)) {
        return InvalidArgument(fmt::format("{}: point {} of shard {} is not in its shard.json",
                                           s->dir, id, Label(s->shard)));
      }
      if (!PointFinished(s->dir, id)) {
        return InvalidArgument(
            fmt::format("{}: point {} of shard {} is missing or unreadable (points/{}.json, "
                        "points/{}.requests.csv); rerun the shard's command to recompute it",
                        s->dir, id, Label(s->shard), id, id));
      }
    }
    if (want.size() != s->points.size()) {
      std::set<std::string> wanted;
      for (const size_t i : want) wanted.insert(plan.points[i].id);
      for (const auto& id : s->points) {
        if (!wanted.count(id)) {
          return InvalidArgument(fmt::format(
              "{}: shard.json of shard {} lists point {}, which is not one of its points", s->dir,
              Label(s->shard), id));
        }
      }
    }
  }

  const fs::path points_dir = fs::path(out_dir) / "points";
  std::error_code ec;
  fs::create_directories(points_dir, ec);
  if (ec) return IoError(fmt::format("cannot create {}: {}", points_dir.string(), ec.message()));
  nlohmann::ordered_json merged_from = nlohmann::ordered_json::array();
  for (const auto& [k, s] : by_index) {
    merged_from.push_back(s->dir);
    const fs::path from = fs::path(s->dir) / "points";
    for (const auto& id : s->points) {
      for (const std::string& name : {id + ".requests.csv", id + ".json"}) {
        GIMBAL_RETURN_IF_ERROR(CopyAtomic(from / name, points_dir / name));
      }
    }
  }
  MergeSummary m;
  m.shards = n;
  m.points = static_cast<int>(plan.points.size());
  RunSummary written;
  GIMBAL_RETURN_IF_ERROR(WriteResults(suite, plan, out_dir, &written));
  m.results_json = written.results_json;
  m.results_csv = written.results_csv;
  nlohmann::ordered_json run;
  run["computed"] = 0;
  run["reused"] = m.points;
  run["computed_ids"] = nlohmann::ordered_json::array();
  run["jobs"] = 0;
  run["merged_from"] = merged_from;
  GIMBAL_RETURN_IF_ERROR(
      WriteFileAtomic((fs::path(out_dir) / "run.json").string(),
                      run.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
  return m;
}

}  // namespace gimbal::experiment
