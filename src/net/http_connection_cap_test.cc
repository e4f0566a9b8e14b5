// HttpServer's connection cap: clients that open connections and send nothing, or trickle a head,
// cannot take every connection or file descriptor. At the cap the connection that waited longest
// for a request makes room; connections serving a request are never closed for room, and a new
// one is refused with 503 when every connection serves. On loopback, bounded in time.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "net/eventually.h"
#include "net/http_server.h"
#include "net/raw_server.h"

namespace gimbal::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::ConnectLoopback;
using testing::SendAll;

// Answers "ok TARGET"; /wait is answered once the gate opens (or after 10 s).
class GateHandler : public HttpHandler {
 public:
  asio::awaitable<void> Handle(HttpRequest& req, ResponseWriter& w) override {
    if (req.target == "/wait") {
      ++waiting;
      asio::steady_timer t(co_await asio::this_coro::executor);
      const auto until = std::chrono::steady_clock::now() + 10s;
      while (!open && std::chrono::steady_clock::now() < until) {
        t.expires_after(2ms);
        co_await t.async_wait(asio::use_awaitable);
      }
    }
    co_await w.Send(MakeResponse(200, "text/plain", "ok " + req.target));
  }
  std::atomic<bool> open{false};
  std::atomic<int> waiting{0};
};

// Everything the server sends until it closes the connection (or 5 s pass).
std::string ReadUntilClosed(int fd) {
  timeval tv{0, 100000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  char buf[4096];
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r == 0) return got;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return got;  // reset
    if (r > 0) got.append(buf, static_cast<size_t>(r));
  }
  return got + "<still open>";
}

// What arrives on `fd` until it holds `needle` (or 5 s pass, or the connection ends).
std::string ReadUntil(int fd, std::string_view needle) {
  timeval tv{0, 100000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  char buf[4096];
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < until) {
    const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r == 0) break;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
    if (r > 0) got.append(buf, static_cast<size_t>(r));
  }
  return got;
}

// What has arrived on `fd` by now, or "<still open>" when nothing has and the connection is open.
std::string ReadNow(int fd) {
  std::this_thread::sleep_for(50ms);
  char buf[4096];
  const ssize_t r = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return "<still open>";
  if (r <= 0) return "";
  return std::string(buf, static_cast<size_t>(r));
}

class ConnectionCapTest : public ::testing::Test {
 protected:
  void Start(size_t max_connections) {
    HttpServerOptions o;
    o.max_connections = max_connections;
    server_ = std::make_unique<HttpServer>(io_, o, handler_);
    ASSERT_TRUE(server_->Start().ok());
    io_.Start();
  }
  void TearDown() override {
    handler_->open = true;
    for (int fd : fds_) ::close(fd);
    if (server_) server_->Drain(2);
    server_.reset();
    io_.Stop();
  }
  // A connection the server has accepted and started serving (so the order of waiting is the
  // order of these calls).
  int Open(std::string_view send = {}) {
    const int64_t before = server_->open_connections();
    const int64_t evicted = server_->evicted_connections();
    const int fd = ConnectLoopback(server_->port());
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    if (!send.empty()) {
      EXPECT_TRUE(SendAll(fd, send));
    }
    // Accepted: one more open, unless it made room by closing another.
    EXPECT_TRUE(testutil::Eventually(
        [&] {
          return server_->open_connections() > before || server_->evicted_connections() > evicted;
        },
        5s));
    std::this_thread::sleep_for(20ms);
    return fd;
  }

  IoRuntime io_{2};
  std::shared_ptr<GateHandler> handler_ = std::make_shared<GateHandler>();
  std::unique_ptr<HttpServer> server_;
  std::vector<int> fds_;
};

TEST_F(ConnectionCapTest, AtTheCapTheConnectionWaitingLongestMakesRoom) {
  Start(2);
  EXPECT_EQ(server_->max_connections(), 2u);
  // Each waits before the next connects: the order of waiting is the order of these calls.
  const int slow_head = Open("POST / HTTP/1.1\r\nHost: x\r\n");  // never finishes its head
  ASSERT_TRUE(testutil::Eventually([&] { return server_->waiting_connections() == 1; }, 5s));
  const int silent = Open();
  ASSERT_TRUE(testutil::Eventually([&] { return server_->waiting_connections() == 2; }, 5s));
  // A third client is served: the slow head, which waited longest, is closed with a 503.
  const int third = Open("GET /third HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string answer = ReadUntil(third, "ok /third");
  EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
  EXPECT_NE(answer.find("ok /third"), std::string::npos) << answer;
  const std::string closed = ReadUntilClosed(slow_head);
  EXPECT_NE(closed.find("HTTP/1.1 503"), std::string::npos) << closed;
  EXPECT_NE(closed.find("limit of 2 connections"), std::string::npos) << closed;
  EXPECT_EQ(ReadNow(silent), "<still open>");
  EXPECT_EQ(server_->evicted_connections(), 1);
  // Next in line is the silent one, now ahead of the third's kept-alive connection: a fourth
  // client closes it without a word, and the third one's connection still serves.
  Open();
  EXPECT_EQ(ReadUntilClosed(silent), "");
  EXPECT_EQ(server_->evicted_connections(), 2);
  ASSERT_TRUE(SendAll(third, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string again = ReadUntil(third, "ok /again");
  EXPECT_NE(again.find("ok /again"), std::string::npos) << again;
  EXPECT_EQ(server_->refused_connections(), 0);
}

TEST_F(ConnectionCapTest, WhenEveryConnectionServesANewOneGets503AndNoRequestIsLost) {
  Start(2);
  const int a = Open("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  const int b = Open("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(testutil::Eventually([&] { return handler_->waiting.load() == 2; }, 5s));
  const int c = ConnectLoopback(server_->port());
  ASSERT_GE(c, 0);
  fds_.push_back(c);
  ASSERT_TRUE(SendAll(c, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string refused = ReadUntilClosed(c);
  EXPECT_NE(refused.find("HTTP/1.1 503"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Retry-After: 1"), std::string::npos) << refused;
  EXPECT_NE(refused.find("every one is serving"), std::string::npos) << refused;
  EXPECT_EQ(server_->refused_connections(), 1);
  EXPECT_EQ(server_->evicted_connections(), 0);
  handler_->open = true;
  for (int fd : {a, b}) {
    const std::string answer = ReadUntil(fd, "ok /wait");
    EXPECT_NE(answer.find("ok /wait"), std::string::npos) << answer;
  }
}

// Out of file descriptors (the process's limit, which the test's own sockets share), a new client
// is still served: the connection that waited longest is closed to free one.
TEST_F(ConnectionCapTest, OutOfDescriptorsTheConnectionWaitingLongestMakesRoom) {
  Start(1000);
  // Every client socket is made before the limit drops, so from then on only the server's accepts
  // take descriptors.
  constexpr int kClients = 64;
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    clients.push_back(fd);
    fds_.push_back(fd);
  }
  const int late = clients.back();  // the client that must get through
  clients.pop_back();
  // The limit bounds descriptor numbers, not their count, and a test runner may leave holes
  // below any number: the limit goes just past the eighth free number.
  constexpr size_t kFree = 8;
  size_t free_now = 0;
  int limit = 0;
  for (; free_now < kFree; ++limit) {
    if (::fcntl(limit, F_GETFD) < 0) ++free_now;
  }
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_LT(static_cast<rlim_t>(limit), old.rlim_cur);
  struct Restore {
    ~Restore() { setrlimit(RLIMIT_NOFILE, &lim); }
    rlimit lim;
  } restore{old};  // on every way out, a failed assertion's too
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(limit);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(server_->port());
  const auto connect = [&](int fd) {
    return ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  };
  // Silent clients until the server had to close one to accept the next: no descriptor is left.
  std::vector<int> silent;
  for (const int fd : clients) {
    if (server_->evicted_connections() > 0) break;
    const int64_t open_before = server_->open_connections();
    ASSERT_TRUE(connect(fd));
    silent.push_back(fd);
    // Accepted (or room made for it) before the next client connects.
    ASSERT_TRUE(testutil::Eventually(
        [&] {
          return server_->open_connections() > open_before || server_->evicted_connections() > 0;
        },
        5s));
  }
  ASSERT_GE(server_->evicted_connections(), 1);
  EXPECT_EQ(silent.size(), free_now + 1) << "each accept took one of the free descriptors";
  std::this_thread::sleep_for(50ms);
  // One accept closes one connection.
  const auto made_room = static_cast<size_t>(server_->evicted_connections());
  ASSERT_EQ(made_room, 1u);
  ASSERT_TRUE(connect(late));
  ASSERT_TRUE(SendAll(late, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string answer = ReadUntil(late, "ok /late");
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_NE(answer.find("ok /late"), std::string::npos) << answer;
  // The longest-waiting silent clients made room, in order; the next one is still served.
  EXPECT_EQ(static_cast<size_t>(server_->evicted_connections()), made_room + 1);
  for (size_t i = 0; i <= made_room; ++i) EXPECT_EQ(ReadUntilClosed(silent[i]), "") << i;
  EXPECT_EQ(ReadNow(silent[made_room + 1]), "<still open>");
}

TEST(ConnectionCap, TheDefaultIsHalfTheOpenFileLimitLessAReserve) {
  EXPECT_EQ(ConnectionCapFor(1024), 480u);
  EXPECT_EQ(ConnectionCapFor(1 << 20), ((1u << 20) - 64) / 2);
  EXPECT_EQ(ConnectionCapFor(64), 16u);  // never below 16
  EXPECT_EQ(ConnectionCapFor(0), 16u);
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  uint64_t before = 0;
  const uint64_t now = RaiseOpenFileLimit(&before);
  EXPECT_EQ(before, lim.rlim_cur);
  if (lim.rlim_max != RLIM_INFINITY) {
    EXPECT_EQ(now, lim.rlim_max);
  }
  EXPECT_GE(now, before);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

}  // namespace
}  // namespace gimbal::net
