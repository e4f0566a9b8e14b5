#include "bench_client/bench_client.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <future>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "core/backend_name.h"
#include "core/json_message.h"
#include "core/random.h"
#include "net/http_client.h"
#include "net/io_runtime.h"
#include "net/sse.h"
#include "workload/workload.h"

namespace gimbal::bench {

namespace asio = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxErrorBody = 500;
// The longest prompt a request may send (16 Mi tokens, a body of about 100 MB; far past any
// model's context).
constexpr int64_t kMaxBenchPromptTokens = int64_t{1} << 24;

// The engine a Gimbal router's X-Gimbal-Engine header names, if it is a backend name by the
// router's own rule (core/backend_name.h): anything else is not kept, so a server cannot grow the
// record or put arbitrary bytes into the JSON written.
std::string EngineName(std::string_view v) {
  return BackendNameProblem(v).empty() ? std::string(v) : std::string();
}

// What a stream's `error` value says, for a failed request's record: its `message` (or the
// string itself), cut to kMaxErrorBody; any other value only described. A server's value is
// quoted neither whole (an event may be 16 MiB, kept once per failed request) nor with dump(),
// which recurses once per nesting level.
std::string StreamErrorText(const json& e) {
  const json* text = &e;
  if (e.is_object()) {
    auto m = e.find("message");
    if (m != e.end()) text = &*m;
  }
  if (text->is_string()) {
    const std::string& s = text->get_ref<const std::string&>();
    return JsonForMessage(json(s.substr(0, kMaxErrorBody)));
  }
  return JsonForMessage(e);
}
// Content events a stream may send beyond max_tokens (a chat stream's role event, a server that
// splits a token) before the request fails.
constexpr int64_t kExtraChunks = 16;

std::string Words(int64_t tokens, Rng& rng) {
  // Four characters per token: a space and three letters.
  std::string s;
  s.reserve(static_cast<size_t>(tokens) * 4);
  for (int64_t i = 0; i < tokens; ++i) {
    s += ' ';
    for (int k = 0; k < 3; ++k) s += static_cast<char>('a' + rng.UniformInt(26));
  }
  return s;
}

class Runner {
 public:
  Runner(const BenchOptions& o, const net::Url& url, const std::vector<Request>& reqs)
      : o_(o),
        url_(url),
        reqs_(reqs),
        io_(std::max(o.threads, 1)),
        client_(io_.context(), ClientOptions(o)),
        strand_(asio::make_strand(io_.context())),
        slot_timer_(strand_),
        out_(reqs.size()) {
    chat_ = o.endpoint.find("chat") != std::string::npos;
    Rng rng = Rng(o.seed).Fork(0xb37c);
    bodies_.reserve(reqs.size());
    for (const Request& r : reqs) bodies_.push_back(Body(r, rng));
  }

  std::vector<BenchRecord> Go() {
    remaining_ = reqs_.size();
    if (remaining_ == 0) return {};
    io_.Start();
    t0_ = Clock::now();
    asio::co_spawn(strand_, Drive(), asio::detached);
    done_.get_future().wait();
    client_.CloseIdle();
    io_.Stop();
    return std::move(out_);
  }

 private:
  static net::HttpClientOptions ClientOptions(const BenchOptions& o) {
    net::HttpClientOptions c;
    c.header_timeout_s = o.request_timeout_s;
    c.read_timeout_s = o.request_timeout_s;
    c.max_idle_per_host = 4096;
    return c;
  }

  double Since() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

  std::string Body(const Request& r, Rng& rng) const {
    json j;
    if (!o_.model.empty()) j["model"] = o_.model;
    if (chat_) {
      j["messages"] = json::array({{{"role", "user"}, {"content", PromptText(r, rng)}}});
    } else if (o_.token_id_prompts) {
      j["prompt"] = PromptIds(r, rng);
    } else {
      j["prompt"] = PromptText(r, rng);
    }
    j["max_tokens"] = r.output_tokens;
    j["ignore_eos"] = true;
    j["temperature"] = 0;
    j["stream"] = true;
    j["stream_options"] = {{"include_usage", true}};
    if (o_.send_traffic_class) j["gimbal_traffic_class"] = r.traffic_class;
    return j.dump();
  }

  // The prompt's blocks covered by its prefix hashes (each drawn from its hash), then the rest.
  int64_t HashedBlocks(const Request& r) const {
    if (o_.prefix_hash_tokens <= 0) return 0;
    return std::min<int64_t>(static_cast<int64_t>(r.prefix_hashes.size()),
                             r.prompt_tokens / o_.prefix_hash_tokens);
  }
  std::vector<int64_t> PromptIds(const Request& r, Rng& rng) const {
    std::vector<int64_t> ids;
    ids.reserve(static_cast<size_t>(r.prompt_tokens));
    const auto token = [](Rng& g) { return 100 + static_cast<int64_t>(g.UniformInt(20000)); };
    for (int64_t b = 0; b < HashedBlocks(r); ++b) {
      Rng block(r.prefix_hashes[static_cast<size_t>(b)]);
      for (int64_t k = 0; k < o_.prefix_hash_tokens; ++k) ids.push_back(token(block));
    }
    while (static_cast<int64_t>(ids.size()) < r.prompt_tokens) ids.push_back(token(rng));
    return ids;
  }
  std::string PromptText(const Request& r, Rng& rng) const {
    std::string text;
    const int64_t blocks = HashedBlocks(r);
    for (int64_t b = 0; b < blocks; ++b) {
      Rng block(r.prefix_hashes[static_cast<size_t>(b)]);
      text += Words(o_.prefix_hash_tokens, block);
    }
    return text + Words(r.prompt_tokens - blocks * o_.prefix_hash_tokens, rng);
  }

  asio::awaitable<void> Drive() {
    asio::steady_timer timer(strand_);
    for (size_t i = 0; i < reqs_.size(); ++i) {
      boost::system::error_code ec;
      timer.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(reqs_[i].arrival)));
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      while (o_.max_concurrency > 0 && inflight_ >= o_.max_concurrency) {
        slot_timer_.expires_after(std::chrono::hours(1));
        co_await slot_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      ++inflight_;
      asio::co_spawn(asio::make_strand(io_.context()), One(i), [this, i](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            out_[i].error = ex.what();
          }
        }
        asio::post(strand_, [this] {
          --inflight_;
          slot_timer_.cancel();
          if (--remaining_ == 0) done_.set_value();
        });
      });
    }
  }

  asio::awaitable<void> One(size_t i) {
    BenchRecord& b = out_[i];
    const Request& r = reqs_[i];
    b.rec.id = r.id;
    b.rec.traffic_class = r.traffic_class;
    b.rec.prompt_tokens = r.prompt_tokens;
    net::ClientRequest cr;
    cr.method = "POST";
    cr.host = url_.host;
    cr.port = url_.port;
    cr.target = url_.base_path + o_.endpoint;
    cr.headers.Set("Content-Type", "application/json");
    cr.headers.Set("Accept", "text/event-stream");
    cr.body = bodies_[i];
    const double sent = Since();
    b.rec.arrival = sent;
    auto opened = co_await client_.Open(std::move(cr));
    if (!opened.ok()) {
      b.error = opened.status().message();
      co_return;
    }
    net::ClientStream& s = **opened;
    b.engine = EngineName(s.headers().Get("X-Gimbal-Engine"));
    if (s.status() != 200) {
      std::string body;
      while (body.size() < kMaxErrorBody) {
        auto piece = co_await s.Next();
        if (!piece.ok() || !piece->has_value()) break;
        body += **piece;
      }
      b.error = fmt::format("HTTP {}: {}", s.status(), body.substr(0, kMaxErrorBody));
      co_return;
    }
    net::SseParser parser;
    std::vector<net::SseEvent> events;
    double first = -1, last = -1;
    int64_t chunks = 0, usage_out = -1;
    bool done = false;
    while (!done) {
      auto piece = co_await s.Next();
      if (!piece.ok()) {
        b.error = piece.status().message();
        co_return;
      }
      if (!piece->has_value()) break;
      events.clear();
      if (!parser.Feed(**piece, events)) {
        b.error = "an SSE event was too large";
        co_return;
      }
      const double now = Since();
      for (const auto& ev : events) {
        if (!ev.has_data) continue;
        if (ev.data == "[DONE]") {
          done = true;
          break;
        }
        json j = json::parse(ev.data, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          b.error = "a data event is not JSON: " + ev.data.substr(0, 100);
          co_return;
        }
        if (j.contains("error")) {
          b.error = "stream error: " + StreamErrorText(j["error"]);
          co_return;
        }
        if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
          // The server's counts are summed into the run's totals: one out of range (negative,
          // or past any request's size) fails the request instead of wrapping them.
          for (const char* key : {"completion_tokens", "prompt_tokens"}) {
            auto c = u->find(key);
            if (c == u->end() || c->is_null()) continue;
            const bool ok = c->is_number_unsigned()
                                ? c->get<uint64_t>() <= static_cast<uint64_t>(kMaxRequestTokens)
                                : c->is_number_integer() && c->get<int64_t>() >= 0 &&
                                      c->get<int64_t>() <= kMaxRequestTokens;
            if (!ok) {
              b.error = fmt::format("usage.{} is not a token count in [0, {}]: {}", key,
                                    kMaxRequestTokens, JsonForMessage(*c));
              co_return;
            }
            (std::string_view(key) == "completion_tokens" ? usage_out : b.rec.prompt_tokens) =
                c->get<int64_t>();
          }
        }
        auto ch = j.find("choices");
        if (ch == j.end() || !ch->is_array() || ch->empty()) continue;
        if (first < 0) {
          first = now;
        } else {
          b.itl.push_back(now - last);
        }
        last = now;
        // Every request asks for max_tokens with ignore_eos: a server that streams well past that
        // is broken, and its stream would grow this record without end.
        if (++chunks > r.output_tokens + kExtraChunks) {
          b.error =
              fmt::format("the server streamed more than max_tokens ({}) tokens", r.output_tokens);
          co_return;
        }
      }
      if (!done && now - sent > o_.total_timeout_s) {
        b.error = fmt::format("the request ran past the total timeout ({} s)", o_.total_timeout_s);
        co_return;
      }
    }
    if (first < 0) {
      b.error = "the stream ended without tokens";
      co_return;
    }
    // The server's count is summed into the run's throughput: one past what the request asked
    // for (2^30 tokens for max_tokens 4 gave an output rate of 5e11 tokens/s) fails it.
    if (usage_out > r.output_tokens + kExtraChunks) {
      b.error = fmt::format("usage.completion_tokens ({}) is more than max_tokens ({})", usage_out,
                            r.output_tokens);
      co_return;
    }
    b.rec.first_token = first;
    b.rec.finish = Since();
    b.rec.output_tokens = usage_out >= 0 ? usage_out : chunks;
  }

  const BenchOptions& o_;
  net::Url url_;
  const std::vector<Request>& reqs_;
  bool chat_ = false;
  std::vector<std::string> bodies_;
  net::IoRuntime io_;
  net::HttpClient client_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer slot_timer_;  // on strand_: woken when a request ends
  std::vector<BenchRecord> out_;
  Clock::time_point t0_;
  int inflight_ = 0;      // strand_ only
  size_t remaining_ = 0;  // strand_ only
  std::promise<void> done_;
};

}  // namespace

Result<BenchResult> RunBench(const BenchOptions& options, const std::vector<Request>& requests) {
  net::Url url;
  std::string error;
  if (!net::Url::Parse(options.base_url, &url, &error)) {
    return InvalidArgument(fmt::format("--base-url {}: {}", options.base_url, error));
  }
  if (options.endpoint.empty() || options.endpoint[0] != '/') {
    return InvalidArgument("--endpoint must start with '/'");
  }
  if (options.max_concurrency < 0) return InvalidArgument("--max-concurrency must be >= 0");
  for (size_t i = 1; i < requests.size(); ++i) {
    if (requests[i].arrival < requests[i - 1].arrival) {
      return InvalidArgument("requests must be sorted by arrival");
    }
  }
  // Send times are timers in nanoseconds: arrivals past a year (or not finite) would overflow
  // them, and a workload never spans that long (kMaxWorkloadSpanS).
  if (!requests.empty() &&
      !(requests.front().arrival >= 0 && requests.back().arrival <= kMaxWorkloadSpanS)) {
    return InvalidArgument(
        fmt::format("request arrivals must lie in [0, {:.0f}] s (366 days); got {} to {} s",
                    kMaxWorkloadSpanS, requests.front().arrival, requests.back().arrival));
  }
  // Every request's body is built before the run starts, about 8 bytes a prompt token: one
  // prompt of 2^30 tokens (a 68-byte trace line) took the process past its memory.
  for (const Request& r : requests) {
    if (r.prompt_tokens < 0 || r.prompt_tokens > kMaxBenchPromptTokens || r.output_tokens < 0 ||
        r.output_tokens > kMaxRequestTokens) {
      return InvalidArgument(fmt::format(
          "request {}: {} prompt and {} output tokens; gimbal bench sends prompts of at most {} "
          "tokens and outputs of at most {}",
          r.id, r.prompt_tokens, r.output_tokens, kMaxBenchPromptTokens, kMaxRequestTokens));
    }
  }
  Runner runner(options, url, requests);
  BenchResult result;
  result.requests = runner.Go();

  std::vector<sim::RequestRecord> records;
  sim::LogHistogram itl;
  int64_t errors = 0;
  json sample = json::array();
  for (auto& b : result.requests) {
    if (!b.error.empty()) {
      b.rec.finish = -1;
      b.rec.first_token = -1;
      ++errors;
      if (sample.size() < 5) sample.push_back(b.error);
    } else {
      for (double g : b.itl) itl.Add(g);
    }
    records.push_back(b.rec);
  }
  nlohmann::ordered_json& s = result.summary;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
  s["date"] = date;
  s["backend"] = "openai";
  s["endpoint"] = options.endpoint;
  s["model_id"] = options.model;
  s["num_prompts"] = requests.size();
  s["max_concurrency"] =
      options.max_concurrency > 0 ? json(options.max_concurrency) : json(nullptr);
  sim::Summarise(records, itl, options.slo, s);
  s["error_samples"] = sample;
  return result;
}

void AddDetails(const BenchResult& result, nlohmann::ordered_json& out) {
  json input = json::array(), output = json::array(), ttfts = json::array(), itls = json::array(),
       errors = json::array();
  for (const auto& b : result.requests) {
    input.push_back(b.rec.prompt_tokens);
    output.push_back(b.error.empty() ? b.rec.output_tokens : 0);
    ttfts.push_back(b.error.empty() ? b.rec.first_token - b.rec.arrival : 0.0);
    itls.push_back(b.itl);
    errors.push_back(b.error);
  }
  out["input_lens"] = input;
  out["output_lens"] = output;
  out["ttfts"] = ttfts;
  out["itls"] = itls;
  out["errors"] = errors;
  json engines = json::array();
  for (const auto& b : result.requests) engines.push_back(b.engine);
  out["engines"] = engines;
}

std::string FormatSummary(const nlohmann::ordered_json& s) {
  auto num = [&](const char* k) {
    return s.contains(k) && s[k].is_number() ? s[k].get<double>() : 0.0;
  };
  std::string out;
  auto line = [&](const std::string& label, const std::string& value) {
    out += fmt::format("{:<40}{:>10}\n", label, value);
  };
  auto f2 = [&](const char* k) { return fmt::format("{:.2f}", num(k)); };
  out += fmt::format("{:=^50}\n", " Serving Benchmark Result ");
  line("Successful requests:", fmt::format("{}", static_cast<int64_t>(num("completed"))));
  line("Failed requests:", fmt::format("{}", static_cast<int64_t>(num("failed"))));
  if (s.contains("max_concurrency") && !s["max_concurrency"].is_null()) {
    line("Maximum request concurrency:", s["max_concurrency"].dump());
  }
  line("Benchmark duration (s):", f2("duration"));
  line("Total input tokens:", fmt::format("{}", static_cast<int64_t>(num("total_input_tokens"))));
  line("Total generated tokens:",
       fmt::format("{}", static_cast<int64_t>(num("total_output_tokens"))));
  line("Request throughput (req/s):", f2("request_throughput"));
  line("Output token throughput (tok/s):", f2("output_throughput"));
  line("Total Token throughput (tok/s):", f2("total_token_throughput"));
  const std::pair<const char*, const char*> sections[] = {
      {"ttft", "Time to First Token"},
      {"tpot", "Time per Output Token (excl. 1st token)"},
      {"itl", "Inter-token Latency"},
      {"e2el", "End-to-end Latency"}};
  for (const auto& [key, title] : sections) {
    out += fmt::format("{:-^50}\n", fmt::format(" {} ", title));
    const std::string k(key);
    std::string upper = k;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    line(fmt::format("Mean {} (ms):", upper), f2(("mean_" + k + "_ms").c_str()));
    line(fmt::format("Median {} (ms):", upper), f2(("median_" + k + "_ms").c_str()));
    line(fmt::format("P99 {} (ms):", upper), f2(("p99_" + k + "_ms").c_str()));
  }
  out += std::string(50, '=') + "\n";
  return out;
}

}  // namespace gimbal::bench
