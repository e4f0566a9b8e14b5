// FakeVllm (tests only): a stand-in for a vLLM server on loopback, built on net::HttpServer.
//
// Answers /v1/completions and /v1/chat/completions (non-streaming with `usage`; streaming as
// `chunks` SSE data events `chunk_delay_ms` apart, then `data: [DONE]`), /health, and /metrics
// with vLLM's metric names and the waiting/running/KV values the test sets, and optionally the
// engine-state stream of a gimbal engine (wire/engine_state.h). A completion whose
// client goes away is given up at once and counted (abandoned()). Kill() makes it
// vanish like a crashed process: it stops accepting and breaks every open connection.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "net/http_server.h"
#include "net/http_types.h"
#include "net/io_runtime.h"

namespace gimbal::testing {

struct FakeVllmOptions {
  std::string model = "test-model";
  int chunks = 5;
  int chunk_delay_ms = 2;
  int first_chunk_delay_ms = 0;
  // Serve GET /gimbal/state/stream like gimbal engine (the values of SetPushedLoad every
  // push_interval_ms); otherwise that path is 404, as on vLLM.
  bool push_state = false;
  int push_interval_ms = 20;
};

class FakeVllm {
 public:
  explicit FakeVllm(FakeVllmOptions options = {});
  ~FakeVllm();
  void Start();
  uint16_t port() const;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

  void SetLoad(int waiting, int running, double kv) {
    waiting_ = waiting;
    running_ = running;
    kv_milli_ = static_cast<int>(kv * 1000);
  }
  // The state /gimbal/state/stream reports (independent of what /metrics reports).
  void SetPushedLoad(int waiting, int running, int prefill_pending_tokens) {
    pushed_waiting_ = waiting;
    pushed_running_ = running;
    pushed_pending_ = prefill_pending_tokens;
  }
  // Ends open state streams; later ones get 404 (as if the engine stopped offering them).
  void StopPushing() { push_off_ = true; }
  void Kill();
  int completions() const { return completions_.load(); }
  // Completions whose client (the router) went away before the answer was complete.
  int abandoned() const { return abandoned_.load(); }
  // GET /metrics requests answered so far.
  int metrics_scrapes() const { return metrics_scrapes_.load(); }
  // /gimbal/state/stream requests answered so far.
  int state_streams() const { return state_streams_.load(); }
  std::string last_body() const;
  // The headers of the last completion request, as received.
  net::Headers last_headers() const;

  // The exact bytes a stream for any request carries.
  static std::string ExpectedStream(int chunks);

  struct State;

 private:
  FakeVllmOptions opts_;
  std::atomic<int> waiting_{0}, running_{0}, kv_milli_{0};
  std::atomic<int> pushed_waiting_{0}, pushed_running_{0}, pushed_pending_{0};
  std::atomic<int> completions_{0};
  std::atomic<int> abandoned_{0};
  std::atomic<int> state_streams_{0};
  std::atomic<int> metrics_scrapes_{0};
  std::atomic<bool> push_off_{false};
  std::shared_ptr<State> state_;
  std::unique_ptr<net::IoRuntime> io_;
  std::unique_ptr<net::HttpServer> server_;
  friend class FakeHandler;
};

}  // namespace gimbal::testing
