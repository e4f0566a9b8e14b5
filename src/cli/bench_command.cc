// `gimbal bench`: load an OpenAI-compatible server the way `vllm bench serve` does and report the
// same keys. See docs/bench.md.
#include <cctype>
#include <charconv>
#include <cmath>
#include <iostream>
#include <limits>
#include <string_view>

#include <fmt/format.h>

#include "bench_client/bench_client.h"
#include "cli/command.h"
#include "config/scenario.h"
#include "experiment/runner.h"
#include "workload/workload.h"

namespace gimbal::cli {
namespace {

struct BenchFlags {
  bench::BenchOptions o;
  std::string dataset = "synthetic";
  std::string dataset_path;
  int64_t num_prompts = 1000;
  std::string request_rate = "inf";
  double burstiness = 1;
  int64_t input_len = 1024;
  int64_t output_len = 128;
  double range_ratio = 0;
  int64_t seed = 0;
  bool seed_given = false;
  std::string scenario;  // the workload of this scenario file instead of --dataset
  std::vector<std::string> overrides;
  double trace_time_scale = 1;
  std::string json_out;
  bool save_detailed = false;
  std::string prompt_format = "ids";
};

void Fail(const std::string& msg) {
  std::cerr << "gimbal bench: " << msg << "\n";
  throw CommandFailed(2);
}

LengthDist Lengths(int64_t len, double ratio) {
  LengthDist d;
  if (ratio > 0) {
    d.kind = LengthDist::Kind::kUniform;
    d.low = std::max(1.0, std::floor(static_cast<double>(len) * (1 - ratio)));
    d.high = std::ceil(static_cast<double>(len) * (1 + ratio));
  } else {
    d.kind = LengthDist::Kind::kFixed;
    d.mean = static_cast<double>(len);
  }
  return d;
}

// Every size, count and time option, before anything is loaded or allocated.
void CheckRanges(const BenchFlags& f) {
  CheckIntOption("bench", "--num-prompts", f.num_prompts, 1, kMaxWorkloadRequests);
  CheckIntOption("bench", "--max-concurrency", f.o.max_concurrency, 0, 1'000'000);
  CheckIntOption("bench", "--threads", f.o.threads, 1, kMaxIoThreads);
  CheckIntOption("bench", "--random-input-len", f.input_len, 1, kMaxRequestTokens);
  CheckIntOption("bench", "--random-output-len", f.output_len, 1, kMaxRequestTokens);
  CheckNumberOption("bench", "--burstiness", f.burstiness, kMinBurstiness, kMaxBurstiness);
  CheckNumberOption("bench", "--trace-time-scale", f.trace_time_scale, kMinTimeScale,
                    kMaxTimeScale);
  CheckIntOption("bench", "--seed", f.seed, 0, std::numeric_limits<int64_t>::max());
  CheckNumberOption("bench", "--timeout", f.o.request_timeout_s, 1e-3, 1e6);
  CheckNumberOption("bench", "--total-timeout", f.o.total_timeout_s, 1e-3, 1e7);
  CheckNumberOption("bench", "--goodput-ttft-ms", f.o.slo.ttft_ms, 0, 1e9);
  CheckNumberOption("bench", "--goodput-tpot-ms", f.o.slo.tpot_ms, 0, 1e9);
  CheckNumberOption("bench", "--goodput-e2el-ms", f.o.slo.e2el_ms, 0, 1e9);
}

// The requests of a scenario's workload, exactly as `gimbal simulate` builds them for the same
// seed (the scenario's own unless --seed is given).
std::vector<Request> ScenarioRequests(BenchFlags& f, double* rate_out) {
  if (f.dataset != "synthetic")
    Fail("--scenario takes its workload from the scenario; drop --dataset");
  auto sc = LoadScenario(f.scenario, f.overrides);
  if (!sc.ok()) Fail(sc.status().message());
  const uint64_t seed = f.seed_given ? static_cast<uint64_t>(f.seed) : sc->seed;
  Rng workload_rng = WorkloadRng(seed);
  auto reqs = BuildWorkload(sc->workload, sc->class_weights(), workload_rng);
  if (!reqs.ok()) Fail(reqs.status().message());
  // With emulated engines at --time-scale X, arrivals scaled by X keep the scenario's load.
  for (Request& r : *reqs) r.arrival *= f.trace_time_scale;
  // The workload's year-long bound holds after the scaling too (a request due centuries later was
  // sent at once, the timer's nanoseconds overflowing).
  if (!reqs->empty() && !(reqs->back().arrival - reqs->front().arrival <= kMaxWorkloadSpanS)) {
    Fail(fmt::format(
        "--trace-time-scale {}: the scenario's arrivals would span {:.3g} s, over the "
        "{:.0f} s (366 days) a run may last",
        f.trace_time_scale, reqs->back().arrival - reqs->front().arrival, kMaxWorkloadSpanS));
  }
  f.o.prefix_hash_tokens = PrefixHashTokens(sc->workload);
  f.dataset = "scenario " + sc->name;
  // The mean request rate over the arrivals (a session workload's rate is in sessions).
  const double span = reqs->empty() ? 0 : reqs->back().arrival - reqs->front().arrival;
  *rate_out = span > 0 ? static_cast<double>(reqs->size() - 1) / span
                       : std::numeric_limits<double>::infinity();
  f.request_rate = std::isinf(*rate_out) ? "inf" : fmt::format("{:.3f}", *rate_out);
  f.burstiness = sc->workload.burstiness;
  return std::move(*reqs);
}

std::vector<Request> DatasetRequests(BenchFlags& f, double* rate_out) {
  WorkloadSpec w;
  if (f.dataset == "synthetic" || f.dataset == "random") {
    w.kind = WorkloadSpec::Kind::kSynthetic;
  } else if (f.dataset == "azure") {
    w.kind = WorkloadSpec::Kind::kAzure;
  } else if (f.dataset == "mooncake") {
    w.kind = WorkloadSpec::Kind::kMooncake;
  } else if (f.dataset == "burstgpt") {
    w.kind = WorkloadSpec::Kind::kBurstGpt;
  } else {
    Fail(fmt::format(
        "unknown --dataset '{}' (synthetic, azure, mooncake, burstgpt; sessions through "
        "--scenario)",
        f.dataset));
  }
  if (f.range_ratio < 0 || f.range_ratio >= 1) Fail("--random-range-ratio must be in [0, 1)");
  double rate = 0;
  if (f.request_rate == "inf" || f.request_rate == "INF") {
    rate = std::numeric_limits<double>::infinity();
  } else {
    // The whole text a decimal number, as Python's float() reads one (vllm bench serve's
    // argument): spaces around it and a leading + allowed. std::stod alone took "5abc" as 5 and
    // "0x10" as 16.
    std::string_view text = f.request_rate;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
      text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
      text.remove_suffix(1);
    if (text.size() > 1 && text.front() == '+' && text[1] != '-') text.remove_prefix(1);
    const char* const begin = text.data();
    const char* const end = begin + text.size();
    const auto [stop, ec] = std::from_chars(begin, end, rate, std::chars_format::general);
    if (ec != std::errc() || stop != end) {
      Fail(fmt::format("--request-rate '{}' is not a number or inf", f.request_rate));
    }
    if (!(rate >= kMinRate && rate <= kMaxRate)) {
      Fail(fmt::format("--request-rate must be inf or a number in [{}, {}], got {}", kMinRate,
                       kMaxRate, f.request_rate));
    }
  }
  *rate_out = rate;
  w.num_requests = f.num_prompts;
  w.rate = rate;
  w.burstiness = f.burstiness;
  w.prompt = Lengths(f.input_len, f.range_ratio);
  w.output = Lengths(f.output_len, f.range_ratio);
  if (w.kind != WorkloadSpec::Kind::kSynthetic) {
    if (f.dataset_path.empty()) Fail("--dataset-path is required for trace datasets");
    w.path = f.dataset_path;
    w.max_requests = f.num_prompts;
    w.time_scale = f.trace_time_scale;
  }
  Status valid = ValidateWorkloadSpec(w);
  if (!valid.ok()) Fail(valid.message());
  Rng rng = WorkloadRng(static_cast<uint64_t>(f.seed));
  auto reqs = BuildWorkload(w, {1.0}, rng);
  if (!reqs.ok()) Fail(reqs.status().message());
  f.o.prefix_hash_tokens = PrefixHashTokens(w);
  return std::move(*reqs);
}

void RunBenchCommand(BenchFlags& f) {
  CheckRanges(f);
  if (f.prompt_format != "ids" && f.prompt_format != "text") Fail("--prompt-format is ids or text");
  double rate = 0;
  const std::vector<Request> requests =
      f.scenario.empty() ? DatasetRequests(f, &rate) : ScenarioRequests(f, &rate);
  const std::vector<Request>* reqs = &requests;
  f.o.token_id_prompts = f.prompt_format == "ids";
  f.o.seed = static_cast<uint64_t>(f.seed);

  std::cout << fmt::format("gimbal bench: {} requests to {}{} ({}, rate {}, burstiness {})\n",
                           reqs->size(), f.o.base_url, f.o.endpoint, f.dataset, f.request_rate,
                           f.burstiness);
  auto r = bench::RunBench(f.o, *reqs);
  if (!r.ok()) Fail(r.status().message());
  nlohmann::ordered_json out;
  out["date"] = r->summary["date"];
  out["backend"] = r->summary["backend"];
  out["model_id"] = f.o.model;
  out["dataset"] = f.dataset;
  out["num_prompts"] = reqs->size();
  out["request_rate"] =
      std::isinf(rate) ? nlohmann::ordered_json("inf") : nlohmann::ordered_json(rate);
  out["burstiness"] = f.burstiness;
  for (auto it = r->summary.begin(); it != r->summary.end(); ++it) {
    if (!out.contains(it.key())) out[it.key()] = it.value();
  }
  if (f.save_detailed) bench::AddDetails(*r, out);
  std::cout << bench::FormatSummary(out);
  if (!r->summary["error_samples"].empty()) {
    std::cout << "errors, first few:\n";
    for (const auto& e : r->summary["error_samples"])
      std::cout << "  " << e.get<std::string>() << "\n";
  }
  if (!f.json_out.empty()) {
    // Servers' error messages are quoted as they came: bytes that are not UTF-8 are written as
    // U+FFFD (a plain dump throws on them). Written beside and renamed, so a failed write leaves
    // no half file in place of an earlier result.
    const Status written = experiment::WriteFileAtomic(
        f.json_out,
        out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
    if (!written.ok()) Fail(written.message());
  }
  if (r->summary["completed"].get<int64_t>() == 0 && !reqs->empty()) throw CommandFailed(1);
}

void SetupBench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Benchmark an OpenAI-compatible server like `vllm bench serve` (docs/bench.md)");
  cmd->add_option("--base-url", f->o.base_url, "server URL")->capture_default_str();
  cmd->add_option("--endpoint", f->o.endpoint, "/v1/completions or /v1/chat/completions")
      ->capture_default_str();
  cmd->add_option("--model", f->o.model, "the `model` of every request")->required();
  cmd->add_option("--dataset,--dataset-name", f->dataset, "synthetic, azure, mooncake or burstgpt")
      ->capture_default_str();
  cmd->add_option("--dataset-path", f->dataset_path, "trace file for azure, mooncake, burstgpt");
  cmd->add_option("--num-prompts", f->num_prompts, "requests to send")->capture_default_str();
  cmd->add_option("--request-rate", f->request_rate, "requests per second, or inf")
      ->capture_default_str();
  cmd->add_option("--burstiness", f->burstiness,
                  "Gamma shape of inter-arrival gaps (1 = Poisson, < 1 burstier)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", f->o.max_concurrency,
                  "requests in flight at most (0: no limit)");
  cmd->add_option("--random-input-len", f->input_len, "synthetic prompt tokens")
      ->capture_default_str();
  cmd->add_option("--random-output-len", f->output_len, "synthetic output tokens")
      ->capture_default_str();
  cmd->add_option("--random-range-ratio", f->range_ratio,
                  "lengths uniform in [L(1-r), L(1+r)] (0: fixed)")
      ->capture_default_str();
  cmd->add_option("--trace-time-scale", f->trace_time_scale,
                  "multiply trace (and --scenario) arrival times by this (0.5 = twice the rate)")
      ->capture_default_str();
  CLI::Option* seed = cmd->add_option(
      "--seed", f->seed, "workload and prompt seed (default 0; with --scenario, the scenario's)");
  cmd->add_option("--scenario", f->scenario,
                  "send the workload of this scenario file (the requests `gimbal simulate` "
                  "replays for the same seed, sessions included) instead of --dataset");
  cmd->add_option("--set", f->overrides, "scenario override key.path=value (with --scenario)");
  cmd->add_option(
         "--prompt-format", f->prompt_format,
         "ids: token-id lists (exact lengths; /v1/completions), text: 4 characters per token")
      ->capture_default_str();
  cmd->add_flag("--send-traffic-class", f->o.send_traffic_class,
                "add gimbal_traffic_class to each request (read by gimbal engine)");
  cmd->add_option("--goodput-ttft-ms", f->o.slo.ttft_ms, "TTFT SLO for request_goodput");
  cmd->add_option("--goodput-tpot-ms", f->o.slo.tpot_ms, "TPOT SLO for request_goodput");
  cmd->add_option("--goodput-e2el-ms", f->o.slo.e2el_ms, "E2E latency SLO for request_goodput");
  cmd->add_option("--timeout", f->o.request_timeout_s, "seconds a request may stay silent")
      ->capture_default_str();
  cmd->add_option("--total-timeout", f->o.total_timeout_s,
                  "seconds a request may last, however steadily the server sends")
      ->capture_default_str();
  cmd->add_option("--threads", f->o.threads, "client io threads")->capture_default_str();
  cmd->add_option("--json,--result-file", f->json_out, "write the result JSON here");
  cmd->add_flag("--save-detailed", f->save_detailed,
                "add per-request input_lens, output_lens, ttfts, itls, errors to the JSON");
  cmd->callback([f, seed] {
    f->seed_given = seed->count() > 0;
    RunBenchCommand(*f);
  });
}

}  // namespace

GIMBAL_REGISTER_COMMAND("bench", SetupBench);

}  // namespace gimbal::cli
