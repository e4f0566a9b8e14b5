// HttpServer and HttpClient against hostile peers, on loopback: a client that sends oversized or
// numerous trailer fields, unsupported transfer codings, HEAD; a backend that answers 1xx, 101,
// oversized trailers or garbage; file descriptors running out. Each case ends the one connection
// (or request) at fault and leaves the process serving. Bounded in count and time.
#include <malloc.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <gtest/gtest.h>

#include "net/blocking.h"
#include "net/eventually.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/http_wire.h"
#include "net/parser_read.h"
#include "net/raw_server.h"

namespace gimbal::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::ConnectLoopback;
using testing::RawServer;
using testing::SendAll;

class EchoHandler : public HttpHandler {
 public:
  asio::awaitable<void> Handle(HttpRequest& req, ResponseWriter& w) override {
    co_await w.Send(MakeResponse(200, "text/plain", req.method + " " + req.body));
  }
};

class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.body_limit = 1 << 20;
    o.read_timeout_s = 2;
    o.idle_timeout_s = 2;
    server_ = std::make_unique<HttpServer>(io_, o, std::make_shared<EchoHandler>());
    ASSERT_TRUE(server_->Start().ok());
    io_.Start();
    client_ = std::make_unique<HttpClient>(io_.context());
  }
  void TearDown() override {
    client_.reset();
    server_->Drain(2);
    server_.reset();
    io_.Stop();
  }
  std::string Raw(const std::string& bytes) { return testing::ExchangeRaw(server_->port(), bytes); }
  // The server still answers a plain request.
  void ExpectServing() {
    ClientRequest r;
    r.method = "POST";
    r.host = "127.0.0.1";
    r.port = server_->port();
    r.target = "/";
    r.body = "still here";
    auto got = RunBlocking(io_.context(), client_->Send(r));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->body, "POST still here");
  }
  static std::string Chunked(const std::string& trailer) {
    return "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" +
           trailer + "\r\n";
  }

  IoRuntime io_{2};
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HostileTest, ATrailerFieldOf64KiBGets431AndTheServerLivesOn) {
  std::string out = Raw(Chunked(std::string("X: ") + std::string(65536, 'a') + "\r\n"));
  EXPECT_NE(out.find("HTTP/1.1 431"), std::string::npos) << out.substr(0, 200);
  ExpectServing();
}

TEST_F(HostileTest, ManyTrailerFieldsCountAgainstTheHeaderLimit) {
  std::string trailer;
  for (int i = 0; i < 100; ++i)
    trailer +=
        std::string("X") + std::to_string(i) + std::string(": ") + std::string(6000, 'b') + "\r\n";
  std::string out = Raw(Chunked(trailer));
  EXPECT_NE(out.find("HTTP/1.1 431"), std::string::npos) << out.substr(0, 200);
  ExpectServing();
}

TEST_F(HostileTest, SmallTrailersAreStillAccepted) {
  std::string out = Raw(Chunked("X-Checksum: 1234\r\n"));
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_NE(out.find("POST hello"), std::string::npos) << out;
}

TEST_F(HostileTest, TransferCodingsOtherThanChunkedGet501) {
  for (const char* te : {"gzip, chunked", "gzip", "chunked, chunked", "identity"}) {
    std::string out = Raw(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + te +
                          "\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    EXPECT_NE(out.find("HTTP/1.1 501"), std::string::npos) << te << ": " << out;
  }
  ExpectServing();
}

TEST_F(HostileTest, HeadGetsAHeadWithoutABodyAndTheConnectionStaysInStep) {
  // HEAD then GET on one connection: a body after the HEAD's head would be read as the GET's
  // answer.
  std::string out =
      Raw("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
          "Connection: close\r\n\r\nhi");
  const size_t first = out.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_NE(out.find("Content-Length: 5\r\n"), std::string::npos) << out;  // "HEAD " framing
  const size_t end_of_head = out.find("\r\n\r\n", first);
  ASSERT_NE(end_of_head, std::string::npos);
  EXPECT_EQ(out.compare(end_of_head + 4, 12, "HTTP/1.1 200"), 0) << out;
  EXPECT_NE(out.find("POST hi"), std::string::npos) << out;
}

// The client's side: an upstream that answers interim 1xx before its answer.
TEST_F(HostileTest, ClientSkipsInterimAnswersAndEachRequestGetsItsOwnAnswer) {
  RawServer backend([](const std::string&, const std::string& body) {
    return std::string(
               "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: ") +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  });
  for (const char* who : {"alice", "bob", "carol", "dave"}) {
    ClientRequest r;
    r.method = "POST";
    r.host = "127.0.0.1";
    r.port = backend.port();
    r.body = who;
    auto got = RunBlocking(io_.context(), client_->Send(r));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->status, 200);
    EXPECT_EQ(got->body, who);
  }
  EXPECT_EQ(backend.connections(), 1);  // the connection stayed in step and was reused
}

TEST_F(HostileTest, ClientRefuses101AndDoesNotReuseThatConnection) {
  std::atomic<int> n{0};
  RawServer backend([&n](const std::string&, const std::string& body) -> std::string {
    if (n++ == 0)
      return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nHTTP/1.1 200 "
             "OK\r\nContent-Length: 3\r\n\r\nbad";
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  });
  ClientRequest r;
  r.method = "POST";
  r.host = "127.0.0.1";
  r.port = backend.port();
  r.body = "first";
  auto got = RunBlocking(io_.context(), client_->Send(r));
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("101"), std::string::npos) << got.status().ToString();
  r.body = "second";
  got = RunBlocking(io_.context(), client_->Send(r));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->body, "second");
  EXPECT_EQ(backend.connections(), 2);
}

TEST_F(HostileTest, ClientSurvivesAnOversizedTrailerFromUpstream) {
  RawServer backend([](const std::string&, const std::string&) {
    return std::string(
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: ") +
           std::string(70000, 't') + "\r\n\r\n";
  });
  ClientRequest r;
  r.method = "GET";
  r.host = "127.0.0.1";
  r.port = backend.port();
  auto got = RunBlocking(io_.context(), client_->Send(r));
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(client_->idle_connections(), 0u);
  ExpectServing();
}

TEST_F(HostileTest, ClientDoesNotReuseAPooledConnectionThatGotBytesWhileIdle) {
  // An engine that repeats each answer 50 ms later: the repeat lands on the idle pooled
  // connection; reused, it would be read as the next request's answer (another client's).
  RawServer backend([](const std::string&, const std::string& body) {
    const std::string answer = std::string("HTTP/1.1 200 OK\r\nContent-Length: ") +
                               std::to_string(body.size()) + "\r\n\r\n" + body;
    return answer + RawServer::kPause + answer;
  });
  ClientRequest r;
  r.method = "POST";
  r.host = "127.0.0.1";
  r.port = backend.port();
  int answered = 0;
  for (const char* who : {"alice", "bob", "carol"}) {
    r.body = who;
    auto got = RunBlocking(io_.context(), client_->Send(r));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->body, who);
    ++answered;
    // The repeat went out (over loopback: it is in the client's socket) while the connection is
    // idle, however late the server's thread ran.
    ASSERT_TRUE(testutil::Eventually([&] { return backend.late_sends() == answered; }));
    std::this_thread::sleep_for(20ms);  // delivery, should the kernel defer it
  }
  EXPECT_EQ(backend.connections(), 3);  // each out-of-step connection was dropped, not reused
}

TEST_F(HostileTest, ClientDoesNotPoolAConnectionWithBytesPastTheAnswer) {
  RawServer backend([](const std::string&, const std::string& body) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + std::to_string(body.size()) +
           "\r\n\r\n" + body + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale";
  });
  ClientRequest r;
  r.method = "POST";
  r.host = "127.0.0.1";
  r.port = backend.port();
  for (const char* who : {"alice", "bob"}) {
    r.body = who;
    auto got = RunBlocking(io_.context(), client_->Send(r));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->body, who);
  }
}

TEST_F(HostileTest, PooledConnectionsClosedByTheServerAreSweptNotLeftInCloseWait) {
  auto ok = [](const std::string&, const std::string&) -> std::string {
    return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  };
  auto backend = std::make_unique<RawServer>(ok);
  RawServer other(ok);
  HttpClient client(io_.context());
  ClientRequest r;
  r.host = "127.0.0.1";
  r.port = backend->port();
  // Eight concurrent requests leave eight pooled connections.
  RunBlocking(io_.context(), [&]() -> asio::awaitable<int> {
    std::vector<std::unique_ptr<ClientStream>> open;
    for (int i = 0; i < 8; ++i) {
      auto s = co_await client.Open(r);
      if (s.ok()) open.push_back(std::move(s).value());
    }
    for (auto& s : open) {
      for (;;) {
        auto piece = co_await s->NextView();
        if (!piece.ok() || !piece.value()) break;
      }
    }
    co_return 0;
  }());
  ASSERT_EQ(client.idle_connections(), 8u);
  backend.reset();  // the backend goes away: it closes its ends of the pooled connections
  std::this_thread::sleep_for(1100ms);  // past the once-a-second sweep
  // Any use of the pool sweeps it: the eight closed connections go, the new one stays.
  r.port = other.port();
  auto got = RunBlocking(io_.context(), client.Send(r));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(client.idle_connections(), 1u);
}

// Out of file descriptors: the accept loop backs off instead of spinning, and serves again once
// descriptors are free.
TEST_F(HostileTest, AcceptBacksOffWhenDescriptorsRunOutAndRecovers) {
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  size_t open_now = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++open_now;
  }
  rlimit low = old;
  low.rlim_cur = open_now + 24;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> held;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(server_->port());
  for (int i = 0; i < 64; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd);
      break;
    }
    held.push_back(fd);
  }
  // The backlog holds connections the server cannot accept; give the loop a second to fail.
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  std::this_thread::sleep_for(1000ms);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  auto cpu = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  // A spinning accept loop burns a whole core; one backing off uses almost nothing.
  EXPECT_LT(cpu(after) - cpu(before), 0.5);
  for (int fd : held) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_TRUE(testutil::Eventually([&] { return server_->open_connections() == 0; }, 5s));
  ExpectServing();
}

// Reads until `n` answers (each "x", Content-Length 1, as FairnessHandler sends) have arrived, or
// the connection ends, or 5 s pass.
void ReadAnswers(int fd, int n) {
  std::string got;
  const auto until = std::chrono::steady_clock::now() + 5s;
  timeval tv{0, 100000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int answers = 0;
  char buf[65536];
  while (answers < n && std::chrono::steady_clock::now() < until) {
    const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r == 0) return;
    if (r < 0) continue;
    got.append(buf, static_cast<size_t>(r));
    for (size_t at = got.find("\r\n\r\nx"); at != std::string::npos; at = got.find("\r\n\r\nx")) {
      ++answers;
      got.erase(0, at + 5);
    }
  }
}

// /block holds its io thread until released; /a counts; /b notes how many /a came before it.
struct FairnessState {
  std::atomic<bool> blocking{false};
  std::atomic<bool> release{false};
  std::atomic<int> a_served{0};
  std::atomic<int> b_after{-1};
};

class FairnessHandler : public HttpHandler {
 public:
  explicit FairnessHandler(FairnessState& st) : st_(st) {}
  asio::awaitable<void> Handle(HttpRequest& req, ResponseWriter& w) override {
    if (req.target == "/block") {
      st_.blocking = true;
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (!st_.release && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(1ms);
      }
    } else if (req.target == "/a") {
      ++st_.a_served;
    } else if (req.target == "/b") {
      st_.b_after = st_.a_served.load();
    }
    co_await w.Send(MakeResponse(200, "text/plain", "x"));
  }

 private:
  FairnessState& st_;
};

// A keep-alive connection waits for its next request without the storage of its last one: a
// client that sends one large body and then keeps the connection open (a small request now and
// then keeps it from the idle timeout) would otherwise hold up to the body limit per connection.
TEST_F(HostileTest, AnIdleKeepAliveConnectionLetsGoOfItsLastLargeBody) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators do not report heap use through mallinfo2";
#else
  auto in_use = [] {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<int64_t>(m.uordblks + m.hblkhd);
  };
  const std::string body((1 << 20) - 1024, 'b');  // within the fixture's 1 MiB body limit
  const std::string request =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
      body;
  const int64_t before = in_use();
  std::vector<int> fds;
  for (int i = 0; i < 16; ++i) {
    const int fd = ConnectLoopback(server_->port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    ASSERT_TRUE(SendAll(fd, request));
    // The whole answer ("POST " and the body echoed) read: the request is over, the connection
    // kept.
    size_t got = 0;
    char buf[65536];
    while (got < body.size() + 5) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      ASSERT_GT(n, 0);
      got += static_cast<size_t>(n);
    }
  }
  ASSERT_TRUE(testutil::Eventually([&] { return server_->active_requests() == 0; }, 5s));
  const int64_t held = in_use() - before;
  for (const int fd : fds) ::close(fd);
  // Without letting go: 16 MiB of bodies held by 16 idle connections.
  EXPECT_LT(held, 4 << 20) << held << " bytes held by 16 idle connections";
  ExpectServing();
#endif
}

// A read deadline that fires while a read's data has already arrived cancels nothing (the read
// has completed), and the reads after it went on without a deadline: a client that kept a body
// flowing past read_timeout_s held its connection for as long as it sent. Once the deadline has
// fired, no further read starts.
TEST(ReadParsedDeadline, NoReadStartsOnceTheDeadlineHasFired) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket client(ctx), server(ctx);
  client.connect(acceptor.local_endpoint());
  acceptor.accept(server);
  detail::SocketDeadline dl(ctx.get_executor(), &server, nullptr);
  dl.Arm(std::chrono::milliseconds(1));
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!dl.fired() && std::chrono::steady_clock::now() < until) {
    ctx.run_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(dl.fired());
  // The request arrives after the deadline: it is not read.
  asio::write(client, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  HttpRequest req;
  detail::RequestParser parser(req, HttpServerOptions{});
  boost::beast::flat_buffer buffer(65536);
  boost::system::error_code ec;
  bool done = false;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        co_await detail::ReadParsed(server, buffer, parser, detail::ReadGoal::kHeader, dl, ec);
        done = true;
      },
      asio::detached);
  ctx.restart();
  ctx.run_for(2s);
  ASSERT_TRUE(done);
  EXPECT_EQ(ec, asio::error::timed_out) << ec.message();
  EXPECT_FALSE(parser.is_header_done());
}

TEST(HttpServerFairness, PipelinedRequestsDoNotHoldBackAnotherConnection) {
  FairnessState st;
  IoRuntime io(1);
  auto server =
      std::make_unique<HttpServer>(io, HttpServerOptions{}, std::make_shared<FairnessHandler>(st));
  ASSERT_TRUE(server->Start().ok());
  io.Start();
  const int a = ConnectLoopback(server->port(), 8 << 20);
  const int b = ConnectLoopback(server->port(), 8 << 20);
  const int c = ConnectLoopback(server->port(), 8 << 20);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_GE(c, 0);
  // A's read buffer grows to its 64 KiB limit, so that one read can take all of A's pipeline.
  SendAll(a, "GET /grow HTTP/1.1\r\nX: " + std::string(60000, 'g') + "\r\n\r\n");
  ReadAnswers(a, 1);
  // The one io thread is held while 3,000 pipelined requests on A and one on B arrive.
  SendAll(c, "GET /block HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 5000 && !st.blocking; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(st.blocking);
  std::string pipeline;
  for (int i = 0; i < 3000; ++i) pipeline += "GET /a HTTP/1.1\r\n\r\n";
  SendAll(a, pipeline);
  SendAll(b, "GET /b HTTP/1.1\r\n\r\n");
  st.release = true;
  ReadAnswers(b, 1);
  // B is served after at most a few of A's requests: the session yields between requests.
  // Served back to back, A's whole buffer went first whenever A's read completed before B's.
  EXPECT_GE(st.b_after.load(), 0);
  EXPECT_LT(st.b_after.load(), 100);
  ReadAnswers(a, 3000);
  EXPECT_EQ(st.a_served.load(), 3000);
  for (int fd : {a, b, c}) ::close(fd);
  server->Drain(2);
  server.reset();
  io.Stop();
}

}  // namespace
}  // namespace gimbal::net
