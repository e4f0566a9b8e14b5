// The wire side of HttpServer: Boost.Beast parsing and serialisation, one coroutine per
// connection.
#include "net/http_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/intrusive/list.hpp>
#include <spdlog/spdlog.h>

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

namespace {

// One accepted connection. Everything but `socket`'s thread-safe parts and the hook is touched
// only on the connection's executor (its strand, or the runtime's one thread). The hook links it
// into the server's list of waiting connections, under the server's mutex.
struct ConnState : boost::intrusive::list_base_hook<>, std::enable_shared_from_this<ConnState> {
  explicit ConnState(tcp::socket s) : socket(std::move(s)), watch_timer(socket.get_executor()) {}
  tcp::socket socket;
  bool idle = true;      // waiting for a request's head (Drain closes idle connections)
  bool evicted = false;  // closed to make room for a new connection (at the connection cap)
  // The session's deadline while the session runs (null before and after): eviction fires it, so
  // no read starts after the eviction, as none starts after a deadline.
  detail::SocketDeadline* deadline = nullptr;
  std::atomic<bool> closed{false};  // its socket is closed (read by the accept loop)
  std::string remote;               // "ip:port", read once per connection
  std::string head;  // scratch for response heads and chunk sizes, reused across requests
  // Client-gone watch for the request being handled (Writer::OnClientGone).
  bool watching = false;  // a wait for the client's end is wanted
  // The session had read bytes past the request being handled (the start of a pipelined one):
  // the watch then leaves the socket's bytes alone, since a CR LF there may end that request's
  // head rather than be an empty line.
  bool pipelined = false;
  bool gone = false;       // the client closed or reset the connection
  int waits_pending = 0;   // watch waits not yet completed
  uint64_t watch_gen = 0;  // bumped when a watch starts or stops; stale waits do nothing
  std::function<void()> on_gone;
  // The watch starts kWatchDelay after a handler asks for it, so a request answered sooner costs
  // it nothing. One timer per connection, re-armed lazily: it fires at most once per kWatchDelay.
  asio::steady_timer watch_timer;
  std::chrono::steady_clock::time_point watch_due = std::chrono::steady_clock::time_point::max();
  bool timer_waiting = false;
};

constexpr std::chrono::milliseconds kWatchDelay{20};

// Request storage a keep-alive connection keeps between requests; larger storage is freed.
constexpr size_t kKeptStorageBytes = 16 << 10;
constexpr size_t kKeptFields = 64;

void ClientGone(ConnState& c) {
  c.watching = false;
  c.gone = true;
  if (c.on_gone) {
    auto fn = std::move(c.on_gone);
    c.on_gone = nullptr;
    fn();
  }
}

// Waits for the socket to turn readable, on the connection's executor, then peeks (nothing is
// consumed) to tell the client's end from a pipelined request. Asio starts a readiness wait by
// re-arming the socket's epoll registration (one epoll_ctl), which also reports an end that is
// already there; a peek tried at once would cost a failed recvfrom per watched request instead.
void WatchClient(const std::shared_ptr<ConnState>& c) {
  ++c->waits_pending;
  c->socket.async_wait(tcp::socket::wait_read, [c, gen = c->watch_gen](const error_code& ec) {
    --c->waits_pending;
    if (!c->watching || c->watch_gen != gen) return;
    if (ec == asio::error::operation_aborted) {  // a write deadline or Abort() cancelled it
      c->watching = false;
      return;
    }
    error_code peek_ec;
    size_t n = 0;
    std::array<char, 64> peeked;
    if (!ec) {
      n = c->socket.receive(asio::buffer(peeked), tcp::socket::message_peek,
                            peek_ec);  // the socket is in non-blocking mode
    }
    if (!ec && peek_ec == asio::error::would_block) {
      WatchClient(c);  // woken for nothing: wait again
      return;
    }
    if (!ec && !peek_ec && n > 0) {
      // Empty lines before a request line are ignored (RFC 9112 §2.2): they are read off here, so
      // a CRLF sent after a body (as some clients do) neither ends the watch nor reaches the
      // parser. Anything else is a pipelined request: nothing more to learn from the socket.
      size_t blank = 0;
      while (!c->pipelined && blank < n && (peeked[blank] == '\r' || peeked[blank] == '\n')) {
        ++blank;
      }
      if (blank > 0) {
        error_code read_ec;
        c->socket.receive(asio::buffer(peeked.data(), blank), 0, read_ec);
        if (!read_ec && blank == n) {
          WatchClient(c);
          return;
        }
      }
      c->watching = false;
      return;
    }
    ClientGone(*c);  // end of stream, reset, or another error
  });
}

void StartWatch(const std::shared_ptr<ConnState>& c) {
  if (c->watching || c->gone) return;
  c->watching = true;
  ++c->watch_gen;
  WatchClient(c);
}

// Starts the watch once the request asking for it has been in flight for kWatchDelay.
void ArmWatchTimer(const std::shared_ptr<ConnState>& c) {
  c->timer_waiting = true;
  c->watch_timer.expires_at(c->watch_due);
  c->watch_timer.async_wait([c](const error_code& ec) {
    c->timer_waiting = false;
    if (ec || c->watch_due == std::chrono::steady_clock::time_point::max()) return;
    if (c->watch_due > std::chrono::steady_clock::now()) {  // a later request asked since
      ArmWatchTimer(c);
      return;
    }
    c->watch_due = std::chrono::steady_clock::time_point::max();
    StartWatch(c);
  });
}

void RequestWatch(const std::shared_ptr<ConnState>& c) {
  if (c->watching || c->gone) return;
  c->watch_due = std::chrono::steady_clock::now() + kWatchDelay;
  if (!c->timer_waiting) ArmWatchTimer(c);
}

// After a handler returned: no callback, no pending wait (the timer, if waiting, finds nothing
// due and stops).
void StopWatch(ConnState& c) {
  c.watch_due = std::chrono::steady_clock::time_point::max();
  c.on_gone = nullptr;
  c.watching = false;
  ++c.watch_gen;
  if (c.waits_pending > 0) {
    error_code ec;
    c.socket.cancel(ec);
  }
}

HttpResponse DefaultError(int status, std::string_view message) {
  return MakeResponse(status, "text/plain; charset=utf-8", std::string(message) + "\n");
}

void AppendDecimal(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

// Status line and headers, without the blank line that ends them. Framing headers the handler
// set are dropped: the writer frames the message itself. Fields are written as they are: their
// sources hold no CR or LF (values Beast parsed, backend names the router config checks); a
// check here per field cost 2% of the proxy's instructions per request.
void AppendHead(std::string& out, int status, const Headers& headers) {
  out += "HTTP/1.1 "sv;
  AppendDecimal(out, static_cast<uint64_t>(status));
  out += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  out.append(reason.data(), reason.size());
  out += "\r\n"sv;
  for (const auto& [k, v] : headers.items()) {
    if (EqualsIgnoreCase(k, "Content-Length") || EqualsIgnoreCase(k, "Transfer-Encoding") ||
        EqualsIgnoreCase(k, "Connection")) {
      continue;
    }
    out += k;
    out += ": "sv;
    out += v;
    out += "\r\n"sv;
  }
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(IoRuntime& rt, HttpServerOptions o, std::shared_ptr<HttpHandler> h)
      : io(rt), opts(std::move(o)), handler(std::move(h)), acceptor(ConnectionExecutor()) {
    if (!opts.error_response) opts.error_response = DefaultError;
  }

  // A fresh strand with several runtime threads; the io_context itself with one.
  asio::any_io_executor ConnectionExecutor() {
    if (io.threads() > 1) return asio::make_strand(io.context());
    return io.context().get_executor();
  }

  IoRuntime& io;
  HttpServerOptions opts;
  std::shared_ptr<HttpHandler> handler;
  tcp::acceptor acceptor;
  uint16_t bound_port = 0;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> connections{0};
  size_t max_connections = 0;  // opts.max_connections, or what Start() derived
  std::atomic<int64_t> evicted{0};
  std::atomic<int64_t> refused{0};
  Mutex mu;
  std::set<std::shared_ptr<ConnState>> conns GIMBAL_GUARDED_BY(mu);
  // Connections waiting for a request's head (kept alive between requests, or with a head under
  // way), the longest-waiting first. At the cap the first makes room for a new connection, as
  // nginx reuses its keep-alive connections; a connection serving a request is never in it.
  boost::intrusive::list<ConnState> waiting GIMBAL_GUARDED_BY(mu);

  asio::awaitable<void> AcceptLoop();
  asio::awaitable<void> Session(std::shared_ptr<ConnState> conn);
  // Marks `c` as waiting for a head (to the back of `waiting`) or not; on c's executor.
  void SetIdle(ConnState& c, bool idle) {
    c.idle = idle;
    MutexLock lock(mu);
    if (c.is_linked()) waiting.erase(waiting.iterator_to(c));
    if (idle) waiting.push_back(c);
  }
  // Closes the connection that has waited longest for a request's head (soon, on its executor,
  // unless a head arrives first). Null when none waits.
  std::shared_ptr<ConnState> EvictLongestWaiting();
  std::string EvictedMessage() const {
    return "the server is at its limit of " + std::to_string(max_connections) +
           " connections and closed this one, whose request header was not complete";
  }
  // Answers a connection accepted over the cap with 503 and closes it.
  void Refuse(tcp::socket sock);
};

namespace {

// ResponseWriter over one connection; lives on the session coroutine's frame.
class Writer final : public ResponseWriter {
 public:
  // `head_only`: the request was HEAD, so heads are sent with their framing headers and no body
  // (RFC 9110 §9.3.2); a body written would be read as the next response. `http10`: the request
  // was HTTP/1.0, whose clients know no chunked coding (RFC 9112 §6.1) and close a connection
  // unless told to keep it: a stream goes out unframed and ends with the connection.
  Writer(const std::shared_ptr<ConnState>& c, detail::SocketDeadline& dl, double write_timeout,
         bool keep_alive, bool head_only, bool http10)
      : conn_(c),
        sock_(c->socket),
        dl_(dl),
        write_timeout_(write_timeout),
        keep_alive_(keep_alive),
        head_only_(head_only),
        http10_(http10) {}

  asio::awaitable<Status> Send(HttpResponse r) override {
    if (started_) co_return Internal("response already started");
    started_ = true;
    std::string& head = conn_->head;
    head.clear();
    AppendHead(head, r.status, r.headers);
    // No body for 1xx, 204 and 304 (as Beast's prepare_payload).
    const bool bodyless = r.status < 200 || r.status == 204 || r.status == 304;
    if (!bodyless) {
      head += "Content-Length: "sv;
      AppendDecimal(head, r.body.size());
      head += "\r\n"sv;
    }
    if (!keep_alive_) head += "Connection: close\r\n"sv;
    if (keep_alive_ && http10_) head += "Connection: keep-alive\r\n"sv;
    head += "\r\n"sv;
    std::array<asio::const_buffer, 2> bufs{
        asio::buffer(head), bodyless || head_only_ ? asio::const_buffer() : asio::buffer(r.body)};
    error_code ec;
    if (!detail::TryWriteNow(sock_, bufs, ec)) ec = co_await WriteRest(bufs);
    finished_ = !ec;
    co_return Check(ec);
  }

  asio::awaitable<Status> BeginStream(int status, Headers headers) override {
    if (started_) co_return Internal("response already started");
    started_ = true;
    streaming_ = true;
    std::string& head = conn_->head;
    head.clear();
    AppendHead(head, status, headers);
    if (http10_) {
      keep_alive_ = false;  // the stream ends with the connection
    } else {
      head += "Transfer-Encoding: chunked\r\n"sv;
    }
    if (!keep_alive_) head += "Connection: close\r\n"sv;
    head += "\r\n"sv;
    std::array<asio::const_buffer, 1> bufs{asio::buffer(head)};
    error_code ec;
    if (!detail::TryWriteNow(sock_, bufs, ec)) ec = co_await WriteRest(bufs);
    co_return Check(ec);
  }

  asio::awaitable<Status> WriteChunk(std::string_view data) override {
    if (!streaming_) co_return Internal("WriteChunk before BeginStream");
    if (failed_) co_return Status(ErrorCode::kUnavailable, "client connection lost");
    if (data.empty() || head_only_) co_return Status::Ok();
    if (http10_) {
      std::array<asio::const_buffer, 1> raw{asio::buffer(data.data(), data.size())};
      error_code ec;
      if (!detail::TryWriteNow(sock_, raw, ec)) ec = co_await WriteRest(raw);
      co_return Check(ec);
    }
    char size[24];
    auto [end, tc] = std::to_chars(size, size + sizeof(size) - 2, data.size(), 16);
    *end++ = '\r';
    *end++ = '\n';
    std::array<asio::const_buffer, 3> bufs{asio::buffer(size, static_cast<size_t>(end - size)),
                                           asio::buffer(data.data(), data.size()),
                                           asio::buffer("\r\n", 2)};
    error_code ec;
    if (!detail::TryWriteNow(sock_, bufs, ec)) ec = co_await WriteRest(bufs);
    co_return Check(ec);
  }

  asio::awaitable<Status> EndStream() override {
    if (!streaming_) co_return Internal("EndStream before BeginStream");
    if (failed_) co_return Status(ErrorCode::kUnavailable, "client connection lost");
    if (head_only_ || http10_) {  // nothing to write: HEAD sends no body; HTTP/1.0 closes
      finished_ = true;
      co_return Status::Ok();
    }
    std::array<asio::const_buffer, 1> bufs{asio::buffer("0\r\n\r\n", 5)};
    error_code ec;
    if (!detail::TryWriteNow(sock_, bufs, ec)) ec = co_await WriteRest(bufs);
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
  void OnClientGone(std::function<void()> fn) override {
    conn_->on_gone = std::move(fn);
    if (!conn_->on_gone) return;
    if (conn_->gone) {
      ClientGone(*conn_);
      return;
    }
    RequestWatch(conn_);
  }
  bool client_gone() const override { return conn_->gone; }
  bool finished() const { return finished_; }
  bool failed() const { return failed_; }
  // Whether the connection may carry another request (a stream to an HTTP/1.0 client may not).
  bool keep_alive() const { return keep_alive_; }

 private:
  // Writes what TryWriteNow left of `bufs` under the write deadline (a coroutine frame only
  // when the socket did not take everything at once).
  template <size_t N>
  asio::awaitable<error_code> WriteRest(std::array<asio::const_buffer, N>& bufs) {
    error_code ec;
    dl_.ArmSeconds(write_timeout_);
    co_await asio::async_write(sock_, bufs, asio::redirect_error(asio::use_awaitable, ec));
    dl_.Disarm();
    co_return ec;
  }

  Status Check(const error_code& ec) {
    if (!ec) return Status::Ok();
    failed_ = true;
    if (dl_.fired()) return Status(ErrorCode::kUnavailable, "client too slow: write timed out");
    conn_->watching = false;
    conn_->gone = true;
    return Status(ErrorCode::kUnavailable, "client connection lost: " + ec.message());
  }

  const std::shared_ptr<ConnState>& conn_;
  tcp::socket& sock_;
  detail::SocketDeadline& dl_;
  double write_timeout_;
  bool keep_alive_;
  bool head_only_;
  bool http10_;
  bool started_ = false;
  bool streaming_ = false;
  bool finished_ = false;
  bool failed_ = false;
};

}  // namespace

namespace {

bool OutOfDescriptors(const error_code& ec) {
  return ec == asio::error::no_descriptors ||
         ec == boost::system::errc::too_many_files_open_in_system;
}

// Rate-limits a log line: Count() counts an event and, at most once a second, returns the events
// counted since it last did (0 otherwise).
class EverySecond {
 public:
  int64_t Count() {
    ++count_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) return 0;
    last_ = now;
    return std::exchange(count_, 0);
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  int64_t count_ = 0;
};

}  // namespace

std::shared_ptr<ConnState> HttpServer::Impl::EvictLongestWaiting() {
  std::shared_ptr<ConnState> c;
  {
    MutexLock lock(mu);
    if (waiting.empty()) return nullptr;
    ConnState& first = waiting.front();
    waiting.pop_front();
    c = first.shared_from_this();  // its session, which holds it, unlinks it before ending
  }
  asio::post(c->socket.get_executor(), [self = shared_from_this(), c] {
    // A whole head arrived meanwhile: that request is served (and the connection then closed).
    if (!c->idle || c->deadline == nullptr) return;
    c->evicted = true;
    ++self->evicted;
    // Ends the read under way and starts no other (a read that completed but has not resumed
    // its coroutine yet would otherwise be followed by the next); between requests the session
    // sees `evicted` after its yield.
    c->deadline->Fire();
  });
  return c;
}

void HttpServer::Impl::Refuse(tcp::socket sock) {
  ++refused;
  HttpResponse r =
      opts.error_response(503, "the server is at its limit of " + std::to_string(max_connections) +
                                   " connections and every one is serving a request; try again");
  std::string out;
  AppendHead(out, 503, r.headers);
  out += "Retry-After: 1\r\nConnection: close\r\nContent-Length: "sv;
  AppendDecimal(out, r.body.size());
  out += "\r\n\r\n"sv;
  out += r.body;
  error_code ec;
  sock.non_blocking(true, ec);
  sock.write_some(asio::buffer(out), ec);  // a new socket's send buffer takes it at once
  sock.shutdown(tcp::socket::shutdown_send, ec);
  // What the client sent already is read off (a little, never waiting), so closing does not reset
  // the connection before the client reads the answer.
  std::array<char, 4096> scratch;
  for (int i = 0; i < 16 && !ec; ++i) sock.read_some(asio::buffer(scratch), ec);
  sock.close(ec);
}

asio::awaitable<void> HttpServer::Impl::AcceptLoop() {
  auto self = shared_from_this();
  // An accept that fails (out of file descriptors, above all) would fail again at once. Out of
  // descriptors, a connection waiting for a request's head is closed and the accept tried again
  // once it is; with none waiting, or another error, back off from 10 ms doubling to 1 s while it
  // keeps failing.
  asio::steady_timer backoff(acceptor.get_executor());
  std::chrono::milliseconds delay{0};
  EverySecond failed, evicted_log, refused_log;
  for (;;) {
    error_code ec;
    tcp::socket sock = co_await acceptor.async_accept(
        ConnectionExecutor(), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor.is_open() || draining) co_return;
      if (ec == asio::error::operation_aborted) co_return;
      if (OutOfDescriptors(ec)) {
        // Linux takes the new descriptor before it looks for a connection, so an accept fails
        // this way with none pending too (Asio tries one as soon as it is asked): wait for one
        // before closing anything. The wait re-arms the listener's epoll registration, which
        // reports a connection already pending.
        co_await acceptor.async_wait(tcp::acceptor::wait_read,
                                     asio::redirect_error(asio::use_awaitable, ec));
        if (!acceptor.is_open() || draining) co_return;
        if (ec == asio::error::operation_aborted) co_return;
        if (auto victim = EvictLongestWaiting()) {
          if (const int64_t n = evicted_log.Count()) {
            spdlog::warn(
                "out of file descriptors ({}): closed the connection that waited "
                "longest for a request, {} time(s) in the last second",
                ec.message(), n);
          }
          // Accept again once its descriptor is free (or 50 ms on, should a head have arrived
          // and kept it), so that one accept closes one connection.
          for (int i = 0; i < 50 && !victim->closed.load(); ++i) {
            backoff.expires_after(std::chrono::milliseconds(1));
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          }
          delay = std::chrono::milliseconds(0);
          continue;
        }
      }
      if (const int64_t n = failed.Count()) {
        spdlog::warn("accept failed {} time(s) in the last second: {}; backing off", n,
                     ec.message());
      }
      delay = std::min<std::chrono::milliseconds>(
          std::max<std::chrono::milliseconds>(delay * 2, std::chrono::milliseconds(10)),
          std::chrono::seconds(1));
      backoff.expires_after(delay);
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    delay = std::chrono::milliseconds(0);
    if (draining) {
      sock.close(ec);
      continue;
    }
    if (static_cast<size_t>(connections.load()) >= max_connections) {
      if (EvictLongestWaiting()) {
        if (const int64_t n = evicted_log.Count()) {
          spdlog::warn(
              "at the limit of {} connections: closed the connection that waited "
              "longest for a request, {} time(s) in the last second",
              max_connections, n);
        }
      } else {
        if (const int64_t n = refused_log.Count()) {
          spdlog::warn(
              "at the limit of {} connections, all serving a request: answered 503 to "
              "{} new connection(s) in the last second",
              max_connections, n);
        }
        Refuse(std::move(sock));
        continue;
      }
    }
    sock.set_option(tcp::no_delay(true), ec);
    sock.non_blocking(true, ec);  // writes are tried at once (detail::TryWriteNow)
    auto conn = std::make_shared<ConnState>(std::move(sock));
    auto ep = conn->socket.remote_endpoint(ec);
    if (!ec) conn->remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    {
      MutexLock lock(mu);
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
  conn->deadline = &dl;
  // Kept across keep-alive requests, so their storage is reused. Bounded: a head, and a chunked
  // request's trailer fields, must fit (detail::ServerBufferLimit).
  boost::beast::flat_buffer buffer(detail::ServerBufferLimit(opts));
  HttpRequest req;
  bool counted = false;   // this connection's request is counted in `active`
  bool answered = false;  // a request on this connection was answered
  // Whatever one connection does ends that connection, never the process: nothing thrown below
  // (a parser or allocation failure) leaves this coroutine.
  try {
    for (;;) {
      SetIdle(*conn, true);
      if (draining) break;
      if (answered) {
        // Between requests the connection yields to the handlers already queued: a client's
        // pipelined requests are served one per turn, never a whole buffer of them ahead of
        // every other connection on the thread; and after an answer the next request cannot
        // be there yet while Asio 1.74 tries every read at once, so running the queued
        // handlers first lets the read usually find it, instead of costing a failed recvfrom
        // (docs/router.md, "Throughput"). Before the deadline is armed: one that expired with
        // no read pending would cancel nothing.
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        if (draining) break;
        if (conn->evicted) {
          // Bytes of a pipelined request are there: its client learns why it is not served.
          if (buffer.size() > 0) {
            Writer w(conn, dl, opts.write_timeout_s, false, false, false);
            co_await w.Send(opts.error_response(503, EvictedMessage()));
          }
          break;
        }
      }
      detail::RequestParser parser(req, opts);  // parses straight into `req`
      error_code ec;
      dl.ArmSeconds(opts.idle_timeout_s);
      co_await detail::ReadParsed(sock, buffer, parser, detail::ReadGoal::kHeader, dl, ec);
      dl.Disarm();
      SetIdle(*conn, false);

      // Answers a protocol error with `status` and ends the connection.
      auto fail = [&](int status, std::string_view message) -> asio::awaitable<void> {
        HttpResponse r = opts.error_response(status, message);
        Writer w(conn, dl, opts.write_timeout_s, false, false, false);
        co_await w.Send(std::move(r));
      };

      if (ec) {
        const bool nothing_read = buffer.size() == 0 && !parser.got_some();
        std::string message;
        int status = detail::RequestErrorStatus(ec, detail::ReadPhase::kHeader, nothing_read,
                                                dl.fired(), opts, &message);
        if (conn->evicted && !nothing_read) {
          status = 503;
          message = EvictedMessage();
        }
        if (status != 0) co_await fail(status, message);
        break;
      }
      {
        std::string message;
        if (const int status = detail::CheckRequestHead(parser, &message); status != 0) {
          co_await fail(status, message);
          break;
        }
      }
      const bool http10 = parser.version() < 11;
      // An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1): it cannot read a 100.
      if (!http10 && EqualsIgnoreCase(req.headers.Get("Expect"), "100-continue")) {
        dl.ArmSeconds(opts.write_timeout_s);
        co_await asio::async_write(sock, asio::buffer("HTTP/1.1 100 Continue\r\n\r\n", 25),
                                   asio::redirect_error(asio::use_awaitable, ec));
        dl.Disarm();
        if (ec) break;
      }
      if (!parser.is_done()) {
        dl.ArmSeconds(opts.read_timeout_s);
        co_await detail::ReadParsed(sock, buffer, parser, detail::ReadGoal::kMessage, dl, ec);
        dl.Disarm();
        if (ec) {
          std::string message;
          const int status = detail::RequestErrorStatus(ec, detail::ReadPhase::kBody, false,
                                                        dl.fired(), opts, &message);
          if (status != 0) co_await fail(status, message);
          break;
        }
      }
      // An evicted connection whose head arrived first is served, then closed.
      bool keep_alive = parser.keep_alive() && !draining && !conn->evicted;
      const bool head_only = parser.method() == http::verb::head;
      req.remote = conn->remote;
      conn->pipelined = buffer.size() > 0;
      Writer writer(conn, dl, opts.write_timeout_s, keep_alive, head_only, http10);
      ++active;
      counted = true;
      try {
        co_await handler->Handle(req, writer);
      } catch (const std::exception& e) {
        spdlog::error("handler for {} {} threw: {}", req.method, req.target, e.what());
      }
      StopWatch(*conn);
      if (!writer.started() && !conn->gone) {
        co_await writer.Send(opts.error_response(500, "no response"));
      }
      --active;
      counted = false;
      answered = true;
      if (!writer.keep_alive() || writer.failed() || !writer.finished() || conn->gone) break;
      // A kept connection waits for its next request with small storage only: a large body's (up
      // to the body limit, 4 MiB by default) or a large head's is let go, or every idle
      // connection could hold that much for as long as its client keeps it open.
      if (req.body.capacity() > kKeptStorageBytes) std::string().swap(req.body);
      req.headers.Clear();  // its strings (the next request's parser would clear them anyway)
      if (req.headers.items().capacity() > kKeptFields) req.headers = Headers();
      if (req.target.capacity() > kKeptStorageBytes) std::string().swap(req.target);
      if (buffer.size() == 0 && buffer.capacity() > kKeptStorageBytes) buffer.shrink_to_fit();
    }
  } catch (const std::exception& e) {
    if (counted) --active;
    spdlog::warn("connection from {} closed: {}", conn->remote, e.what());
  }
  error_code ignored;
  conn->watch_due = std::chrono::steady_clock::time_point::max();
  conn->watch_timer.cancel();  // its handler holds the connection
  sock.shutdown(tcp::socket::shutdown_send, ignored);
  sock.close(ignored);
  conn->deadline = nullptr;  // `dl` ends with this frame
  conn->closed = true;
  {
    MutexLock lock(mu);
    if (conn->is_linked()) waiting.erase(waiting.iterator_to(*conn));
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
  if (ec)
    return InvalidArgument("bad listen address '" + impl_->opts.address + "': " + ec.message());
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
  impl_->max_connections = impl_->opts.max_connections;
  if (impl_->max_connections == 0) {
    rlimit lim{};
    const uint64_t files = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                               ? static_cast<uint64_t>(lim.rlim_cur)
                               : uint64_t{1} << 20;
    impl_->max_connections = ConnectionCapFor(files);
  }
  asio::co_spawn(a.get_executor(), impl_->AcceptLoop(), asio::detached);
  return Status::Ok();
}

uint16_t HttpServer::port() const {
  return impl_->bound_port;
}

int64_t HttpServer::active_requests() const {
  return impl_->active.load();
}
int64_t HttpServer::open_connections() const {
  return impl_->connections.load();
}
int64_t HttpServer::waiting_connections() const {
  MutexLock lock(impl_->mu);
  return static_cast<int64_t>(impl_->waiting.size());
}
size_t HttpServer::max_connections() const {
  return impl_->max_connections;
}
int64_t HttpServer::evicted_connections() const {
  return impl_->evicted.load();
}
int64_t HttpServer::refused_connections() const {
  return impl_->refused.load();
}

uint64_t RaiseOpenFileLimit(uint64_t* before) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (before != nullptr) *before = lim.rlim_cur;
  rlim_t want = lim.rlim_max;
  if (want == RLIM_INFINITY) {
    // The kernel refuses more than fs.nr_open descriptors per process.
    want = 1 << 20;
    if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
      unsigned long long n = 0;
      if (std::fscanf(f, "%llu", &n) == 1 && n > 0) want = static_cast<rlim_t>(n);
      std::fclose(f);
    }
  }
  if (want > lim.rlim_cur) {
    rlimit raised = lim;
    raised.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim.rlim_cur = want;
  }
  return lim.rlim_cur;
}

size_t ConnectionCapFor(uint64_t open_file_limit) {
  const uint64_t half = open_file_limit > 64 ? (open_file_limit - 64) / 2 : 0;
  return static_cast<size_t>(std::clamp<uint64_t>(half, 16, uint64_t{1} << 30));
}

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
      MutexLock lock(impl->mu);
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
