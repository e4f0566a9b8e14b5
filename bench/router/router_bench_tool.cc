// router_bench_tool: the two helpers bench/router/run.sh needs.
//
//   router_bench_tool backend --port P [--threads T] [--stream-interval-s S]
//     A zero-delay OpenAI-like backend on net::HttpServer: POST /v1/completions answers at once
//     (a fixed body with `usage`); with "stream": true it sends one SSE event at once, then one
//     every S seconds until the client goes away. GET /health, /metrics (vLLM gauges, all 0),
//     /v1/models (one model, "bench", owned_by "vllm": how SGLang's gateway tells a vLLM server
//     when it registers a worker); everything else 404 (so a router in `auto` mode scrapes
//     /metrics, as for vLLM).
//
//   router_bench_tool hold --port P --connections N --hold-s S [--rss-pid PID] [--ramp-s R]
//     Opens N streaming completions on 127.0.0.1:P (epoll, one socket each), waits until each
//     has its response header and first event, holds them all S seconds while reading, and
//     prints one line: connections, streams established, still open at the end, failures, ramp
//     time, and the resident memory of PID (VmRSS) while all were held. Exit 1 unless every
//     stream was established and held.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/http_server.h"
#include "net/io_runtime.h"

namespace {

namespace asio = boost::asio;
using gimbal::net::HttpRequest;
using gimbal::net::ResponseWriter;

const char* Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

// ---- backend ----------------------------------------------------------------------------------

constexpr char kBody[] =
    R"({"id":"cmpl-0","object":"text_completion","created":0,"model":"bench","choices":[{"index":0,"text":"ok","finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}})";
constexpr char kEvent[] =
    "data: "
    "{\"id\":\"cmpl-0\",\"object\":\"text_completion\",\"model\":\"bench\",\"choices\":[{\"index\":"
    "0,\"text\":\"ok\",\"finish_reason\":null}]}\n\n";
constexpr char kMetrics[] =
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"bench\"} 0\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"bench\"} 0\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"bench\"} 0\n";
constexpr char kModels[] =
    R"({"object":"list","data":[{"id":"bench","object":"model","created":0,"owned_by":"vllm","root":"bench","max_model_len":4096}]})";

class ZeroBackend : public gimbal::net::HttpHandler {
 public:
  explicit ZeroBackend(double interval_s) : interval_(interval_s) {}
  asio::awaitable<void> Handle(HttpRequest& req, ResponseWriter& w) override {
    const std::string_view path = req.path();
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      const bool stream = req.body.find("\"stream\":true") != std::string::npos ||
                          req.body.find("\"stream\": true") != std::string::npos;
      if (!stream) {
        co_await w.Send(gimbal::net::MakeResponse(200, "application/json", kBody));
        co_return;
      }
      gimbal::net::Headers h;
      h.Set("Content-Type", "text/event-stream");
      if (!(co_await w.BeginStream(200, std::move(h))).ok()) co_return;
      asio::steady_timer t(co_await asio::this_coro::executor);
      while ((co_await w.WriteChunk(kEvent)).ok()) {
        t.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(interval_)));
        co_await t.async_wait(asio::use_awaitable);
      }
      co_return;
    }
    if (path == "/health") {
      co_await w.Send(gimbal::net::MakeResponse(200, "text/plain", ""));
    } else if (path == "/metrics") {
      co_await w.Send(gimbal::net::MakeResponse(200, "text/plain; version=0.0.4", kMetrics));
    } else if (path == "/v1/models") {
      co_await w.Send(gimbal::net::MakeResponse(200, "application/json", kModels));
    } else {
      co_await w.Send(gimbal::net::MakeResponse(404, "text/plain", "not found"));
    }
  }

 private:
  double interval_;
};

int RunBackend(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  gimbal::net::IoRuntime io(std::atoi(Arg(argc, argv, "--threads", "1")));
  gimbal::net::HttpServerOptions o;
  o.address = "127.0.0.1";
  o.port = static_cast<uint16_t>(std::atoi(Arg(argc, argv, "--port", "0")));
  o.idle_timeout_s = 600;
  o.write_timeout_s = 600;
  gimbal::net::HttpServer server(
      io, o, std::make_shared<ZeroBackend>(std::atof(Arg(argc, argv, "--stream-interval-s", "5"))));
  auto st = server.Start();
  if (!st.ok()) {
    std::cerr << "backend: " << st.ToString() << "\n";
    return 1;
  }
  io.Start();
  std::cout << "backend listening on port " << server.port() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  server.Drain(0.2);
  io.Stop();
  return 0;
}

// ---- hold -------------------------------------------------------------------------------------

long RssKiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

struct Conn {
  int fd = -1;
  bool sent = false;
  bool established = false;  // header and first event arrived
  bool closed = false;
  std::string head;  // bytes until established
};

int RunHold(int argc, char** argv) {
  const int port = std::atoi(Arg(argc, argv, "--port", "0"));
  const int n = std::atoi(Arg(argc, argv, "--connections", "10000"));
  const double hold_s = std::atof(Arg(argc, argv, "--hold-s", "10"));
  const double ramp_limit_s = std::atof(Arg(argc, argv, "--ramp-s", "60"));
  const int rss_pid = std::atoi(Arg(argc, argv, "--rss-pid", "0"));
  const int batch = std::atoi(Arg(argc, argv, "--batch", "500"));
  const std::string body =
      R"({"model":"bench","prompt":"hold this stream open","max_tokens":100000,"stream":true})";
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  const int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(n));
  int opened = 0, established = 0, failed = 0;
  auto fail = [&](Conn& c) {
    if (c.closed) return;
    c.closed = true;
    if (c.fd >= 0) close(c.fd);
    ++failed;
  };
  auto open_one = [&](int i) {
    Conn& c = conns[static_cast<size_t>(i)];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) {
      fail(c);
      return;
    }
    int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (r < 0 && errno != EINPROGRESS) {
      fail(c);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  char buf[16384];
  auto pump = [&](int timeout_ms) {
    epoll_event events[1024];
    int k = epoll_wait(ep, events, 1024, timeout_ms);
    for (int j = 0; j < k; ++j) {
      Conn& c = conns[events[j].data.u32];
      if (c.closed) continue;
      if ((events[j].events & EPOLLOUT) && !c.sent) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 ||
            write(c.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
          fail(c);
          continue;
        }
        c.sent = true;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u32 = events[j].data.u32;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      }
      if (events[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        for (;;) {
          ssize_t got = read(c.fd, buf, sizeof(buf));
          if (got > 0) {
            if (!c.established) {
              c.head.append(buf, static_cast<size_t>(got));
              size_t hdr = c.head.find("\r\n\r\n");
              if (hdr != std::string::npos) {
                if (c.head.compare(0, 12, "HTTP/1.1 200") != 0) {
                  fail(c);
                  break;
                }
                if (c.head.find("data:", hdr) != std::string::npos) {
                  c.established = true;
                  ++established;
                  std::string().swap(c.head);
                }
              }
            }
            continue;
          }
          if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) fail(c);
          break;
        }
      }
    }
  };

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  // Ramp: keep at most `batch` connections between connect and their first event.
  while (established + failed < n && elapsed() < ramp_limit_s) {
    while (opened < n && opened - established - failed < batch) open_one(opened++);
    pump(5);
  }
  const double ramp_s = elapsed();
  const int held_at_start = established;
  long rss = -1;
  const auto hold_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(hold_s));
  bool sampled = false;
  while (Clock::now() < hold_end) {
    pump(100);
    if (!sampled && Clock::now() > hold_end - std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(hold_s / 2))) {
      if (rss_pid > 0) rss = RssKiB(rss_pid);
      sampled = true;
    }
  }
  int open_at_end = 0;
  for (auto& c : conns) open_at_end += c.established && !c.closed;
  std::printf(
      "HOLD connections=%d established=%d open_at_end=%d failed=%d ramp_s=%.2f hold_s=%.1f "
      "rss_kib=%ld\n",
      n, held_at_start, open_at_end, failed, ramp_s, hold_s, rss);
  for (auto& c : conns) {
    if (!c.closed && c.fd >= 0) close(c.fd);
  }
  close(ep);
  return open_at_end == n ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "backend") return RunBackend(argc, argv);
  if (cmd == "hold") return RunHold(argc, argv);
  std::cerr << "usage: router_bench_tool backend --port P [--threads T] [--stream-interval-s S]\n"
               "       router_bench_tool hold --port P --connections N --hold-s S "
               "[--rss-pid PID] [--ramp-s R] [--batch B]\n";
  return 2;
}
