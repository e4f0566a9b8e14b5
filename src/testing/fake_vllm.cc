#include "testing/fake_vllm.h"

#include <chrono>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "wire/engine_state.h"

namespace gimbal::testing {

namespace asio = boost::asio;

struct FakeVllm::State {
  std::atomic<bool> dead{false};
  std::atomic<bool> stopping{false};
  mutable std::mutex mu;
  std::string last_body;
  net::Headers last_headers;
};

namespace {

asio::awaitable<void> SleepMs(int ms) {
  if (ms <= 0) co_return;
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
}

// Sleeps `ms`, cut short when the client goes away; false then.
asio::awaitable<bool> SleepUnlessGone(int ms, net::ResponseWriter& w) {
  if (ms <= 0) co_return !w.client_gone();
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  w.OnClientGone([&t] { t.cancel(); });
  if (!w.client_gone()) {
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  w.OnClientGone(nullptr);
  co_return !w.client_gone();
}

std::string ChunkJson(int i) {
  return R"({"id":"cmpl-fake","object":"text_completion","model":"test-model","choices":[{"index":0,"text":"tok)" +
         std::to_string(i) + R"( ","finish_reason":null}]})";
}

}  // namespace

class FakeHandler : public net::HttpHandler {
 public:
  explicit FakeHandler(FakeVllm* f) : f_(f), st_(f->state_) {}

  asio::awaitable<void> Handle(net::HttpRequest& req, net::ResponseWriter& w) override {
    if (st_->dead) {
      w.Abort();
      co_return;
    }
    std::string_view path = req.path();
    if (path == "/health") {
      co_await w.Send(net::MakeResponse(200, "text/plain", ""));
    } else if (path == "/metrics") {
      f_->metrics_scrapes_++;
      std::string m = "\"" + f_->opts_.model + "\"";
      std::string text =
          "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
          "# TYPE vllm:num_requests_waiting gauge\n"
          "vllm:num_requests_waiting{engine=\"0\",model_name=" +
          m + "} " + std::to_string(f_->waiting_.load()) +
          ".0\n"
          "# TYPE vllm:num_requests_running gauge\n"
          "vllm:num_requests_running{engine=\"0\",model_name=" +
          m + "} " + std::to_string(f_->running_.load()) +
          ".0\n"
          "# TYPE vllm:kv_cache_usage_perc gauge\n"
          "vllm:kv_cache_usage_perc{engine=\"0\",model_name=" +
          m + "} " + std::to_string(f_->kv_milli_.load() / 1000.0) + "\n";
      co_await w.Send(net::MakeResponse(200, "text/plain; version=0.0.4", text));
    } else if (path == wire::kStateStreamPath && f_->opts_.push_state && !f_->push_off_) {
      f_->state_streams_++;
      net::Headers h;
      h.Set("Content-Type", "text/event-stream");
      if (!(co_await w.BeginStream(200, h)).ok()) co_return;
      while (!st_->dead && !st_->stopping && !f_->push_off_) {
        wire::EngineState s;
        s.model = f_->opts_.model;
        s.load.waiting = f_->pushed_waiting_.load();
        s.load.running = f_->pushed_running_.load();
        s.load.kv_usage = 0.1;
        s.load.kv_capacity_tokens = 100000;
        s.load.prefill_pending_tokens = f_->pushed_pending_.load();
        s.load.taken_at =
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        const std::string ev = wire::EngineStateEvent(s);
        if (!(co_await w.WriteChunk(ev)).ok()) co_return;
        co_await SleepMs(f_->opts_.push_interval_ms);
      }
      if (st_->dead) {
        w.Abort();
        co_return;
      }
      co_await w.EndStream();
    } else if (path == "/v1/completions" || path == "/v1/chat/completions") {
      {
        std::lock_guard<std::mutex> lock(st_->mu);
        st_->last_body = req.body;
        st_->last_headers = req.headers;
      }
      f_->completions_++;
      const bool stream = req.body.find("\"stream\":true") != std::string::npos;
      if (!stream) {
        if (!co_await SleepUnlessGone(f_->opts_.first_chunk_delay_ms, w)) {
          f_->abandoned_++;
          co_return;
        }
        std::string body =
            R"({"id":"cmpl-fake","object":"text_completion","choices":[{"index":0,"text":"hello","finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}})";
        if (st_->dead) {
          w.Abort();
          co_return;
        }
        co_await w.Send(net::MakeResponse(200, "application/json", body));
        co_return;
      }
      net::Headers h;
      h.Set("Content-Type", "text/event-stream");
      if (!(co_await w.BeginStream(200, h)).ok()) co_return;
      for (int i = 0; i < f_->opts_.chunks; ++i) {
        if (!co_await SleepUnlessGone(
                i > 0 ? f_->opts_.chunk_delay_ms : f_->opts_.first_chunk_delay_ms, w)) {
          f_->abandoned_++;
          co_return;
        }
        if (st_->dead) {
          w.Abort();
          co_return;
        }
        if (!(co_await w.WriteChunk("data: " + ChunkJson(i) + "\n\n")).ok()) {
          f_->abandoned_++;
          co_return;
        }
      }
      co_await w.WriteChunk("data: [DONE]\n\n");
      co_await w.EndStream();
    } else {
      co_await w.Send(net::MakeResponse(404, "text/plain", "not found"));
    }
  }

 private:
  FakeVllm* f_;
  std::shared_ptr<FakeVllm::State> st_;
};

std::string FakeVllm::ExpectedStream(int chunks) {
  std::string s;
  for (int i = 0; i < chunks; ++i) s += "data: " + ChunkJson(i) + "\n\n";
  return s + "data: [DONE]\n\n";
}

FakeVllm::FakeVllm(FakeVllmOptions options)
    : opts_(std::move(options)),
      state_(std::make_shared<State>()),
      io_(std::make_unique<net::IoRuntime>(2)) {}

FakeVllm::~FakeVllm() {
  state_->stopping = true;
  if (server_) server_->Drain(0.5);
  io_->Stop();
  server_.reset();
}

void FakeVllm::Start() {
  net::HttpServerOptions o;
  o.address = "127.0.0.1";
  server_ = std::make_unique<net::HttpServer>(*io_, o, std::make_shared<FakeHandler>(this));
  (void)server_->Start();
  io_->Start();
}

uint16_t FakeVllm::port() const {
  return server_->port();
}

void FakeVllm::Kill() {
  state_->dead = true;
  server_->Drain(0.05);
}

std::string FakeVllm::last_body() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->last_body;
}

net::Headers FakeVllm::last_headers() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->last_headers;
}

}  // namespace gimbal::testing
