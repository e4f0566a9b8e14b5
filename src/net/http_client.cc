// The wire side of HttpClient: connection pool, Beast serialisation and incremental body reads.
#include "net/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <vector>

#include "net/socket_deadline.h"

namespace gimbal::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

struct Conn {
  explicit Conn(asio::io_context& ctx) : socket(ctx) {}
  tcp::socket socket;
  boost::beast::flat_buffer buffer;
  Clock::time_point last_used;
};

Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }

}  // namespace

struct HttpClient::Pool {
  std::mutex mu;
  std::map<std::string, std::vector<std::shared_ptr<Conn>>> idle;  // GUARDED_BY(mu)
  size_t max_idle = 0;
  double ttl_s = 0;

  std::shared_ptr<Conn> Take(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = idle.find(key);
    auto now = Clock::now();
    while (it != idle.end() && !it->second.empty()) {
      auto c = std::move(it->second.back());
      it->second.pop_back();
      if (std::chrono::duration<double>(now - c->last_used).count() < ttl_s) return c;
    }
    return nullptr;
  }
  void Put(const std::string& key, std::shared_ptr<Conn> c) {
    c->last_used = Clock::now();
    std::lock_guard<std::mutex> lock(mu);
    auto& v = idle[key];
    if (v.size() < max_idle) v.push_back(std::move(c));
  }
};

namespace {

class Stream final : public ClientStream {
 public:
  Stream(std::shared_ptr<HttpClient::Pool> pool, std::string key, std::shared_ptr<Conn> conn,
         std::unique_ptr<http::response_parser<http::buffer_body>> parser, Headers headers,
         asio::any_io_executor ex, double read_timeout_s)
      : pool_(std::move(pool)), key_(std::move(key)), conn_(std::move(conn)),
        parser_(std::move(parser)), headers_(std::move(headers)),
        dl_(ex, &conn_->socket, conn_), read_timeout_s_(read_timeout_s) {}

  ~Stream() override {
    dl_.Disarm();
    if (conn_ && !done_) {
      error_code ec;
      conn_->socket.close(ec);
    }
  }

  int status() const override { return parser_->get().result_int(); }
  const Headers& headers() const override { return headers_; }

  asio::awaitable<Result<std::optional<std::string>>> Next() override {
    if (done_) co_return std::optional<std::string>{};
    if (failed_) co_return Unavailable("connection already failed");
    while (!parser_->is_done()) {
      auto& body = parser_->get().body();
      body.data = buf_;
      body.size = sizeof(buf_);
      error_code ec;
      dl_.ArmSeconds(read_timeout_s_);
      co_await http::async_read_some(conn_->socket, conn_->buffer, *parser_,
                                     asio::redirect_error(asio::use_awaitable, ec));
      dl_.Disarm();
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        failed_ = true;
        if (dl_.fired()) co_return Unavailable("no response data for " + Seconds() + " s");
        co_return Unavailable("response broken off: " + ec.message());
      }
      size_t got = sizeof(buf_) - parser_->get().body().size;
      if (got > 0) co_return std::optional<std::string>(std::string(buf_, got));
    }
    done_ = true;
    if (parser_->get().keep_alive()) {
      pool_->Put(key_, conn_);
    } else {
      error_code ec;
      conn_->socket.close(ec);
    }
    co_return std::optional<std::string>{};
  }

 private:
  std::string Seconds() const { return std::to_string(static_cast<int>(read_timeout_s_)); }

  std::shared_ptr<HttpClient::Pool> pool_;
  std::string key_;
  std::shared_ptr<Conn> conn_;
  std::unique_ptr<http::response_parser<http::buffer_body>> parser_;
  Headers headers_;
  detail::SocketDeadline dl_;
  double read_timeout_s_;
  bool done_ = false;
  bool failed_ = false;
  char buf_[16384];
};

}  // namespace

HttpClient::HttpClient(asio::io_context& ctx, HttpClientOptions options)
    : ctx_(ctx), opts_(options), pool_(std::make_shared<Pool>()) {
  pool_->max_idle = opts_.max_idle_per_host;
  pool_->ttl_s = opts_.idle_ttl_s;
}

HttpClient::~HttpClient() { CloseIdle(); }

void HttpClient::CloseIdle() {
  std::lock_guard<std::mutex> lock(pool_->mu);
  pool_->idle.clear();
}

size_t HttpClient::idle_connections() const {
  std::lock_guard<std::mutex> lock(pool_->mu);
  size_t n = 0;
  for (const auto& [k, v] : pool_->idle) n += v.size();
  return n;
}

asio::awaitable<Result<std::unique_ptr<ClientStream>>> HttpClient::Open(ClientRequest req) {
  auto ex = co_await asio::this_coro::executor;
  const std::string key = req.host + ":" + std::to_string(req.port);
  http::request<http::string_body> msg{http::string_to_verb(req.method), req.target, 11};
  if (msg.method() == http::verb::unknown) msg.method_string(req.method);
  for (const auto& [k, v] : req.headers.items()) msg.set(k, v);
  msg.set(http::field::host, key);
  msg.keep_alive(true);
  msg.body() = std::move(req.body);
  msg.prepare_payload();

  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<Conn> conn = attempt == 0 ? pool_->Take(key) : nullptr;
    const bool reused = conn != nullptr;
    error_code ec;
    if (!conn) {
      conn = std::make_shared<Conn>(ctx_);
      tcp::resolver resolver(ex);
      auto results = co_await resolver.async_resolve(
          req.host, std::to_string(req.port), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return Unavailable("cannot resolve " + req.host + ": " + ec.message());
      detail::SocketDeadline dl(ex, &conn->socket, conn);
      dl.ArmSeconds(opts_.connect_timeout_s);
      co_await asio::async_connect(conn->socket, results,
                                   asio::redirect_error(asio::use_awaitable, ec));
      dl.Disarm();
      if (ec) {
        co_return Unavailable("cannot connect to " + key + ": " +
                              (dl.fired() ? std::string("timed out") : ec.message()));
      }
      conn->socket.set_option(tcp::no_delay(true), ec);
    }
    detail::SocketDeadline dl(ex, &conn->socket, conn);
    dl.ArmSeconds(opts_.write_timeout_s);
    co_await http::async_write(conn->socket, msg, asio::redirect_error(asio::use_awaitable, ec));
    dl.Disarm();
    if (ec) {
      if (reused) continue;
      co_return Unavailable("cannot send to " + key + ": " + ec.message());
    }
    auto parser = std::make_unique<http::response_parser<http::buffer_body>>();
    // No limit here (Send() applies its own). Boost 1.74 mis-compares boost::none, so use max.
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    dl.ArmSeconds(opts_.header_timeout_s);
    co_await http::async_read_header(conn->socket, conn->buffer, *parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    dl.Disarm();
    if (ec) {
      if (reused && !dl.fired() && !parser->got_some()) {
        conn->buffer.clear();
        continue;
      }
      error_code ignored;
      conn->socket.close(ignored);
      co_return Unavailable(key + " gave no response: " +
                            (dl.fired() ? std::string("timed out") : ec.message()));
    }
    Headers headers;
    for (const auto& f : parser->get()) headers.Add(std::string(f.name_string()), std::string(f.value()));
    co_return std::unique_ptr<ClientStream>(std::make_unique<Stream>(
        pool_, key, std::move(conn), std::move(parser), std::move(headers), ex,
        opts_.read_timeout_s));
  }
  co_return Unavailable("cannot reach " + key);
}

asio::awaitable<Result<ClientResponse>> HttpClient::Send(ClientRequest req) {
  auto opened = co_await Open(std::move(req));
  if (!opened.ok()) co_return opened.status();
  auto& s = *opened.value();
  ClientResponse out;
  out.status = s.status();
  out.headers = s.headers();
  for (;;) {
    auto piece = co_await s.Next();
    if (!piece.ok()) co_return piece.status();
    if (!piece.value()) break;
    out.body += *piece.value();
    if (out.body.size() > opts_.max_body_bytes) {
      co_return Status(ErrorCode::kResourceExhausted, "response body over " +
                                                          std::to_string(opts_.max_body_bytes) +
                                                          " bytes");
    }
  }
  co_return out;
}

}  // namespace gimbal::net
