// RawServer (tests only): a loopback TCP server whose answers are raw bytes a test scripts, for
// backends that break HTTP on purpose (interim 1xx answers, oversized trailers, garbage after a
// response). Each connection is served by its own thread: it reads a request head (and a body of
// Content-Length bytes), calls the script with them and writes back what it returns, until the
// script returns kClose or the peer closes. Only 127.0.0.1 is used; the destructor closes every
// socket and joins every thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"

namespace gimbal::net::testing {

// A loopback connection to `port`, or -1. `rcvbuf` > 0 sets its receive buffer first (a large one
// lets a server's answers never wait on the test).
inline int ConnectLoopback(uint16_t port, int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends all of `data` on `fd`; false when the connection broke first.
inline bool SendAll(int fd, std::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

class RawServer {
 public:
  // The request's head (request line and headers) and body; returns the bytes to answer with.
  using Script = std::function<std::string(const std::string& head, const std::string& body)>;
  static constexpr const char* kClose = "\x01close";
  // In an answer: what precedes it is sent, then 50 ms pass, then the rest is sent (bytes an
  // engine writes late, after the client has read a whole answer); each further one holds back
  // what follows it by another 50 ms (an answer that trickles in).
  static constexpr const char* kPause = "\x01pause";

  explicit RawServer(Script script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(listen_fd_, 64);
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~RawServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    {
      MutexLock lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    for (int fd : fds_) ::close(fd);
  }

  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  // Answers whose part after kPause has been sent.
  int late_sends() const { return late_sends_.load(); }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      ++connections_;
      MutexLock lock(mu_);
      fds_.push_back(fd);
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  static size_t ContentLength(const std::string& head) {
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto p = lower.find("\r\ncontent-length:");
    if (p == std::string::npos) return 0;
    return static_cast<size_t>(std::strtoull(lower.c_str() + p + 17, nullptr, 10));
  }

  void Serve(int fd) {
    std::string in;
    char buf[16384];
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      std::string head = in.substr(0, end);
      const size_t want = ContentLength(head + "\r\n");
      while (in.size() < end + 4 + want) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      std::string body = in.substr(end + 4, want);
      in.erase(0, end + 4 + want);
      ++requests_;
      std::string out = script_(head, body);
      if (out == kClose) {
        ::shutdown(fd, SHUT_RDWR);
        return;
      }
      // Each kPause holds back what follows it by 50 ms.
      size_t from = 0;
      size_t pause = out.find(kPause);
      if (!SendAll(fd, std::string_view(out).substr(0, pause))) return;
      while (pause != std::string::npos) {
        from = pause + 6;
        pause = out.find(kPause, from);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const size_t n = pause == std::string::npos ? std::string::npos : pause - from;
        if (!SendAll(fd, std::string_view(out).substr(from, n))) return;
        if (pause == std::string::npos) ++late_sends_;
      }
    }
  }

  Script script_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> late_sends_{0};
  std::thread acceptor_;
  Mutex mu_;
  std::vector<int> fds_ GIMBAL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_ GIMBAL_GUARDED_BY(mu_);
};

// Sends `bytes` to 127.0.0.1:`port` on a fresh connection (then, after `pause`, `more`) and
// returns everything read until the server closes the connection.
inline std::string ExchangeRaw(uint16_t port, const std::string& bytes,
                               std::chrono::milliseconds pause = std::chrono::milliseconds(0),
                               const std::string& more = "") {
  std::string out;
  const int fd = ConnectLoopback(port);
  if (fd < 0) return out;
  SendAll(fd, bytes);
  if (pause.count() > 0) std::this_thread::sleep_for(pause);
  if (!more.empty()) SendAll(fd, more);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace gimbal::net::testing
