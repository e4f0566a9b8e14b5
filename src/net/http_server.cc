// The wire side of HttpServer: Boost.Beast parsing and serialisation, one coroutine per
// connection.
#include "net/http_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "net/socket_deadline.h"

namespace gimbal::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// One accepted connection as the drain logic sees it.
struct ConnState {
  explicit ConnState(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  bool idle = true;  // touched only on the connection's strand
};

HttpResponse DefaultError(int status, std::string_view message) {
  return MakeResponse(status, "text/plain; charset=utf-8", std::string(message) + "\n");
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(IoRuntime& rt, HttpServerOptions o, std::shared_ptr<HttpHandler> h)
      : io(rt), opts(std::move(o)), handler(std::move(h)),
        acceptor(asio::make_strand(io.context())) {
    if (!opts.error_response) opts.error_response = DefaultError;
  }

  IoRuntime& io;
  HttpServerOptions opts;
  std::shared_ptr<HttpHandler> handler;
  tcp::acceptor acceptor;
  uint16_t bound_port = 0;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> connections{0};
  std::mutex mu;
  std::set<std::shared_ptr<ConnState>> conns;  // GUARDED_BY(mu)

  asio::awaitable<void> AcceptLoop();
  asio::awaitable<void> Session(std::shared_ptr<ConnState> conn);
};

namespace {

// ResponseWriter over one connection; lives on the session coroutine's frame.
class Writer final : public ResponseWriter {
 public:
  Writer(tcp::socket& s, detail::SocketDeadline& dl, double write_timeout, bool keep_alive)
      : sock_(s), dl_(dl), write_timeout_(write_timeout), keep_alive_(keep_alive) {}

  asio::awaitable<Status> Send(HttpResponse r) override {
    if (started_) co_return Internal("response already started");
    started_ = true;
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    for (const auto& [k, v] : r.headers.items()) res.set(k, v);
    res.body() = std::move(r.body);
    res.keep_alive(keep_alive_);
    res.prepare_payload();
    error_code ec;
    dl_.ArmSeconds(write_timeout_);
    co_await http::async_write(sock_, res, asio::redirect_error(asio::use_awaitable, ec));
    dl_.Disarm();
    finished_ = !ec;
    co_return Check(ec);
  }

  asio::awaitable<Status> BeginStream(int status, Headers headers) override {
    if (started_) co_return Internal("response already started");
    started_ = true;
    streaming_ = true;
    http::response<http::empty_body> res{static_cast<http::status>(status), 11};
    for (const auto& [k, v] : headers.items()) res.set(k, v);
    res.keep_alive(keep_alive_);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    error_code ec;
    dl_.ArmSeconds(write_timeout_);
    co_await http::async_write_header(sock_, sr, asio::redirect_error(asio::use_awaitable, ec));
    dl_.Disarm();
    co_return Check(ec);
  }

  asio::awaitable<Status> WriteChunk(std::string_view data) override {
    if (!streaming_) co_return Internal("WriteChunk before BeginStream");
    if (failed_) co_return Status(ErrorCode::kUnavailable, "client connection lost");
    if (data.empty()) co_return Status::Ok();
    error_code ec;
    dl_.ArmSeconds(write_timeout_);
    co_await asio::async_write(sock_, http::make_chunk(asio::buffer(data.data(), data.size())),
                               asio::redirect_error(asio::use_awaitable, ec));
    dl_.Disarm();
    co_return Check(ec);
  }

  asio::awaitable<Status> EndStream() override {
    if (!streaming_) co_return Internal("EndStream before BeginStream");
    if (failed_) co_return Status(ErrorCode::kUnavailable, "client connection lost");
    error_code ec;
    dl_.ArmSeconds(write_timeout_);
    co_await asio::async_write(sock_, http::make_chunk_last(),
                               asio::redirect_error(asio::use_awaitable, ec));
    dl_.Disarm();
    finished_ = !ec;
    co_return Check(ec);
  }

  bool started() const override { return started_; }
  void Abort() override {
    failed_ = true;
    error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }
  bool finished() const { return finished_; }
  bool failed() const { return failed_; }

 private:
  Status Check(const error_code& ec) {
    if (!ec) return Status::Ok();
    failed_ = true;
    if (dl_.fired()) return Status(ErrorCode::kUnavailable, "client too slow: write timed out");
    return Status(ErrorCode::kUnavailable, "client connection lost: " + ec.message());
  }

  tcp::socket& sock_;
  detail::SocketDeadline& dl_;
  double write_timeout_;
  bool keep_alive_;
  bool started_ = false;
  bool streaming_ = false;
  bool finished_ = false;
  bool failed_ = false;
};

HttpRequest ToRequest(http::request<http::string_body>&& req, const tcp::socket& sock) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  for (const auto& f : req) out.headers.Add(std::string(f.name_string()), std::string(f.value()));
  out.body = std::move(req.body());
  error_code ec;
  auto ep = sock.remote_endpoint(ec);
  if (!ec) out.remote = ep.address().to_string() + ":" + std::to_string(ep.port());
  return out;
}

}  // namespace

asio::awaitable<void> HttpServer::Impl::AcceptLoop() {
  auto self = shared_from_this();
  for (;;) {
    error_code ec;
    tcp::socket sock = co_await acceptor.async_accept(
        asio::make_strand(io.context()), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor.is_open() || draining) co_return;
      if (ec == asio::error::operation_aborted) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    if (draining) {
      sock.close(ec);
      continue;
    }
    sock.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<ConnState>(std::move(sock));
    {
      std::lock_guard<std::mutex> lock(mu);
      conns.insert(conn);
    }
    ++connections;
    auto ex = conn->socket.get_executor();
    asio::co_spawn(ex, Session(conn), asio::detached);
  }
}

asio::awaitable<void> HttpServer::Impl::Session(std::shared_ptr<ConnState> conn) {
  auto self = shared_from_this();
  tcp::socket& sock = conn->socket;
  detail::SocketDeadline dl(co_await asio::this_coro::executor, &sock, conn);
  boost::beast::flat_buffer buffer;
  for (;;) {
    conn->idle = true;
    if (draining) break;
    http::request_parser<http::string_body> parser;
    parser.body_limit(opts.body_limit);
    parser.header_limit(static_cast<std::uint32_t>(opts.header_limit));
    error_code ec;
    dl.ArmSeconds(opts.idle_timeout_s);
    co_await http::async_read_header(sock, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    dl.Disarm();
    conn->idle = false;

    // Answers a protocol error with `status` and ends the connection.
    auto fail = [&](int status, std::string_view message) -> asio::awaitable<void> {
      HttpResponse r = opts.error_response(status, message);
      Writer w(sock, dl, opts.write_timeout_s, false);
      co_await w.Send(std::move(r));
    };

    if (ec) {
      bool nothing_read = buffer.size() == 0 && !parser.got_some();
      if (ec == http::error::body_limit) {
        co_await fail(413, "request body exceeds the limit of " + std::to_string(opts.body_limit) +
                               " bytes");
      } else if (ec == http::error::header_limit) {
        co_await fail(431, "request header too large");
      } else if (dl.fired() && !nothing_read) {
        co_await fail(408, "timed out reading the request header");
      } else if (!nothing_read && ec != http::error::end_of_stream &&
                 ec != asio::error::eof && ec != asio::error::connection_reset &&
                 ec != asio::error::operation_aborted) {
        co_await fail(400, "malformed HTTP request: " + ec.message());
      }
      break;
    }
    if (EqualsIgnoreCase(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      dl.ArmSeconds(opts.write_timeout_s);
      co_await http::async_write(sock, cont, asio::redirect_error(asio::use_awaitable, ec));
      dl.Disarm();
      if (ec) break;
    }
    if (!parser.is_done()) {
      dl.ArmSeconds(opts.read_timeout_s);
      co_await http::async_read(sock, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      dl.Disarm();
      if (ec) {
        if (ec == http::error::body_limit) {
          co_await fail(413, "request body exceeds the limit of " +
                                 std::to_string(opts.body_limit) + " bytes");
        } else if (dl.fired()) {
          co_await fail(408, "timed out reading the request body");
        } else if (ec != asio::error::eof && ec != http::error::end_of_stream &&
                   ec != http::error::partial_message && ec != asio::error::connection_reset) {
          co_await fail(400, "malformed HTTP request: " + ec.message());
        }
        break;
      }
    }
    bool keep_alive = parser.get().keep_alive() && !draining;
    HttpRequest req = ToRequest(parser.release(), sock);
    Writer writer(sock, dl, opts.write_timeout_s, keep_alive);
    ++active;
    try {
      co_await handler->Handle(req, writer);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", req.method, req.target, e.what());
    }
    if (!writer.started()) co_await writer.Send(opts.error_response(500, "no response"));
    --active;
    if (!keep_alive || writer.failed() || !writer.finished()) break;
  }
  error_code ignored;
  sock.shutdown(tcp::socket::shutdown_send, ignored);
  sock.close(ignored);
  {
    std::lock_guard<std::mutex> lock(mu);
    conns.erase(conn);
  }
  --connections;
}

HttpServer::HttpServer(IoRuntime& io, HttpServerOptions options,
                       std::shared_ptr<HttpHandler> handler)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() {
  // Closing the acceptor on its strand ends the accept loop; sessions hold the Impl alive.
  auto impl = impl_;
  asio::post(impl->acceptor.get_executor(), [impl] {
    error_code ec;
    impl->acceptor.close(ec);
  });
}

Status HttpServer::Start() {
  error_code ec;
  auto addr = asio::ip::make_address(impl_->opts.address, ec);
  if (ec) return InvalidArgument("bad listen address '" + impl_->opts.address + "': " + ec.message());
  tcp::endpoint ep(addr, impl_->opts.port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return IoError("cannot listen on " + impl_->opts.address + ":" +
                   std::to_string(impl_->opts.port) + ": " + ec.message());
  }
  impl_->bound_port = a.local_endpoint(ec).port();
  asio::co_spawn(a.get_executor(), impl_->AcceptLoop(), asio::detached);
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

int64_t HttpServer::active_requests() const { return impl_->active.load(); }
int64_t HttpServer::open_connections() const { return impl_->connections.load(); }

bool HttpServer::Drain(double timeout_s) {
  auto impl = impl_;
  impl->draining = true;
  asio::post(impl->acceptor.get_executor(), [impl] {
    error_code ec;
    impl->acceptor.close(ec);
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    {
      // Idle keep-alive connections are closed; busy ones close after their response.
      std::lock_guard<std::mutex> lock(impl->mu);
      for (const auto& c : impl->conns) {
        asio::post(c->socket.get_executor(), [c] {
          if (!c->idle) return;
          error_code ec;
          c->socket.cancel(ec);
        });
      }
    }
    if (impl->connections.load() == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace gimbal::net
