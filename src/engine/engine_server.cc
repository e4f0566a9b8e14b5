#include "engine/engine_server.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/secure_compare.h"
#include "engine/openai.h"
#include "net/http_server.h"
#include "net/io_runtime.h"
#include "net/prometheus.h"
#include "net/sse.h"
#include "placement/placement_formats.h"
#include "wire/engine_state.h"
#include "wire/openai_error.h"
#include "workload/workload.h"

namespace gimbal::engine {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

// Where a coroutine waits for updates from the driver thread. Push() may be called from any
// thread; Take() and Wait() only from the owning coroutine, on its strand. A wake-up is posted to
// the strand and cancels the timer the coroutine waits on; since the coroutine checks the queue
// and starts waiting within one run on the strand, no wake-up is lost.
class Mailbox : public std::enable_shared_from_this<Mailbox> {
 public:
  explicit Mailbox(asio::any_io_executor ex) : ex_(std::move(ex)), timer_(ex_) {}

  void Push(const Update& u) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(u);
    }
    Wake();
  }
  void Wake() {
    if (waking_.exchange(true, std::memory_order_acq_rel)) return;
    asio::post(ex_, [self = shared_from_this()] {
      self->waking_.store(false, std::memory_order_release);
      self->timer_.cancel();
    });
  }
  std::deque<Update> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<Update> out;
    out.swap(q_);
    return out;
  }
  // Returns after a Wake() or `max_s` seconds.
  asio::awaitable<void> Wait(double max_s) {
    timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(max_s)));
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

 private:
  asio::any_io_executor ex_;
  asio::steady_timer timer_;
  std::mutex mu_;
  std::deque<Update> q_;
  std::atomic<bool> waking_{false};
};

// One rank's counters and histograms, children of its server's families.
struct RankMetrics {
  net::Counter* prompt_tokens = nullptr;
  net::Counter* generation_tokens = nullptr;
  net::Counter* success = nullptr;
  net::Counter* preemptions = nullptr;
  net::Counter* aborted = nullptr;
  net::Counter* prefix_queries = nullptr;
  net::Counter* prefix_hits = nullptr;
  net::Histogram* ttft = nullptr;
  net::Histogram* e2e = nullptr;
  net::Histogram* itl = nullptr;

  // The prefix-cache counters follow the engine's cumulative counts: each scrape adds what is new.
  void SyncPrefixCache(const RankState& s) {
    std::lock_guard<std::mutex> lock(prefix_mu);
    if (s.prefix_cache_queries > queries_seen) {
      prefix_queries->Inc(static_cast<double>(s.prefix_cache_queries - queries_seen));
      queries_seen = s.prefix_cache_queries;
    }
    if (s.prefix_cache_hits > hits_seen) {
      prefix_hits->Inc(static_cast<double>(s.prefix_cache_hits - hits_seen));
      hits_seen = s.prefix_cache_hits;
    }
  }
  std::mutex prefix_mu;
  int64_t queries_seen = 0;
  int64_t hits_seen = 0;
};

// A server's /metrics page: one family per metric, one child per rank the server fronts.
struct ServerMetrics {
  net::MetricsRegistry registry;
  std::vector<std::unique_ptr<RankMetrics>> ranks;  // [rank - the server's first rank]
};

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

net::HttpResponse JsonResponse(int status, std::string body) {
  return net::MakeResponse(status, "application/json", std::move(body));
}

net::HttpResponse Error(int status, const std::string& message) {
  return wire::OpenAiError(status, message);
}

}  // namespace

struct EngineService::Impl {
  EngineServiceOptions opts;
  std::unique_ptr<Emulator> emu;
  std::vector<std::unique_ptr<ServerMetrics>> metrics;  // by server
  std::vector<std::atomic<int64_t>> inflight;           // by rank: completions being served
  std::vector<std::atomic<uint64_t>> next_pick;  // by server: where its next tie-break starts
  std::vector<double> class_weights;
  std::atomic<bool> stopping{false};
  std::atomic<bool> shut{false};
  std::atomic<uint64_t> next_request{1};
  std::mutex streams_mu;
  std::map<uint64_t, std::weak_ptr<Mailbox>> streams;  // open /gimbal/state/stream mailboxes
  uint64_t next_stream = 1;
  std::unique_ptr<net::IoRuntime> io;
  std::vector<std::unique_ptr<net::HttpServer>> servers;

  wire::EngineState State(int engine) const;
  int per_server() const { return opts.ranks_per_server; }
  RankMetrics& Metrics(int rank) {
    return *metrics[rank / per_server()]->ranks[rank % per_server()];
  }
  void BuildMetrics(int server);
};

wire::EngineState EngineService::Impl::State(int engine) const {
  const RankState s = emu->State(engine);
  wire::EngineState st;
  st.engine = engine;
  st.model = opts.served_model;
  st.load = s.snapshot;
  st.load.taken_at = emu->UnixTime(s.snapshot.taken_at);
  st.moe_pressure = s.moe_pressure;
  st.class_locality = s.class_locality;
  st.preemptions = s.preemptions;
  st.steps = s.steps;
  st.version = emu->state_version();
  return st;
}

void EngineService::Impl::BuildMetrics(int server) {
  auto m = std::make_unique<ServerMetrics>();
  const int first = server * per_server();
  std::vector<int> ranks;
  for (int r = first; r < first + per_server(); ++r) ranks.push_back(r);
  // Label values per rank: the global DP rank, as vLLM labels each engine an API server manages.
  auto values = [&](int rank) {
    return std::vector<std::string>{opts.served_model, std::to_string(rank)};
  };
  const std::vector<std::string> labels = {"model_name", "engine"};
  Emulator* e = emu.get();
  const std::string model = opts.served_model;
  auto gauge = [&](const char* name, const char* help, std::function<double(const RankState&)> f) {
    m->registry.AddCallbackGauge(name, help, labels, [e, ranks, model, f] {
      std::vector<std::pair<std::vector<std::string>, double>> out;
      for (int r : ranks) out.push_back({{model, std::to_string(r)}, f(e->State(r))});
      return out;
    });
  };
  gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
        [](const RankState& s) { return static_cast<double>(s.snapshot.running); });
  gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
        [](const RankState& s) { return static_cast<double>(s.snapshot.waiting); });
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
        [](const RankState& s) { return s.snapshot.kv_usage; });
  gauge("gimbal:prefill_pending_tokens", "Prompt tokens not yet prefilled (waiting and running).",
        [](const RankState& s) { return static_cast<double>(s.snapshot.prefill_pending_tokens); });
  gauge("gimbal:moe_pressure",
        "Expert load of this engine's GPU relative to the mean (1 = average).",
        [](const RankState& s) { return s.moe_pressure; });
  const auto& ec = emu->spec().engine;
  const int64_t blocks = emu->kv_capacity_tokens() / ec.block_size;
  const std::vector<std::string> cache_labels = {"block_size", "num_gpu_blocks",
                                                 "gpu_memory_utilization", "engine"};
  std::vector<std::pair<std::vector<std::string>, double>> cache_info;
  for (int r : ranks) {
    cache_info.push_back({{std::to_string(ec.block_size), std::to_string(blocks),
                           fmt::format("{}", ec.gpu_memory_utilization), std::to_string(r)},
                          1.0});
  }
  m->registry.AddCallbackGauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                               cache_labels, [cache_info] { return cache_info; });
  auto& prompt = m->registry.AddCounter("vllm:prompt_tokens_total",
                                        "Number of prefill tokens processed.", labels);
  auto& generation = m->registry.AddCounter("vllm:generation_tokens_total",
                                            "Number of generation tokens processed.", labels);
  auto& success = m->registry.AddCounter("vllm:request_success_total",
                                         "Count of successfully processed requests.", labels);
  auto& preemptions = m->registry.AddCounter(
      "vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.", labels);
  auto& aborted =
      m->registry.AddCounter("gimbal:aborted_requests_total",
                             "Requests cancelled because their client went away first.", labels);
  // vLLM's counters vllm:prefix_cache_queries and vllm:prefix_cache_hits (tokens), exposed with
  // the _total suffix as vLLM's Prometheus client writes counters.
  auto& queries =
      m->registry.AddCounter("vllm:prefix_cache_queries_total",
                             "Prefix-cache lookups, in prompt tokens looked up.", labels);
  auto& hits =
      m->registry.AddCounter("vllm:prefix_cache_hits_total",
                             "Prefix-cache hits, in looked-up tokens found cached.", labels);
  auto& ttft = m->registry.AddHistogram("vllm:time_to_first_token_seconds",
                                        "Histogram of time to first token in seconds.", labels,
                                        net::LatencyBuckets());
  auto& itl = m->registry.AddHistogram("vllm:inter_token_latency_seconds",
                                       "Histogram of inter-token latency in seconds.", labels,
                                       net::LatencyBuckets());
  auto& e2e = m->registry.AddHistogram("vllm:e2e_request_latency_seconds",
                                       "Histogram of end to end request latency in seconds.",
                                       labels, net::LatencyBuckets());
  for (int r : ranks) {
    auto rm = std::make_unique<RankMetrics>();
    const std::vector<std::string> v = values(r);
    rm->prompt_tokens = &prompt.With(v);
    rm->generation_tokens = &generation.With(v);
    rm->success = &success.With(v);
    rm->preemptions = &preemptions.With(v);
    rm->aborted = &aborted.With(v);
    rm->prefix_queries = &queries.With(v);
    rm->prefix_hits = &hits.With(v);
    rm->ttft = &ttft.With(v);
    rm->itl = &itl.With(v);
    rm->e2e = &e2e.With(v);
    m->ranks.push_back(std::move(rm));
  }
  metrics.push_back(std::move(m));
}

namespace {

class EngineHandler : public net::HttpHandler {
 public:
  EngineHandler(EngineService::Impl* impl, int server)
      : s_(impl), server_(server), first_(server * impl->per_server()) {}

  asio::awaitable<void> Handle(net::HttpRequest& req, net::ResponseWriter& w) override {
    const std::string_view path = req.path();
    const bool get = req.method == "GET" || req.method == "HEAD";
    const bool post = req.method == "POST";
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (!post) {
        co_await w.Send(Error(405, "use POST"));
      } else {
        co_await Completion(req, w, path == "/v1/chat/completions");
      }
    } else if (path == "/health") {
      co_await w.Send(net::MakeResponse(s_->stopping ? 503 : 200, "text/plain", ""));
    } else if (path == "/v1/models" && get) {
      co_await w.Send(JsonResponse(200, ModelsJson()));
    } else if (path == "/metrics" && get) {
      for (int r = first_; r < first_ + s_->per_server(); ++r) {
        s_->Metrics(r).SyncPrefixCache(s_->emu->State(r));
      }
      co_await w.Send(net::MakeResponse(200, "text/plain; version=0.0.4; charset=utf-8",
                                        s_->metrics[server_]->registry.Render()));
    } else if ((path == wire::kStatePath || path == wire::kStateStreamPath) && get &&
               s_->per_server() > 1) {
      // The state protocol describes one engine; a server of several ranks is read from /metrics.
      co_await w.Send(
          Error(404, fmt::format("no route for {} {}: this server fronts ranks {}..{}", req.method,
                                 path, first_, first_ + s_->per_server() - 1)));
    } else if (path == wire::kStatePath && get) {
      co_await w.Send(JsonResponse(200, wire::EngineStateJson(s_->State(first_))));
    } else if (path == wire::kStateStreamPath && get) {
      co_await StateStream(w);
    } else if (path == "/gimbal/stats" && get) {
      co_await w.Send(JsonResponse(200, RoutingStatsToJson(s_->emu->RoutingCounts())));
    } else if (path == "/gimbal/placement" && get) {
      co_await w.Send(JsonResponse(200, PlacementToJson(s_->emu->CurrentPlacement())));
    } else if (path == "/gimbal/placement" && post) {
      co_await PostPlacement(req, w);
    } else if (path == "/version" && get) {
      co_await w.Send(JsonResponse(200, R"({"version":"gimbal-engine"})"));
    } else {
      co_await w.Send(Error(404, fmt::format("no route for {} {}", req.method, path)));
    }
  }

 private:
  std::string ModelsJson() const {
    json model = {{"id", s_->opts.served_model},
                  {"object", "model"},
                  {"created", static_cast<int64_t>(UnixNow())},
                  {"owned_by", "gimbal"},
                  {"root", s_->opts.served_model},
                  {"parent", nullptr},
                  {"max_model_len", s_->emu->kv_capacity_tokens()}};
    return json{{"object", "list"}, {"data", json::array({model})}}.dump();
  }

  asio::awaitable<void> Completion(net::HttpRequest& req, net::ResponseWriter& w, bool chat) {
    ParseOptions po;
    po.chars_per_token = s_->opts.chars_per_token;
    po.default_max_tokens = s_->opts.default_max_tokens;
    po.block_tokens = s_->emu->spec().engine.block_size;
    auto parsed = ParseEmulatedRequest(req.body, chat, po);
    if (!parsed.ok()) {
      co_await w.Send(Error(400, parsed.status().message()));
      co_return;
    }
    const EmulatedRequest& r = *parsed;
    const std::string& model = r.request.model;
    if (!model.empty() && model != s_->opts.served_model) {
      co_await w.Send(Error(404, fmt::format("The model `{}` does not exist.", model)));
      co_return;
    }
    if (s_->stopping) {
      co_await w.Send(Error(503, "the engine is shutting down"));
      co_return;
    }
    // The rank that serves it, counted in flight until this coroutine ends, however it ends.
    const int rank = PickRank();
    struct InFlight {
      std::atomic<int64_t>& n;
      explicit InFlight(std::atomic<int64_t>& count) : n(count) { n.fetch_add(1); }
      ~InFlight() { n.fetch_sub(1); }
      InFlight(const InFlight&) = delete;
      InFlight& operator=(const InFlight&) = delete;
    } in_flight(s_->inflight[static_cast<size_t>(rank)]);
    Submission sub;
    sub.engine = rank;
    sub.prompt_tokens = r.prompt_tokens;
    sub.output_tokens = r.max_tokens;
    sub.priority = r.request.priority;
    sub.prefix_hashes = r.request.block_hashes;  // prompts sharing a prefix share blocks
    sub.traffic_class = r.traffic_class >= 0
                            ? r.traffic_class
                            : MooncakeClassForHash(r.request.prompt_hash, s_->class_weights);
    auto mb = std::make_shared<Mailbox>(co_await asio::this_coro::executor);
    Emulator& emu = *s_->emu;
    const double arrival = emu.Now();
    const uint64_t id = emu.Submit(sub, [mb](const Update& u) { mb->Push(u); });
    ResponseIds ids;
    ids.id = fmt::format("{}-{}-{}", chat ? "chatcmpl" : "cmpl", rank, s_->next_request++);
    ids.created = static_cast<int64_t>(UnixNow());
    ids.model = s_->opts.served_model;
    RankMetrics& m = s_->Metrics(rank);

    // A client that goes away (closes or resets its connection) cancels the request: the
    // emulator stops computing it and this coroutine stops waiting.
    auto abandon = [&] {
      emu.Cancel(id);
      m.aborted->Inc();
    };
    w.OnClientGone([mb] { mb->Wake(); });

    int64_t sent = 0;
    double first = -1, last = -1;
    bool streaming = false;
    while (true) {
      if (w.client_gone()) {
        abandon();
        co_return;
      }
      std::deque<Update> ups = mb->Take();
      if (ups.empty()) {
        co_await mb->Wait(5.0);
        continue;
      }
      for (const Update& u : ups) {
        if (!u.error.empty()) {
          if (!streaming) {
            co_await w.Send(Error(u.status ? u.status : 500, u.error));
          } else {
            const int status = u.status ? u.status : 500;
            const std::string ev = net::FormatSseEvent(wire::OpenAiErrorJson(status, u.error)) +
                                   net::FormatSseEvent("[DONE]");
            if ((co_await w.WriteChunk(ev)).ok()) co_await w.EndStream();
          }
          co_return;
        }
        if (u.generated > 0 && first < 0) {
          first = u.time;
          m.ttft->Observe(first - arrival);
        } else if (u.generated > sent && last >= 0) {
          m.itl->Observe(u.time - last);
        }
        if (u.generated > sent) last = u.time;
        if (r.request.stream) {
          if (!streaming) {
            net::Headers h;
            h.Set("Content-Type", "text/event-stream; charset=utf-8");
            h.Set("Cache-Control", "no-cache");
            if (!(co_await w.BeginStream(200, std::move(h))).ok()) {
              abandon();
              co_return;
            }
            streaming = true;
          }
          for (; sent < u.generated; ++sent) {
            const bool final_token = u.finished && sent + 1 == u.generated;
            if (!(co_await w.WriteChunk(
                      net::FormatSseEvent(StreamChunkJson(r, ids, sent, final_token))))
                     .ok()) {
              abandon();
              co_return;
            }
          }
        } else {
          sent = u.generated;
        }
        if (u.finished) {
          m.prompt_tokens->Inc(static_cast<double>(r.prompt_tokens));
          m.generation_tokens->Inc(static_cast<double>(sent));
          m.success->Inc();
          if (u.preemptions > 0) m.preemptions->Inc(u.preemptions);
          m.e2e->Observe(u.time - arrival);
          if (r.request.stream) {
            std::string tail;
            if (r.request.include_usage) {
              tail += net::FormatSseEvent(StreamUsageJson(r, ids, sent));
            }
            tail += net::FormatSseEvent("[DONE]");
            if ((co_await w.WriteChunk(tail)).ok()) co_await w.EndStream();
          } else {
            co_await w.Send(JsonResponse(200, CompletionResponseJson(r, ids, sent)));
          }
          co_return;
        }
      }
    }
  }

  asio::awaitable<void> StateStream(net::ResponseWriter& w) {
    net::Headers h;
    h.Set("Content-Type", "text/event-stream; charset=utf-8");
    h.Set("Cache-Control", "no-cache");
    if (!(co_await w.BeginStream(200, std::move(h))).ok()) co_return;
    auto mb = std::make_shared<Mailbox>(co_await asio::this_coro::executor);
    uint64_t key;
    {
      std::lock_guard<std::mutex> lock(s_->streams_mu);
      key = s_->next_stream++;
      s_->streams.emplace(key, mb);
    }
    const int watcher = s_->emu->AddWatcher([mb] { mb->Wake(); });
    const double heartbeat = s_->opts.state_stream_heartbeat_s;
    uint64_t last_version = 0;
    auto last_emit = std::chrono::steady_clock::now() - std::chrono::hours(1);
    bool ok = true;
    while (ok && !s_->stopping) {
      mb->Take();
      const uint64_t v = s_->emu->state_version();
      const auto now = std::chrono::steady_clock::now();
      if (v != last_version || now - last_emit >= std::chrono::duration<double>(heartbeat)) {
        last_version = v;
        last_emit = now;
        ok = (co_await w.WriteChunk(wire::EngineStateEvent(s_->State(first_)))).ok();
        continue;  // the step may have moved on while writing
      }
      co_await mb->Wait(heartbeat);
    }
    s_->emu->RemoveWatcher(watcher);
    {
      std::lock_guard<std::mutex> lock(s_->streams_mu);
      s_->streams.erase(key);
    }
    if (ok) co_await w.EndStream();
  }

  asio::awaitable<void> PostPlacement(net::HttpRequest& req, net::ResponseWriter& w) {
    const std::string& token = s_->opts.admin_token;
    if (!token.empty() && !BearerMatches(req.headers.Get("Authorization"), token)) {
      co_await w.Send(Error(401, "placement changes need Authorization: Bearer <admin token>"));
      co_return;
    }
    auto p = ParsePlacementJson(req.body, "placement");
    if (!p.ok()) {
      co_await w.Send(Error(400, p.status().message()));
      co_return;
    }
    if (Status v = p->Validate(); !v.ok()) {
      co_await w.Send(Error(400, v.message()));
      co_return;
    }
    auto mb = std::make_shared<Mailbox>(co_await asio::this_coro::executor);
    s_->emu->SetPlacement(std::move(*p), [mb](const Update& u) { mb->Push(u); });
    while (true) {
      std::deque<Update> ups = mb->Take();
      if (ups.empty()) {
        co_await mb->Wait(5.0);
        continue;
      }
      const Update& u = ups.front();
      if (!u.error.empty()) {
        co_await w.Send(Error(u.status ? u.status : 400, u.error));
      } else {
        co_await w.Send(JsonResponse(200, R"({"status":"installed"})"));
      }
      co_return;
    }
  }

  // The server's rank with the fewest completions in flight; ties go to the first one found
  // from a start that moves one rank per pick. A server of one rank always picks it.
  int PickRank() {
    const int n = s_->per_server();
    if (n == 1) return first_;
    const auto start = static_cast<int>(s_->next_pick[static_cast<size_t>(server_)].fetch_add(1) %
                                        static_cast<uint64_t>(n));
    int best = -1;
    int64_t best_load = 0;
    for (int i = 0; i < n; ++i) {
      const int r = first_ + (start + i) % n;
      const int64_t load = s_->inflight[static_cast<size_t>(r)].load();
      if (best < 0 || load < best_load) {
        best = r;
        best_load = load;
      }
    }
    return best;
  }

  EngineService::Impl* s_;
  int server_;
  int first_;  // the server's first rank; it fronts per_server() consecutive ranks
};

}  // namespace

Result<std::unique_ptr<EngineService>> EngineService::Start(EngineServiceOptions options) {
  if (options.threads < 1) return InvalidArgument("threads must be >= 1");
  if (!(options.chars_per_token > 0)) return InvalidArgument("chars_per_token must be > 0");
  if (options.default_max_tokens < 1) return InvalidArgument("default_max_tokens must be >= 1");
  if (options.ranks_per_server < 1) return InvalidArgument("ranks_per_server must be >= 1");
  auto impl = std::make_shared<Impl>();
  impl->opts = std::move(options);
  auto emu = Emulator::Create(impl->opts.emulator);
  if (!emu.ok()) return emu.status();
  impl->emu = std::move(*emu);
  for (const auto& c : impl->emu->spec().classes) impl->class_weights.push_back(c.weight);
  const int n = impl->emu->ranks();
  const EngineServiceOptions& o = impl->opts;
  if (n % o.ranks_per_server != 0) {
    return InvalidArgument(
        fmt::format("{} ranks per server do not divide the {} DP ranks", o.ranks_per_server, n));
  }
  const int servers = n / o.ranks_per_server;
  if (o.port != 0 && static_cast<int>(o.port) + servers - 1 > 65535) {
    return InvalidArgument(fmt::format("ports {}..{} do not exist", o.port, o.port + servers - 1));
  }
  for (int j = 0; j < servers; ++j) impl->BuildMetrics(j);
  impl->inflight = std::vector<std::atomic<int64_t>>(static_cast<size_t>(n));
  impl->next_pick = std::vector<std::atomic<uint64_t>>(static_cast<size_t>(servers));
  impl->io = std::make_unique<net::IoRuntime>(o.threads);
  for (int i = 0; i < servers; ++i) {
    net::HttpServerOptions so;
    so.address = o.address;
    so.port = o.port == 0 ? 0 : static_cast<uint16_t>(o.port + i);
    so.error_response = [](int status, std::string_view message) {
      return Error(status, std::string(message));
    };
    auto server = std::make_unique<net::HttpServer>(*impl->io, so,
                                                    std::make_shared<EngineHandler>(impl.get(), i));
    Status st = server->Start();
    if (!st.ok()) {
      return st.WithContext(o.ranks_per_server == 1
                                ? fmt::format("engine {}", i)
                                : fmt::format("server of ranks {}..{}", i * o.ranks_per_server,
                                              (i + 1) * o.ranks_per_server - 1));
    }
    impl->servers.push_back(std::move(server));
  }
  impl->emu->Start();
  impl->io->Start();
  return std::unique_ptr<EngineService>(new EngineService(std::move(impl)));
}

EngineService::EngineService(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

EngineService::~EngineService() {
  Shutdown(1);
}

int EngineService::engines() const {
  return impl_->emu->ranks();
}
int EngineService::servers() const {
  return static_cast<int>(impl_->servers.size());
}
uint16_t EngineService::port(int engine) const {
  if (engine < 0 || engine >= engines())
    throw std::out_of_range("EngineService::port: no such rank");
  return impl_->servers.at(static_cast<size_t>(engine / impl_->per_server()))->port();
}
std::string EngineService::url(int engine) const {
  return fmt::format("http://{}:{}", impl_->opts.address, port(engine));
}
Emulator& EngineService::emulator() {
  return *impl_->emu;
}

bool EngineService::Shutdown(double timeout_s) {
  Impl& s = *impl_;
  if (s.shut.exchange(true)) return true;
  s.stopping = true;
  {
    std::lock_guard<std::mutex> lock(s.streams_mu);
    for (auto& [k, weak] : s.streams) {
      if (auto mb = weak.lock()) mb->Wake();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool ok = true;
  for (auto& server : s.servers) {
    const double left =
        std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    ok = server->Drain(std::max(left, 0.0)) && ok;
  }
  s.emu->Stop();
  s.io->Stop();
  return ok;
}

}  // namespace gimbal::engine
