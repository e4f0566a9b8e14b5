// CompletionProxy: validate, estimate, tag, dispatch, forward, pass the answer through
// (completion_proxy.h).
#include "router/completion_proxy.h"

#include <charconv>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "net/sse.h"
#include "router/prefix_cache.h"
#include "wire/completion_request.h"
#include "wire/openai_error.h"
#include "wire/priority_tag.h"
#include "wire/usage.h"

namespace gimbal::router {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::string_view_literals;

namespace {

// Largest traffic class number a request may name as its hint.
constexpr int kMaxClassHint = 1'000'000;

bool IsJsonContentType(std::string_view ct) {
  constexpr std::string_view kJson = "application/json";
  while (!ct.empty() && ct.front() == ' ') ct.remove_prefix(1);
  if (ct.size() < kJson.size() || !net::EqualsIgnoreCase(ct.substr(0, kJson.size()), kJson)) {
    return false;
  }
  return ct.size() == kJson.size() || ct[kJson.size()] == ';' || ct[kJson.size()] == ' ';
}

bool IsEventStream(std::string_view ct) {
  constexpr std::string_view kSse = "text/event-stream";
  return ct.size() >= kSse.size() && net::EqualsIgnoreCase(ct.substr(0, kSse.size()), kSse);
}

// The head of a streamed answer relayed from engine `engine`.
net::Headers StreamHead(const std::string& engine) {
  net::Headers h;
  h.Set("Content-Type", "text/event-stream");
  h.Set("Cache-Control", "no-cache");
  h.Set("X-Gimbal-Engine", engine);
  return h;
}

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

CompletionProxy::CompletionProxy(RouterConfig config, net::IoRuntime& io, EngineTable& table,
                                 std::shared_ptr<const DispatchPolicy> dispatch,
                                 std::shared_ptr<const QueuePolicy> queue,
                                 std::function<double()> clock, Metrics metrics)
    : config_(std::move(config)),
      table_(table),
      dispatch_(std::move(dispatch)),
      queue_(std::move(queue)),
      clock_(std::move(clock)),
      metrics_(std::move(metrics)),
      upstream_(io.context(),
                net::HttpClientOptions{.connect_timeout_s = config_.upstream_connect_timeout_s,
                                       .write_timeout_s = config_.write_timeout_s,
                                       .header_timeout_s = config_.upstream_header_timeout_s,
                                       .read_timeout_s = config_.upstream_read_timeout_s}) {
  for (const auto& [user, c] : config_.tenant_classes) {
    tenant_class_[wire::AffinityKeyOf(user)] = c;
  }
  for (const auto& b : config_.backends) {
    ratios_.try_emplace(b.model, config_.chars_per_token, config_.adapt_chars_per_token);
    dispatch_counters_.push_back(&metrics_.dispatches.With({b.name}));
    failure_counters_.push_back(&metrics_.upstream_failures.With({b.name}));
  }
  decision_seconds_ = &metrics_.decision.With();
  ttft_seconds_ = &metrics_.ttft.With();
  latency_seconds_[0] = &metrics_.latency.With({"false"});
  latency_seconds_[1] = &metrics_.latency.With({"true"});
}

bool CompletionProxy::Serves(std::string_view path) {
  return path == "/v1/completions" || path == "/v1/chat/completions";
}

// Not a coroutine itself: the request's coroutine is the one it returns, so a completion costs
// no frame and no resumption here.
asio::awaitable<void> CompletionProxy::Handle(net::HttpRequest& req, net::ResponseWriter& w) {
  if (req.method == "POST") return HandleCompletion(req, w, req.path() == "/v1/chat/completions");
  return RefuseMethod(req, w);
}

asio::awaitable<void> CompletionProxy::RefuseMethod(net::HttpRequest& req, net::ResponseWriter& w) {
  Count(Outcome::kBadRequest);
  co_await w.Send(wire::OpenAiError(405, "use POST for " + std::string(req.path())));
}

void CompletionProxy::CloseIdle() {
  upstream_.CloseIdle();
}

void CompletionProxy::Register(const std::shared_ptr<InFlight>& f) {
  MutexLock lock(inflight_mu_);
  f->prev = nullptr;
  f->next = inflight_;
  if (inflight_ != nullptr) inflight_->prev = f.get();
  inflight_ = f.get();
}

void CompletionProxy::Unregister(const std::shared_ptr<InFlight>& f) {
  f->active = false;
  MutexLock lock(inflight_mu_);
  if (f->prev != nullptr) {
    f->prev->next = f->next;
  } else {
    inflight_ = f->next;
  }
  if (f->next != nullptr) f->next->prev = f->prev;
  f->prev = f->next = nullptr;
}

asio::awaitable<void> CompletionProxy::HandleCompletion(net::HttpRequest& req,
                                                        net::ResponseWriter& w, bool chat) {
  const auto t0 = Clock::now();
  auto refuse = [&](int status, const std::string& message, Outcome o) {
    Count(o);
    net::HttpResponse r = wire::OpenAiError(status, message);
    if (status == 429) r.headers.Set("Retry-After", std::to_string(config_.retry_after_s));
    return w.Send(std::move(r));
  };

  if (!IsJsonContentType(req.headers.Get("Content-Type"))) {
    co_await refuse(415, "Content-Type must be application/json", Outcome::kBadRequest);
    co_return;
  }
  auto parsed = wire::ParseCompletionRequest(req.body, chat, PromptBlocksFor(config_.prefix_cache));
  if (!parsed.ok()) {
    co_await refuse(400, parsed.status().message(), Outcome::kBadRequest);
    co_return;
  }
  wire::CompletionRequest& cr = parsed.value();
  if (cr.model.empty()) {
    if (ratios_.size() != 1) {
      co_await refuse(400, "'model' is required: this router serves several models",
                      Outcome::kBadRequest);
      co_return;
    }
    cr.model = ratios_.begin()->first;
  }
  const auto served = ratios_.find(cr.model);
  if (served == ratios_.end()) {
    co_await refuse(404, "The model `" + cr.model + "` does not exist.", Outcome::kBadRequest);
    co_return;
  }
  TokenRatio& ratio = served->second;

  const uint64_t id = next_id_.fetch_add(1);
  const double now = clock_();
  const int64_t prompt_tokens = ratio.Estimate(cr);
  std::string body = std::move(req.body);
  if (queue_) {
    // Only the one member is rewritten: no document is built, every other byte is kept.
    QueueEntry e{static_cast<RequestId>(id), now, prompt_tokens, prompt_tokens, cr.priority};
    auto tagged = wire::SetPriority(body, VllmPriorityFromKey(queue_->Key(e), 0.0));
    if (!tagged.ok()) {
      co_await refuse(400, tagged.status().message(), Outcome::kBadRequest);
      co_return;
    }
    body = std::move(tagged.value());
  }
  // The request's traffic class, when its client says it: the x-gimbal-class header, the body's
  // gimbal_traffic_class, or the tenant map by `user` (docs/router.md, "Class hints").
  int class_hint = cr.traffic_class >= 0 && cr.traffic_class <= kMaxClassHint
                       ? static_cast<int>(cr.traffic_class)
                       : -1;
  if (req.headers.Has("x-gimbal-class")) {
    const std::string_view h = req.headers.Get("x-gimbal-class");
    int v = -1;
    const auto [end, ec] = std::from_chars(h.data(), h.data() + h.size(), v);
    if (ec != std::errc() || end != h.data() + h.size() || v < 0 || v > kMaxClassHint) {
      co_await refuse(400,
                      "header x-gimbal-class must be a traffic class number in 0.." +
                          std::to_string(kMaxClassHint),
                      Outcome::kBadRequest);
      co_return;
    }
    class_hint = v;
  } else if (class_hint < 0 && cr.affinity_key != 0) {
    if (auto it = tenant_class_.find(cr.affinity_key); it != tenant_class_.end()) {
      class_hint = it->second;
    }
  }
  DispatchRequest dr;
  dr.id = static_cast<RequestId>(id);
  dr.class_hint = class_hint;
  dr.now = now;
  dr.prompt_tokens = prompt_tokens;
  dr.max_output_tokens = cr.max_output_tokens;
  dr.affinity_key = cr.affinity_key;
  // The prompt's KV blocks as the engines name them: what their KV-cache events name, and what
  // the router's own record keeps.
  PrefixCache* const prefixes = table_.prefix_cache();
  const PromptBlocks blocks = prefixes != nullptr ? prefixes->Blocks(cr) : PromptBlocks{};
  std::vector<int64_t>().swap(cr.token_ids);  // hashed; not kept for the request's lifetime

  // The upstream request, built once: attempts change only its engine.
  net::ClientRequest up;
  up.method = "POST";
  up.fixed_header_lines = cr.stream
                              ? "Content-Type: application/json\r\nAccept: text/event-stream\r\n"sv
                              : "Content-Type: application/json\r\nAccept: application/json\r\n"sv;
  for (const char* h : {"Authorization", "X-Request-Id"}) {
    if (req.headers.Has(h)) up.headers.Add(h, std::string(req.headers.Get(h)));
  }
  up.body = std::move(body);

  // A client that goes away abandons the request at once: the upstream connection is closed
  // (the engine sees its client go and aborts), the reservation released.
  net::ClientCancel cancel;
  w.OnClientGone([&cancel] { cancel.Cancel(); });
  auto flight = std::make_shared<InFlight>();
  flight->executor = co_await asio::this_coro::executor;
  flight->cancel = &cancel;
  Register(flight);
  struct Unregistered {
    CompletionProxy& proxy;
    std::shared_ptr<InFlight>& f;
    ~Unregistered() { proxy.Unregister(f); }
  } unregister{*this, flight};
  const auto shutdown_message = "the router is shutting down: its drain timeout ran out";
  auto gone = [&](Reservation& rv, bool stream) {
    table_.Release(rv);
    Count(w.client_gone() ? Outcome::kCancelled : Outcome::kClientGone);
    latency_seconds_[stream ? 1 : 0]->Observe(Since(t0));
  };

  // Only a prompt of plain text teaches the characters-per-token ratio: with token ids, or a field
  // that truncates or adds to the prompt (CompletionRequest::prompt_tokens_unlike_text), the
  // engine's prompt_tokens are not the text's, and one client's such requests moved every
  // client's estimate (4 to 19.8 characters per token after 40 truncated ones).
  const bool learns_ratio =
      !cr.prompt_tokens_unlike_text && cr.prompt_token_ids == 0 && ratio.Wants(cr.prompt_chars);
  std::vector<int> tried;
  Status last_error;
  for (int attempt = 0; attempt < config_.max_attempts; ++attempt) {
    const auto td = Clock::now();
    auto picked = table_.Pick(*dispatch_, dr, cr.model, tried, blocks.hashes, blocks.match_events);
    decision_seconds_->Observe(Since(td));
    if (!picked.ok()) {
      const Status& st = picked.status();
      if (st.code() == ErrorCode::kResourceExhausted) {
        co_await refuse(429, st.message(), Outcome::kRejected);
      } else if (!last_error.ok()) {
        co_await refuse(502, "every engine tried failed; last: " + last_error.message(),
                        Outcome::kUnavailable);
      } else {
        co_await refuse(wire::HttpStatusFor(st.code()), st.message(), Outcome::kUnavailable);
      }
      co_return;
    }
    Reservation rv = picked.value();
    const int e = rv.engine;
    const auto& backend = config_.backends[static_cast<size_t>(e)];
    dispatch_counters_[static_cast<size_t>(e)]->Inc();
    // An answer over the router's own size limits (kResourceExhausted from the reads below), or
    // slower than its time limits (kDeadlineExceeded: no head within
    // limits.upstream_header_timeout_s, no data within limits.upstream_read_timeout_s), says as
    // much about the request (echo, n, a long generation or prefill) as about the engine, and a
    // client can cause it: the request fails with a 502 or 504 naming the limit, and the engine
    // is neither blamed (no health report, no failure counted) nor replaced by another, which
    // would be sent the same. An engine that stopped answering altogether is found by the
    // health probes (health.timeout_s).
    bool head_read = false;  // the engine's answer head arrived
    // Holds a failure against the engine: a health report (ejected after failures_to_eject)
    // and its failure counter.
    auto blame = [&](const Status& why) {
      switch (table_.ReportFailedRequest(e)) {
        case FailedRequest::kEjected:
          spdlog::warn("engine {} ejected: {}", backend.name, why.message());
          break;
        case FailedRequest::kKeptAtCap:
          spdlog::warn(
              "engine {} failed {} requests in a row ({}) but stays in: failed requests already "
              "took out as many engines serving its model as health.max_ejected_fraction allows",
              backend.name, config_.failures_to_eject, why.message());
          break;
        case FailedRequest::kCounted:
          break;
      }
      failure_counters_[static_cast<size_t>(e)]->Inc();
    };
    auto over_limits = [&](const Status& why) -> asio::awaitable<void> {
      table_.Release(rv);
      const bool slow = why.code() == ErrorCode::kDeadlineExceeded;
      // Except a stream's head: vLLM sends it before the prefill, so one that does not come says
      // the engine is stuck (its core hung while its API server still answers /health), not that
      // the request is long. That counts against the engine (no retry, as above).
      if (slow && !head_read && cr.stream) blame(why);
      const char* limit = !slow       ? ""
                          : head_read ? " (limits.upstream_read_timeout_s)"
                                      : " (limits.upstream_header_timeout_s)";
      co_await refuse(slow ? 504 : 502, "engine " + backend.name + ": " + why.message() + limit,
                      slow ? Outcome::kTimedOut : Outcome::kTooLarge);
    };
    auto limit_hit = [](const Status& st) {
      return st.code() == ErrorCode::kResourceExhausted ||
             st.code() == ErrorCode::kDeadlineExceeded;
    };
    // Any other failure before a byte reached the client: release, note, try another engine.
    auto engine_failed = [&](const Status& why) {
      table_.Release(rv);
      blame(why);
      tried.push_back(e);
      last_error = Status(why.code(), "engine " + backend.name + ": " + why.message());
    };

    up.host = backend.parsed.host;
    up.port = backend.parsed.port;
    up.target = backend.parsed.base_path;
    up.target += req.target;
    auto opened = co_await upstream_.Open(up, &cancel);
    if (flight->cut) {
      table_.Release(rv);
      co_await refuse(503, shutdown_message, Outcome::kUnavailable);
      co_return;
    }
    if (cancel.cancelled()) {
      gone(rv, cr.stream);
      co_return;
    }
    if (!opened.ok()) {
      if (opened.status().code() == ErrorCode::kDeadlineExceeded) {
        co_await over_limits(opened.status());
        co_return;
      }
      engine_failed(opened.status());
      continue;
    }
    head_read = true;
    net::ClientStream& us = *opened.value();
    const int status = us.status();
    if (status == 502 || status == 503 || status == 504) {
      engine_failed(Status(ErrorCode::kUnavailable, "answered " + std::to_string(status)));
      continue;
    }
    // The engine accepted the prompt: it now holds (or is computing) its blocks.
    if (status == 200 && prefixes != nullptr) {
      prefixes->Record(e, blocks.hashes, rv.prompt_tokens - rv.prefill_tokens);
    }

    if (!cr.stream || status != 200 || !IsEventStream(us.headers().Get("Content-Type"))) {
      // A whole answer: read it all (nothing has reached the client, so a break is retried).
      std::string answer;
      // Bounded as a whole too: vLLM sends a whole answer's head when it is done, so its body
      // comes at once; one trickled in a byte at a time held the client for ever.
      const Status broken = co_await net::ReadBody(us, config_.answer_limit_bytes, answer,
                                                   "answer over limits.answer_limit_bytes",
                                                   config_.upstream_read_timeout_s);
      if (flight->cut) {
        table_.Release(rv);
        co_await refuse(503, shutdown_message, Outcome::kUnavailable);
        co_return;
      }
      if (cancel.cancelled()) {
        gone(rv, false);
        co_return;
      }
      if (limit_hit(broken)) {
        co_await over_limits(broken);
        co_return;
      }
      if (!broken.ok()) {
        engine_failed(broken);
        continue;
      }
      // A server error (500, 505...) is relayed, not retried, and held against the engine: one
      // failing every request at once otherwise looked idle and drew the traffic (as Envoy's
      // outlier detection ejects after consecutive 5xx). 502-504 were retried above.
      if (status >= 500) {
        blame(Status(ErrorCode::kUnavailable, "answered " + std::to_string(status)));
      } else {
        table_.ReportAnswered(e);
      }
      // `usage` only teaches the token ratio; skip reading it when the ratio would ignore it.
      wire::Usage usage;
      if (status == 200 && learns_ratio && wire::FindUsage(answer, &usage)) {
        ratio.Observe(cr.prompt_chars, usage.prompt_tokens);
      }
      table_.Release(rv);
      net::HttpResponse r;
      r.status = status;
      r.headers.Reserve(2);
      std::string_view ct = us.headers().Get("Content-Type");
      r.headers.Add("Content-Type", ct.empty() ? "application/json" : std::string(ct));
      r.headers.Add("X-Gimbal-Engine", backend.name);
      r.body = std::move(answer);
      Status sent = co_await w.Send(std::move(r));
      Count(!sent.ok()          ? (w.client_gone() ? Outcome::kCancelled : Outcome::kClientGone)
            : status / 100 == 2 ? Outcome::kOk
                                : Outcome::kEngineError);
      latency_seconds_[0]->Observe(Since(t0));
      co_return;
    }

    // A stream: pass complete events through as they arrive.
    net::SseParser parser(config_.stream_event_limit_bytes);
    std::vector<net::SseEvent> events;
    std::string out;
    bool begun = false;
    bool client_gone = false;
    Status broken;
    wire::Usage usage;
    const bool wants_usage = learns_ratio;
    bool saw_done = false;    // the OpenAI stream's last event, `data: [DONE]`
    bool done_early = false;  // relayed [DONE] before the engine ended its answer
    // Bytes that complete no event (an engine sending a newline a second) do not count as the
    // stream going on: upstream_read_timeout_s without a whole event ends it as silence would.
    auto last_event = std::chrono::steady_clock::now();
    for (;;) {
      auto piece = co_await us.NextView();
      if (!piece.ok()) {
        broken = piece.status();
        break;
      }
      if (!piece.value()) {
        // An OpenAI stream ends with `data: [DONE]`; one that stops before it (or inside an
        // event) was cut short, however cleanly its connection ended.
        if (!saw_done || !parser.pending().empty()) {
          broken = Status(ErrorCode::kUnavailable, parser.pending().empty()
                                                       ? "stream ended without data: [DONE]"
                                                       : "stream ended inside an event");
        }
        break;
      }
      if (!parser.Feed(*piece.value(), events)) {
        broken = Status(ErrorCode::kResourceExhausted,
                        "stream event over limits.stream_event_limit_bytes (" +
                            std::to_string(config_.stream_event_limit_bytes) + " bytes)");
        break;
      }
      if (events.empty()) {
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_event).count() >
            config_.upstream_read_timeout_s) {
          broken = Status(
              ErrorCode::kDeadlineExceeded,
              "no whole event for " + fmt::format("{:g}", config_.upstream_read_timeout_s) + " s");
          break;
        }
        continue;
      }
      last_event = std::chrono::steady_clock::now();
      out.clear();
      for (const auto& ev : events) {
        if (ev.has_data && !rv.prefill_settled) {
          table_.SettlePrefill(rv);
          ttft_seconds_->Observe(Since(t0));
        }
        if (wants_usage && ev.has_data) wire::FindUsage(ev.data, &usage);
        if (ev.has_data && ev.data == "[DONE]") saw_done = true;
        out += ev.raw;
      }
      events.clear();
      if (!begun) {
        begun = true;
        if (!(co_await w.BeginStream(200, StreamHead(backend.name))).ok()) {
          client_gone = true;
          break;
        }
      }
      if (!(co_await w.WriteChunk(out)).ok()) {
        client_gone = true;
        break;
      }
      // [DONE] is the stream's last event: the client's answer is whole there. An engine that
      // sends it and then neither ends its answer nor closes would otherwise hold the client
      // until the read timeout and then append an error after the [DONE].
      if (saw_done && parser.pending().empty()) {
        done_early = true;
        break;
      }
    }
    if (flight->cut && !client_gone) {
      // The drain ran out of time: the client reads why its stream ends.
      std::string err = net::FormatSseEvent(wire::OpenAiErrorJson(503, shutdown_message));
      err += "data: [DONE]\n\n";
      if (!begun) {
        begun = (co_await w.BeginStream(200, StreamHead(backend.name))).ok();
      }
      if (begun && (co_await w.WriteChunk(err)).ok()) co_await w.EndStream();
      table_.Release(rv);
      Count(Outcome::kStreamError);
      latency_seconds_[1]->Observe(Since(t0));
      co_return;
    }
    if (client_gone || cancel.cancelled()) {
      // Dropping the upstream stream closes its connection: the engine aborts the request.
      gone(rv, true);
      co_return;
    }
    const bool too_large = limit_hit(broken);  // or too slow: neither is the engine's failure
    if (!begun && too_large) {
      co_await over_limits(broken);
      co_return;
    }
    if (!begun && !broken.ok()) {
      engine_failed(broken);
      continue;
    }
    if (!begun) {
      co_await w.BeginStream(200, StreamHead(backend.name));
    }
    if (broken.ok()) {
      table_.ReportAnswered(e);
      if (usage.prompt_tokens > 0) ratio.Observe(cr.prompt_chars, usage.prompt_tokens);
    } else {
      if (!too_large) blame(broken);  // over the router's limits: not the engine's (over_limits)
      // The code a whole answer would have had: 504 past a time limit, else 502.
      const int code = broken.code() == ErrorCode::kDeadlineExceeded ? 504 : 502;
      std::string err = net::FormatSseEvent(wire::OpenAiErrorJson(
          code, "engine " + backend.name +
                    (too_large ? " stream stopped: " : " failed mid-stream: ") + broken.message() +
                    (code == 504 ? " (limits.upstream_read_timeout_s)" : "")));
      err += "data: [DONE]\n\n";
      co_await w.WriteChunk(err);
    }
    Status ended = co_await w.EndStream();
    table_.Release(rv);
    Count(too_large      ? (broken.code() == ErrorCode::kDeadlineExceeded ? Outcome::kTimedOut
                                                                          : Outcome::kTooLarge)
          : !broken.ok() ? Outcome::kStreamError
          : !ended.ok()  ? (w.client_gone() ? Outcome::kCancelled : Outcome::kClientGone)
                         : Outcome::kOk);
    latency_seconds_[1]->Observe(Since(t0));
    if (done_early) {
      // Let the engine end its answer (the usual case: the end follows [DONE] at once), so that
      // its connection is kept for reuse; nothing more is relayed. A few reads at most, each
      // within the read timeout; else the connection is dropped with the stream.
      for (int i = 0; i < 4; ++i) {
        auto rest = co_await us.NextView();
        if (!rest.ok() || !rest.value()) break;
      }
    }
    co_return;
  }
  co_await refuse(502, "every engine tried failed; last: " + last_error.message(),
                  Outcome::kUnavailable);
}

void CompletionProxy::CutInFlight() {
  MutexLock lock(inflight_mu_);
  for (InFlight* p = inflight_; p != nullptr; p = p->next) {
    asio::post(p->executor, [f = p->shared_from_this()] {
      if (!f->active) return;
      f->cut = true;
      f->cancel->Cancel();
    });
  }
}

}  // namespace gimbal::router
