// The wire side of HttpClient: connection pool, Beast serialisation and incremental body reads.
#include "net/http_client.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <map>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "core/thread_annotations.h"
#include "net/http_wire.h"
#include "net/parser_read.h"
#include "net/socket_deadline.h"

namespace gimbal::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::string_view_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Piece storage a pooled connection keeps for its next response; larger storage (after a big
// answer) is freed instead.
constexpr size_t kKeptPieceCapacity = 16384;

// One upstream connection with the storage its requests reuse.
struct Conn {
  explicit Conn(asio::io_context& ctx) : socket(ctx), buffer(detail::kClientBufferLimit) {}
  tcp::socket socket;
  boost::beast::flat_buffer buffer;  // bounded: a head and trailer fields must fit
  Clock::time_point last_used;
  std::string head;                              // request head being written
  std::optional<detail::ResponseParser> parser;  // the response being read
  // The deadline of the connection's requests, kept across them while they come from the
  // io_context's own executor (one runtime thread: HttpClient::Open), so a keep-alive request arms
  // it with no timer operation (SocketDeadline is lazy). Made without an owner: destroyed with the
  // connection, and disarmed whenever the connection is idle.
  std::optional<detail::SocketDeadline> deadline;

  // A fresh parser for the next response head, keeping the piece storage of the last one.
  detail::ResponseParser& NewParser() {
    std::string storage;
    if (parser) storage = std::move(parser->piece());
    if (storage.capacity() > kKeptPieceCapacity) storage = std::string();
    auto& p = parser.emplace(std::move(storage));
    // No limit here (Send() applies its own). Boost 1.74 mis-compares boost::none, so use max.
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    return p;
  }
};

Status Unavailable(std::string m) {
  return {ErrorCode::kUnavailable, std::move(m)};
}

void CloseConn(void* c) {
  error_code ec;
  static_cast<Conn*>(c)->socket.close(ec);
}

void AppendDecimal(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

// The request line and headers of `req`, framed by Content-Length, keep-alive.
void AppendRequestHead(std::string& out, const ClientRequest& req, const std::string& host) {
  out += req.method;
  out += ' ';
  out += req.target;
  out += " HTTP/1.1\r\n"sv;
  out += req.fixed_header_lines;
  for (const auto& [k, v] : req.headers.items()) {
    if (EqualsIgnoreCase(k, "Host") || EqualsIgnoreCase(k, "Content-Length") ||
        EqualsIgnoreCase(k, "Transfer-Encoding") || EqualsIgnoreCase(k, "Connection")) {
      continue;
    }
    out += k;
    out += ": "sv;
    out += v;
    out += "\r\n"sv;
  }
  out += "Host: "sv;
  out += host;
  out += "\r\n"sv;
  // As Beast's prepare_payload: a length whenever there is a body or the method expects one.
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "OPTIONS" ||
      req.method == "PATCH") {
    out += "Content-Length: "sv;
    AppendDecimal(out, req.body.size());
    out += "\r\n"sv;
  }
  out += "\r\n"sv;
}

}  // namespace

struct HttpClient::Pool {
  Mutex mu;
  std::map<std::string, std::vector<std::shared_ptr<Conn>>> idle GIMBAL_GUARDED_BY(mu);
  size_t max_idle = 0;
  double ttl_s = 0;
  Clock::time_point last_sweep GIMBAL_GUARDED_BY(mu);

  // An idle connection of `key` to reuse, or nullptr. An idle connection has nothing to read: one
  // that turned readable (bytes past its last answer, e.g. an engine repeating it late, or the
  // engine's close) is out of step. Reused, its bytes would be read as the next request's answer,
  // which may be another client's; it is closed instead. One poll() per reuse, outside the lock
  // every thread's requests share (the sweep runs at most once a second).
  std::shared_ptr<Conn> Take(const std::string& key) {
    for (;;) {
      std::shared_ptr<Conn> c = PopFresh(key);
      if (c == nullptr) return nullptr;
      pollfd p{c->socket.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 0) == 0) return c;
      error_code ec;
      c->socket.close(ec);
    }
  }
  void Put(const std::string& key, std::shared_ptr<Conn> c) {
    c->last_used = Clock::now();
    MutexLock lock(mu);
    SweepLocked(c->last_used);
    auto& v = idle[key];
    if (v.size() < max_idle) v.push_back(std::move(c));
  }

  bool Expired(const Conn& c, Clock::time_point now) const {
    return std::chrono::duration<double>(now - c.last_used).count() >= ttl_s;
  }

  // The most recently pooled connection of `key` within its time to live (older ones dropped).
  std::shared_ptr<Conn> PopFresh(const std::string& key) {
    MutexLock lock(mu);
    const auto now = Clock::now();
    SweepLocked(now);
    auto it = idle.find(key);
    while (it != idle.end() && !it->second.empty()) {
      auto c = std::move(it->second.back());
      it->second.pop_back();
      if (!Expired(*c, now)) return c;
    }
    return nullptr;
  }

  // At most once a second: closes idle connections the server has closed (or sent anything on:
  // an idle connection has nothing to read) and those past their time to live, so they do not
  // sit in CLOSE-WAIT until picked. One poll() over every idle socket.
  void SweepLocked(Clock::time_point now) GIMBAL_REQUIRES(mu) {
    if (now - last_sweep < std::chrono::seconds(1)) return;
    last_sweep = now;
    std::vector<pollfd> fds;
    for (const auto& [key, conns] : idle) {
      for (const auto& c : conns) fds.push_back({c->socket.native_handle(), POLLIN, 0});
    }
    if (fds.empty()) return;
    const int ready = ::poll(fds.data(), fds.size(), 0);
    size_t i = 0;
    for (auto& [key, conns] : idle) {
      std::vector<std::shared_ptr<Conn>> kept;
      kept.reserve(conns.size());
      for (auto& c : conns) {
        const bool stale = (ready > 0 && fds[i].revents != 0) || Expired(*c, now);
        ++i;
        if (stale) {
          error_code ec;
          c->socket.close(ec);
        } else {
          kept.push_back(std::move(c));
        }
      }
      conns = std::move(kept);
    }
  }
};

namespace {

class Stream final : public ClientStream {
 public:
  // `own_dl`: the request's own deadline; none: the connection's.
  Stream(std::shared_ptr<HttpClient::Pool> pool, std::string key, std::shared_ptr<Conn> conn,
         Headers headers, std::optional<detail::SocketDeadline> own_dl, double read_timeout_s,
         ClientCancel* cancel)
      : pool_(std::move(pool)),
        key_(std::move(key)),
        conn_(std::move(conn)),
        status_(conn_->parser->status()),
        headers_(std::move(headers)),
        own_dl_(std::move(own_dl)),
        dl_(own_dl_ ? *own_dl_ : *conn_->deadline),
        read_timeout_s_(read_timeout_s),
        cancel_(cancel) {}

  ~Stream() override {
    // Once done, the connection (with its deadline) may already be another request's.
    if (!done_) dl_.Disarm();
    if (cancel_) cancel_->Detach();
    if (conn_ && !done_) {
      error_code ec;
      conn_->socket.close(ec);
    }
  }

  int status() const override { return status_; }
  const Headers& headers() const override { return headers_; }

  asio::awaitable<Result<std::optional<std::string>>> Next() override {
    auto piece = co_await NextView();
    if (!piece.ok()) co_return piece.status();
    if (!piece.value()) co_return std::optional<std::string>{};
    co_return std::optional<std::string>(std::string(*piece.value()));
  }

  asio::awaitable<Result<std::optional<std::string_view>>> NextView() override {
    if (done_) co_return std::optional<std::string_view>{};
    if (failed_) co_return Unavailable("connection already failed");
    auto& parser = *conn_->parser;
    std::string& piece = parser.piece();
    while (!parser.is_done()) {
      piece.clear();
      error_code ec;
      dl_.ArmSeconds(read_timeout_s_);
      co_await detail::ReadParsed(conn_->socket, conn_->buffer, parser, detail::ReadGoal::kSome,
                                  dl_, ec);
      dl_.Disarm();
      if (ec) {
        failed_ = true;
        if (cancel_ && cancel_->cancelled()) co_return Unavailable("request cancelled");
        if (dl_.fired()) {
          co_return Status(ErrorCode::kDeadlineExceeded,
                           "no response data for " + Seconds() + " s");
        }
        co_return Unavailable("response broken off: " + ec.message());
      }
      if (!piece.empty()) co_return std::optional<std::string_view>(std::string_view(piece));
    }
    done_ = true;
    if (cancel_) {
      cancel_->Detach();
      cancel_ = nullptr;
    }
    // Bytes already buffered past the answer's end mean the upstream said more than it was
    // asked: the connection is out of step and is not reused.
    if (parser.keep_alive() && conn_->buffer.size() == 0) {
      pool_->Put(key_, conn_);
    } else {
      error_code ec;
      conn_->socket.close(ec);
    }
    co_return std::optional<std::string_view>{};
  }

 private:
  std::string Seconds() const { return std::to_string(static_cast<int>(read_timeout_s_)); }

  std::shared_ptr<HttpClient::Pool> pool_;
  std::string key_;
  std::shared_ptr<Conn> conn_;
  int status_;  // kept: the parser belongs to the connection, which the pool may hand on
  Headers headers_;
  std::optional<detail::SocketDeadline> own_dl_;
  detail::SocketDeadline& dl_;  // own_dl_ or the connection's
  double read_timeout_s_;
  ClientCancel* cancel_;
  bool done_ = false;
  bool failed_ = false;
};

}  // namespace

HttpClient::HttpClient(asio::io_context& ctx, HttpClientOptions options)
    : ctx_(ctx), opts_(options), pool_(std::make_shared<Pool>()) {
  pool_->max_idle = opts_.max_idle_per_host;
  pool_->ttl_s = opts_.idle_ttl_s;
}

HttpClient::~HttpClient() {
  CloseIdle();
}

void HttpClient::CloseIdle() {
  MutexLock lock(pool_->mu);
  // Possibly not on the io thread: the connections' deadlines (idle, so disarmed) are let go of
  // without touching them.
  for (auto& [key, conns] : pool_->idle) {
    for (auto& c : conns) {
      if (c->deadline) c->deadline->Abandon();
    }
  }
  pool_->idle.clear();
}

size_t HttpClient::idle_connections() const {
  MutexLock lock(pool_->mu);
  size_t n = 0;
  for (const auto& [k, v] : pool_->idle) n += v.size();
  return n;
}

asio::awaitable<Result<std::unique_ptr<ClientStream>>> HttpClient::Open(const ClientRequest& req,
                                                                        ClientCancel* cancel) {
  auto ex = co_await asio::this_coro::executor;
  const auto* plain = ex.target<asio::io_context::executor_type>();
  const bool keeps_deadline = plain != nullptr && *plain == ctx_.get_executor();
  std::string key = req.host;
  key += ':';
  AppendDecimal(key, req.port);
  if (cancel && cancel->cancelled()) co_return Unavailable("request cancelled");
  // Detaches the canceller from a connection that is given up.
  auto give_up = [&](Status st) {
    if (cancel) cancel->Detach();
    if (cancel && cancel->cancelled()) return Unavailable("request cancelled");
    return st;
  };

  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<Conn> conn = attempt == 0 ? pool_->Take(key) : nullptr;
    const bool reused = conn != nullptr;
    error_code ec;
    if (!conn) {
      conn = std::make_shared<Conn>(ctx_);
      tcp::resolver resolver(ex);
      auto results = co_await resolver.async_resolve(req.host, std::to_string(req.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return give_up(Unavailable("cannot resolve " + req.host + ": " + ec.message()));
      if (cancel && cancel->cancelled()) co_return give_up(Status::Ok());
      if (cancel) cancel->Attach(CloseConn, conn.get());
      detail::SocketDeadline connect_dl(ex, &conn->socket, conn);  // for the connect only
      connect_dl.ArmSeconds(opts_.connect_timeout_s);
      co_await asio::async_connect(conn->socket, results,
                                   asio::redirect_error(asio::use_awaitable, ec));
      connect_dl.Disarm();
      if (ec) {
        co_return give_up(
            Unavailable("cannot connect to " + key + ": " +
                        (connect_dl.fired() ? std::string("timed out") : ec.message())));
      }
      conn->socket.set_option(tcp::no_delay(true), ec);
      conn->socket.non_blocking(true, ec);  // writes are tried at once (detail::TryWriteNow)
      if (cancel && cancel->cancelled()) {  // a connect to a later endpoint reopened the socket
        error_code ignored;
        conn->socket.close(ignored);
        co_return give_up(Status::Ok());
      }
    }
    if (cancel) cancel->Attach(CloseConn, conn.get());
    conn->head.clear();
    AppendRequestHead(conn->head, req, key);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(conn->head), asio::buffer(req.body)};
    // The deadline of this request (the stream takes it over): the connection's own when the
    // request comes from this client's io_context executor (one runtime thread), whose handlers
    // never run beside the request; on a strand, one of its own, whose handler runs there.
    if (!conn->deadline && keeps_deadline) conn->deadline.emplace(ex, &conn->socket, nullptr);
    std::optional<detail::SocketDeadline> own_dl;
    if (!conn->deadline || conn->deadline->executor() != ex) {
      own_dl.emplace(ex, &conn->socket, conn);
    }
    detail::SocketDeadline& dl = own_dl ? *own_dl : *conn->deadline;
    if (!detail::TryWriteNow(conn->socket, bufs, ec)) {
      dl.ArmSeconds(opts_.write_timeout_s);
      co_await asio::async_write(conn->socket, bufs, asio::redirect_error(asio::use_awaitable, ec));
      dl.Disarm();
    }
    if (ec) {
      if (reused && !(cancel && cancel->cancelled())) {
        if (cancel) cancel->Detach();
        continue;
      }
      co_return give_up(Unavailable("cannot send to " + key + ": " + ec.message()));
    }
    auto& parser = conn->NewParser();
    // The engine cannot have answered yet, and Asio 1.74 tries every read at once: running the
    // handlers already queued first lets the read usually find the answer there, instead of
    // costing a failed recvfrom and an epoll wakeup (docs/router.md, "Throughput"). Before the
    // deadline is armed: one that expired with no read pending would cancel nothing.
    if (conn->buffer.size() == 0) co_await asio::post(ex, asio::use_awaitable);
    dl.ArmSeconds(opts_.header_timeout_s);
    co_await detail::ReadParsed(conn->socket, conn->buffer, parser, detail::ReadGoal::kHeader, dl,
                                ec);
    dl.Disarm();
    if (ec) {
      if (reused && !dl.fired() && !parser.got_some() && !(cancel && cancel->cancelled())) {
        if (cancel) cancel->Detach();
        continue;
      }
      error_code ignored;
      conn->socket.close(ignored);
      co_return give_up(
          dl.fired() ? Status(ErrorCode::kDeadlineExceeded, key + " gave no response: timed out")
                     : Unavailable(key + " gave no response: " + ec.message()));
    }
    // Interim answers (100 Continue, 102, 103) precede the final one: skipped. 101 would switch
    // protocols on a pooled connection: refused, the connection dropped. Never forwarded.
    Status interim_error;
    for (int interim = 0;; ++interim) {
      std::string why;
      const auto verdict = detail::ClassifyResponseStatus(conn->parser->status(), interim, &why);
      if (verdict == detail::StatusVerdict::kFinal) break;
      if (verdict == detail::StatusVerdict::kRefuse) {
        interim_error = Unavailable(key + " " + why);
        break;
      }
      conn->NewParser();
      dl.ArmSeconds(opts_.header_timeout_s);
      co_await detail::ReadParsed(conn->socket, conn->buffer, *conn->parser,
                                  detail::ReadGoal::kHeader, dl, ec);
      dl.Disarm();
      if (ec) {
        interim_error =
            dl.fired()
                ? Status(ErrorCode::kDeadlineExceeded,
                         key + " gave no response after an interim answer: timed out")
                : Unavailable(key + " gave no response after an interim answer: " + ec.message());
        break;
      }
    }
    if (!interim_error.ok()) {
      error_code ignored;
      conn->socket.close(ignored);
      co_return give_up(interim_error);
    }
    Headers headers = std::move(conn->parser->headers());
    co_return std::unique_ptr<ClientStream>(
        std::make_unique<Stream>(pool_, std::move(key), std::move(conn), std::move(headers),
                                 std::move(own_dl), opts_.read_timeout_s, cancel));
  }
  co_return give_up(Unavailable("cannot reach " + key));
}

asio::awaitable<Result<ClientResponse>> HttpClient::Send(ClientRequest req,
                                                         double total_timeout_s) {
  if (total_timeout_s > 0) {
    // The timer's handler may run after this frame is gone (queued, cancelled): it holds only
    // the shared state. It runs on this coroutine's executor, as ClientCancel requires.
    struct Deadline {
      ClientCancel cancel;
      bool fired = false;
    };
    auto d = std::make_shared<Deadline>();
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(total_timeout_s)));
    timer.async_wait([d](const boost::system::error_code& ec) {
      if (ec) return;
      d->fired = true;
      d->cancel.Cancel();
    });
    Result<ClientResponse> got = co_await SendWith(req, &d->cancel);
    timer.cancel();
    if (d->fired) {
      co_return Status(ErrorCode::kDeadlineExceeded,
                       fmt::format("no whole answer within {:g} s", total_timeout_s));
    }
    co_return got;
  }
  co_return co_await SendWith(req, nullptr);
}

asio::awaitable<Result<ClientResponse>> HttpClient::SendWith(const ClientRequest& req,
                                                             ClientCancel* cancel) {
  auto opened = co_await Open(req, cancel);
  if (!opened.ok()) co_return opened.status();
  auto& s = *opened.value();
  ClientResponse out;
  out.status = s.status();
  out.headers = s.headers();
  Status read =
      co_await ReadBody(s, opts_.max_body_bytes, out.body, "response body over max_body_bytes");
  if (!read.ok()) co_return read;
  co_return out;
}

asio::awaitable<Status> ReadBody(ClientStream& stream, size_t limit, std::string& out,
                                 std::string_view what, double total_s) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto piece = co_await stream.NextView();
    if (!piece.ok()) co_return piece.status();
    if (!piece.value()) co_return Status::Ok();
    if (total_s > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > total_s) {
      co_return Status(ErrorCode::kDeadlineExceeded,
                       "the body was still arriving after " + fmt::format("{:g}", total_s) + " s");
    }
    if (out.size() > limit || piece.value()->size() > limit - out.size()) {
      co_return Status(ErrorCode::kResourceExhausted,
                       std::string(what) + " (" + std::to_string(limit) + " bytes)");
    }
    out += *piece.value();
  }
}

}  // namespace gimbal::net
