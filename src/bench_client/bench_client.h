// gimbal bench: a load generator and latency meter for OpenAI-compatible servers, a peer of
// `vllm bench serve` (docs/bench.md).
//
// Requests come from the workload module (synthetic arrivals and lengths, or a trace) and are sent
// at their arrival times, at most `max_concurrency` at once (later ones wait for a slot; their
// clock starts when they are sent, as in vLLM's benchmark). Every request streams (stream: true,
// stream_options.include_usage, max_tokens = the request's output length, ignore_eos), and each
// SSE data event is timed: TTFT is send to first content event, ITL every gap between content
// events, E2E send to the end of the stream, TPOT (E2E − TTFT) / (output tokens − 1). Output
// tokens come from the final `usage` chunk when the server sends one, else from the count of
// content events. The summary has the key names of vLLM's benchmark JSON (sim::Summarise).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/request.h"
#include "core/status.h"
#include "sim/metrics.h"

namespace gimbal::bench {

struct BenchOptions {
  std::string base_url = "http://127.0.0.1:8000";
  std::string endpoint = "/v1/completions";  // or /v1/chat/completions
  std::string model;
  int max_concurrency = 0;  // 0: unlimited
  int threads = 2;          // io threads of the client
  uint64_t seed = 0;        // prompt contents
  // /v1/completions prompts as token-id lists (exact lengths on any server); false: text of
  // 4 characters per token (chat endpoints always send text).
  bool token_id_prompts = true;
  bool send_traffic_class = false;  // add `gimbal_traffic_class` (the emulator reads it)
  // Tokens each of a request's prefix_hashes stands for (the workload's PrefixHashTokens), > 0:
  // the prompt's leading blocks are drawn from those hashes, so requests that share prefix hashes
  // send the same leading tokens (or text) and share cached blocks on a real or emulated engine.
  // 0, or a request without hashes: the whole prompt is drawn from the seed.
  int64_t prefix_hash_tokens = 0;
  double request_timeout_s = 600;  // a request's longest silence (header, or between pieces)
  // A request's longest life, however steadily the server sends (keep-alive comments, endless
  // tokens): vllm bench serve's aiohttp total timeout, 6 hours.
  double total_timeout_s = 6 * 3600;
  sim::Slo slo;  // goodput
};

struct BenchRecord {
  sim::RequestRecord rec;   // times in seconds since the benchmark's start
  std::vector<double> itl;  // seconds
  std::string error;        // non-empty: failed
  // The engine a Gimbal router named in its answer's X-Gimbal-Engine header; empty without the
  // header or when the value is not a backend name (core/backend_name.h).
  std::string engine;
};

struct BenchResult {
  nlohmann::ordered_json summary;  // vllm bench serve keys (+ date, model_id, ...)
  std::vector<BenchRecord> requests;
};

// Sends `requests` (sorted by arrival, seconds from the start) and measures them. Errors only for
// bad options; failed requests are counted in the summary (`failed`) with their messages.
Result<BenchResult> RunBench(const BenchOptions& options, const std::vector<Request>& requests);

// Per-request arrays vLLM writes with --save-detailed: input_lens, output_lens, ttfts, itls,
// errors.
void AddDetails(const BenchResult& result, nlohmann::ordered_json& out);

// The summary as a text table, like vLLM's "Serving Benchmark Result".
std::string FormatSummary(const nlohmann::ordered_json& summary);

}  // namespace gimbal::bench
