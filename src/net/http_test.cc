// HttpServer and HttpClient end to end on loopback.
#include <chrono>
#include <thread>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "net/blocking.h"
#include "net/eventually.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/raw_server.h"

namespace gimbal::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<void> Sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// /echo answers the body; /stream sends 5 chunks 25 ms apart; /slow waits 300 ms, /slower 1 s,
// /watched 300 ms while watching for the client's end;
// /wait waits 60 s unless the client goes away first (counted in `gone`).
class TestHandler : public HttpHandler {
 public:
  std::atomic<int> gone{0};

  asio::awaitable<void> Handle(HttpRequest& req, ResponseWriter& w) override {
    if (req.path() == "/echo") {
      co_await w.Send(MakeResponse(200, "text/plain", req.method + " " + req.body));
    } else if (req.path() == "/stream") {
      Headers h;
      h.Set("Content-Type", "text/event-stream");
      co_await w.BeginStream(200, h);
      for (int i = 0; i < 5; ++i) {
        co_await Sleep(25ms);  // apart enough to arrive in pieces on a loaded machine
        if (!(co_await w.WriteChunk("data: " + std::to_string(i) + "\n\n")).ok()) co_return;
      }
      co_await w.EndStream();
    } else if (req.path() == "/wait") {
      asio::steady_timer t(co_await asio::this_coro::executor, 60s);
      w.OnClientGone([&] {
        ++gone;
        t.cancel();
      });
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!w.client_gone()) co_await w.Send(MakeResponse(200, "text/plain", "waited"));
    } else if (req.path() == "/big") {
      // Larger than the socket buffers: the first write cannot take it all.
      co_await w.Send(MakeResponse(200, "text/plain", std::string(8 << 20, 'b')));
    } else if (req.path() == "/bigstream") {
      Headers h;
      h.Set("Content-Type", "text/event-stream");
      co_await w.BeginStream(200, h);
      for (int i = 0; i < 4; ++i) {
        if (!(co_await w.WriteChunk(std::string(2 << 20, static_cast<char>('a' + i)))).ok()) {
          co_return;
        }
      }
      co_await w.EndStream();
    } else if (req.path() == "/watched") {  // /slow, watching for the client's end meanwhile
      w.OnClientGone([this] { ++gone; });
      co_await Sleep(300ms);
      if (!w.client_gone()) co_await w.Send(MakeResponse(200, "text/plain", "watched"));
    } else if (req.path() == "/slow") {
      co_await Sleep(300ms);
      co_await w.Send(MakeResponse(200, "text/plain", "done"));
    } else if (req.path() == "/slower") {
      co_await Sleep(1000ms);
      co_await w.Send(MakeResponse(200, "text/plain", "done"));
    } else {
      co_await w.Send(MakeResponse(404, "text/plain", "no"));
    }
  }
};

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.body_limit = 1024;
    o.read_timeout_s = 0.3;
    o.idle_timeout_s = 0.5;
    handler_ = std::make_shared<TestHandler>();
    server_ = std::make_unique<HttpServer>(io_, o, handler_);
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
  ClientRequest Req(std::string method, std::string target, std::string body = "") {
    ClientRequest r;
    r.method = std::move(method);
    r.host = "127.0.0.1";
    r.port = server_->port();
    r.target = std::move(target);
    r.body = std::move(body);
    return r;
  }
  // Sends raw bytes on a fresh connection and returns everything read until the server closes.
  // A connection that has sent GET /wait (answered after 60 s unless the client goes first).
  asio::ip::tcp::socket SendWait(asio::io_context& ctx) {
    asio::ip::tcp::socket s(ctx);
    s.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    asio::write(s, asio::buffer(std::string("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")));
    return s;
  }
  std::string Raw(const std::string& bytes, std::chrono::milliseconds pause = 0ms,
                  const std::string& more = "") {
    return testing::ExchangeRaw(server_->port(), bytes, pause, more);
  }

  IoRuntime io_{4};
  std::shared_ptr<TestHandler> handler_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpTest, WholeResponsesReuseKeepAliveConnections) {
  for (int i = 0; i < 3; ++i) {
    auto r = RunBlocking(io_.context(), client_->Send(Req("POST", "/echo", "hi")));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "POST hi");
    EXPECT_EQ(client_->idle_connections(), 1u);
  }
  EXPECT_EQ(server_->open_connections(), 1);
}

TEST_F(HttpTest, ResponsesLargerThanOneWriteArriveWhole) {
  for (int i = 0; i < 2; ++i) {  // the second on the kept-alive connection
    auto r = RunBlocking(io_.context(), client_->Send(Req("GET", "/big")));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->body.size(), size_t{8} << 20);
    EXPECT_EQ(r->body.find_first_not_of('b'), std::string::npos);
  }
  auto s = RunBlocking(io_.context(), client_->Send(Req("GET", "/bigstream")));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->body.size(), size_t{8} << 20);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(s->body[static_cast<size_t>(i) * (2 << 20)], static_cast<char>('a' + i));
    EXPECT_EQ(s->body[static_cast<size_t>(i + 1) * (2 << 20) - 1], static_cast<char>('a' + i));
  }
}

TEST_F(HttpTest, StreamsChunksInOrder) {
  auto body = RunBlocking(io_.context(), [&]() -> asio::awaitable<std::vector<std::string>> {
    std::vector<std::string> pieces;
    auto s = co_await client_->Open(Req("GET", "/stream"));
    if (!s.ok()) co_return pieces;
    for (;;) {
      auto p = co_await s.value()->Next();
      if (!p.ok() || !p.value()) break;
      pieces.push_back(*p.value());
    }
    co_return pieces;
  }());
  std::string joined;
  for (const auto& p : body) joined += p;
  EXPECT_EQ(joined, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  EXPECT_GE(body.size(), 2u);  // delivered as it was produced, not in one piece
}

TEST_F(HttpTest, ManyConcurrentRequests) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = RunBlocking(io_.context(), client_->Send(Req("POST", "/echo", "x")));
        ok += r.ok() && r->body == "POST x";
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 100);
}

TEST_F(HttpTest, OversizedBodyGets413) {
  auto r = RunBlocking(io_.context(), client_->Send(Req("POST", "/echo", std::string(5000, 'x'))));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413);
}

TEST_F(HttpTest, SlowBodyGets408) {
  auto t0 = std::chrono::steady_clock::now();
  std::string out = Raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
  EXPECT_NE(out.find("HTTP/1.1 408"), std::string::npos) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST_F(HttpTest, MalformedRequestGets400) {
  std::string out = Raw("GARBAGE\x01 / HTTP/9\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos) << out;
}

TEST_F(HttpTest, IdleConnectionIsClosed) {
  auto t0 = std::chrono::steady_clock::now();
  std::string out = Raw("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(out.find("200 OK"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);  // closed by the idle timeout
}

TEST_F(HttpTest, DrainFinishesInFlightRequests) {
  std::thread t([&] {
    auto r = RunBlocking(io_.context(), client_->Send(Req("GET", "/slower")));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "done");
  });
  // Drain once the request is being handled (it takes 1 s): an idle connection, or one whose
  // request has not been read yet, is closed by the drain.
  EXPECT_TRUE(testutil::Eventually([&] { return server_->active_requests() == 1; }));
  EXPECT_TRUE(server_->Drain(5));
  t.join();
  auto r = RunBlocking(io_.context(), client_->Send(Req("GET", "/echo")));
  EXPECT_FALSE(r.ok());  // no longer accepting
}

using testutil::Eventually;

TEST_F(HttpTest, HandlerHearsOfTheClientGoingAway) {
  asio::io_context ctx;
  asio::ip::tcp::socket s = SendWait(ctx);
  ASSERT_TRUE(Eventually([&] { return server_->active_requests() == 1; }));
  s.close();
  EXPECT_TRUE(Eventually([&] { return handler_->gone.load() == 1; }));
  EXPECT_TRUE(Eventually([&] { return server_->active_requests() == 0; }));  // not after 60 s
  // A client that stays gets its answers on the same keep-alive connection.
  auto r = RunBlocking(io_.context(), client_->Send(Req("GET", "/echo")));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(handler_->gone.load(), 1);
}

TEST_F(HttpTest, AClientGoneBeforeTheWatchStartsIsHeardWhenItStarts) {
  // The watch starts a short delay after the handler asks; a client that sent its request and
  // half-closed (or closed) at once, before that, is heard when it starts, as is one that closes
  // while the handler runs. Both ends before the handler's own 60 s wait.
  for (bool half_close : {true, false}) {
    const int before = handler_->gone.load();
    asio::io_context ctx;
    asio::ip::tcp::socket s = SendWait(ctx);
    if (half_close) {
      s.shutdown(asio::ip::tcp::socket::shutdown_send);
    } else {
      s.close();
    }
    EXPECT_TRUE(Eventually([&] { return handler_->gone.load() == before + 1; })) << half_close;
    EXPECT_TRUE(Eventually([&] { return server_->active_requests() == 0; })) << half_close;
  }
}

// Empty lines before a request line are ignored (RFC 9112 §2.2); some clients send a CRLF after a
// body. Taken for a pipelined request, it ended the watch, so a client that then went away was
// not heard and its request held its place until it ended on its own (60 s here). Sent before
// and after the watch starts, alone or as many lines; then a request behind blank lines is still
// read and answered.
TEST_F(HttpTest, BlankLinesAfterARequestDoNotHideTheClientGoingAway) {
  for (const std::string& blank : {std::string("\r\n"), std::string(300, '\n')}) {
    for (bool before_watch : {true, false}) {
      const int gone = handler_->gone.load();
      asio::io_context ctx;
      asio::ip::tcp::socket s = SendWait(ctx);
      if (before_watch) asio::write(s, asio::buffer(blank));
      ASSERT_TRUE(Eventually([&] { return server_->active_requests() == 1; }));
      std::this_thread::sleep_for(100ms);  // the watch has started (20 ms after the request)
      if (!before_watch) asio::write(s, asio::buffer(blank));
      std::this_thread::sleep_for(50ms);
      s.close();
      EXPECT_TRUE(Eventually([&] { return handler_->gone.load() == gone + 1; }))
          << blank.size() << " " << before_watch;
      EXPECT_TRUE(Eventually([&] { return server_->active_requests() == 0; }));
    }
  }
  // A pipelined request whose head is still arriving while the one before it is handled: the CR
  // LF that ends its head is not an empty line to read off (the head would never end).
  const std::string both =
      Raw("GET /watched HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n"
          "Connection: close\r\n",
          100ms, "\r\n");
  EXPECT_NE(both.find("watched"), std::string::npos) << both;
  EXPECT_NE(both.find("GET "), std::string::npos) << both;  // the echo of the second request
  // Blank lines, then a request: the request is read as usual.
  const std::string got = testing::ExchangeRaw(
      server_->port(), "\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
}

// HTTP/1.0 clients know no chunked coding (RFC 9112 §6.1) and cannot read a 100 (RFC 9110
// §10.1.1): a stream reaches them unframed, ended by the connection's close; a whole answer keeps
// the connection only when asked to, and says so.
TEST_F(HttpTest, AnHttp10ClientGetsAStreamWithoutChunksEndedByTheClose) {
  const std::string got = Raw("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const size_t body = got.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << got;
  const std::string head = got.substr(0, body);
  EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
  EXPECT_NE(head.find("Connection: close"), std::string::npos) << head;
  EXPECT_EQ(got.substr(body + 4), "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");

  // A whole answer on a kept HTTP/1.0 connection says so, and the next request is answered.
  const std::string two =
      Raw("POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na"
          "POST /echo HTTP/1.0\r\nContent-Length: 1\r\n\r\nb");
  EXPECT_NE(two.find("Connection: keep-alive\r\n"), std::string::npos) << two;
  EXPECT_NE(two.find("POST a"), std::string::npos) << two;
  EXPECT_NE(two.find("POST b"), std::string::npos) << two;

  // Expect: 100-continue from an HTTP/1.0 client is ignored; from HTTP/1.1 it is answered.
  const std::string ten =
      Raw("POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz");
  EXPECT_EQ(ten.find("100 Continue"), std::string::npos) << ten;
  EXPECT_NE(ten.find("POST z"), std::string::npos) << ten;
  const std::string eleven =
      Raw("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n"
          "Connection: close\r\n\r\nz");
  EXPECT_EQ(eleven.rfind("HTTP/1.1 100 Continue", 0), 0u) << eleven;
}

TEST_F(HttpTest, ClientCancelAbandonsARequestWaitingForItsHeader) {
  ClientCancel cancel;
  auto opened =
      RunBlocking(io_.context(), [&]() -> asio::awaitable<Result<std::unique_ptr<ClientStream>>> {
        asio::steady_timer t(co_await asio::this_coro::executor, 100ms);
        auto self_cancel = [&]() -> asio::awaitable<void> {
          boost::system::error_code ec;
          co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          cancel.Cancel();
        };
        asio::co_spawn(co_await asio::this_coro::executor, self_cancel(), asio::detached);
        co_return co_await client_->Open(Req("GET", "/wait"), &cancel);
      }());
  EXPECT_FALSE(opened.ok());
  EXPECT_TRUE(cancel.cancelled());
  EXPECT_TRUE(Eventually([&] { return handler_->gone.load() == 1; }));  // the server saw it
}

// With one runtime thread connections run without strands; the same behaviour holds.
TEST(HttpSingleThreadTest, ServesKeepAliveStreamsAndHearsClientsGo) {
  IoRuntime io(1);
  auto handler = std::make_shared<TestHandler>();
  HttpServer server(io, HttpServerOptions{}, handler);
  ASSERT_TRUE(server.Start().ok());
  io.Start();
  HttpClient client(io.context());
  ClientRequest req;
  req.host = "127.0.0.1";
  req.port = server.port();
  for (int i = 0; i < 3; ++i) {
    req.method = "POST";
    req.target = "/echo";
    req.body = "x" + std::to_string(i);
    auto r = RunBlocking(io.context(), client.Send(req));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "POST x" + std::to_string(i));
  }
  EXPECT_EQ(client.idle_connections(), 1u);
  req.method = "GET";
  req.target = "/stream";
  req.body.clear();
  auto s = RunBlocking(io.context(), client.Send(req));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");

  asio::io_context ctx;
  asio::ip::tcp::socket sock(ctx);
  sock.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  asio::write(sock, asio::buffer(std::string("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")));
  ASSERT_TRUE(Eventually([&] { return server.active_requests() == 1; }));
  sock.close();
  EXPECT_TRUE(Eventually([&] { return handler->gone.load() == 1; }));
  EXPECT_TRUE(Eventually([&] { return server.active_requests() == 0; }));
  EXPECT_TRUE(server.Drain(2));
  io.Stop();
}

// With one runtime thread a pooled connection keeps its deadline from request to request: it
// still bounds each of them (here the header of a slow answer on a reused connection).
TEST(HttpSingleThreadTest, AReusedConnectionKeepsItsTimeouts) {
  IoRuntime io(1);
  HttpServer server(io, HttpServerOptions{}, std::make_shared<TestHandler>());
  ASSERT_TRUE(server.Start().ok());
  io.Start();
  HttpClient client(io.context(), HttpClientOptions{.header_timeout_s = 0.1});
  auto send = [&](std::string target) {
    ClientRequest req;
    req.host = "127.0.0.1";
    req.port = server.port();
    req.target = std::move(target);
    // On the io_context's own executor, as a single-threaded server's requests run.
    return *asio::co_spawn(io.context(), detail::Optionally(client.Send(std::move(req))),
                           asio::use_future)
                .get();
  };
  auto first = send("/echo");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(client.idle_connections(), 1u);
  const auto t0 = std::chrono::steady_clock::now();
  auto slow = send("/slower");  // answers after 1 s, on the pooled connection
  EXPECT_FALSE(slow.ok());
  EXPECT_NE(slow.status().message().find("timed out"), std::string::npos)
      << slow.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 700ms);  // the 100 ms timeout, not the answer
  for (int i = 0; i < 2; ++i) {
    auto again = send("/echo");
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->body, "GET ");
  }
  EXPECT_TRUE(server.Drain(5));  // waits out the /slower handler
  io.Stop();
}

TEST_F(HttpTest, ClientReportsUnreachableHost) {
  ClientRequest r = Req("GET", "/");
  r.port = 1;
  auto res = RunBlocking(io_.context(), client_->Send(r));
  EXPECT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace gimbal::net
