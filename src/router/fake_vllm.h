// FakeVllm (tests only): a stand-in for a vLLM server on loopback, built on net::HttpServer.
//
// Answers /v1/completions and /v1/chat/completions (non-streaming with `usage`; streaming as
// `chunks` SSE data events `chunk_delay_ms` apart, then `data: [DONE]`), /health, and /metrics
// with vLLM's metric names and the waiting/running/KV values the test sets. Kill() makes it
// vanish like a crashed process: it stops accepting and breaks every open connection.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "net/http_server.h"
#include "net/io_runtime.h"

namespace gimbal::router::testing {

struct FakeVllmOptions {
  std::string model = "test-model";
  int chunks = 5;
  int chunk_delay_ms = 2;
  int first_chunk_delay_ms = 0;
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
  void Kill();
  int completions() const { return completions_.load(); }
  std::string last_body() const;

  // The exact bytes a stream for any request carries.
  static std::string ExpectedStream(int chunks);

  struct State;

 private:
  FakeVllmOptions opts_;
  std::atomic<int> waiting_{0}, running_{0}, kv_milli_{0};
  std::atomic<int> completions_{0};
  std::shared_ptr<State> state_;
  std::unique_ptr<net::IoRuntime> io_;
  std::unique_ptr<net::HttpServer> server_;
  friend class FakeHandler;
};

}  // namespace gimbal::router::testing
