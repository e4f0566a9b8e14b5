// HttpServer: an asynchronous HTTP/1.1 server on a shared IoRuntime.
//
// Each connection is one coroutine: it reads a request (header, then body under a size limit),
// hands it to the HttpHandler, and loops while both sides keep the connection alive. With more
// than one runtime thread each connection runs on its own strand; with one thread the coroutine
// runs on the io_context directly (one thread serialises everything, a strand would only add a
// hop). Either way a connection's handlers never run concurrently with each other. The handler is
// itself a coroutine; it answers through a ResponseWriter either with one whole response or with a
// chunked stream (server-sent events) written piece by piece, nothing buffered. Timeouts:
// `idle_timeout_s` until a request's header has arrived, `read_timeout_s` for its body,
// `write_timeout_s` for each write (a client that stops reading is cut off).
//
// While a handler runs, it can ask to hear of the client going away (OnClientGone): the server
// then watches the socket for the client's end of stream or reset, and calls back at once, so a
// handler waiting on slow work (an upstream request, a model) can abandon it.
//
// The server answers protocol errors itself with `error_response` (400 malformed, 408 timeout,
// 413 body too large). Drain() stops accepting, closes idle keep-alive connections and waits for
// in-flight requests to finish.
//
// Connections are capped (`max_connections`), so clients that open connections and send nothing,
// or trickle a head, cannot take every file descriptor. A connection accepted at the cap makes
// room by closing the connection that has waited longest for a request's head (an idle keep-alive
// connection, closed silently, or one still sending its head, answered 503); as nginx reuses its
// keep-alive connections. A connection serving a request is never closed for room: when every
// connection is serving, the new one is answered 503 with `Retry-After: 1` and closed. When
// accepting fails for want of descriptors (other descriptors count too), a waiting connection is
// closed the same way and the accept tried again; with none waiting the accept loop backs off.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/awaitable.hpp>

#include "core/status.h"
#include "net/http_types.h"
#include "net/io_runtime.h"

namespace gimbal::net {

// How a handler answers one request. Used only from the handler's coroutine.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // Sends a whole response (Content-Length framing). At most once, and not after BeginStream.
  virtual boost::asio::awaitable<Status> Send(HttpResponse response) = 0;
  // Sends the status line and headers of a chunked response.
  virtual boost::asio::awaitable<Status> BeginStream(int status, Headers headers) = 0;
  // Sends one chunk (empty data is skipped). Error when the client is gone or too slow.
  virtual boost::asio::awaitable<Status> WriteChunk(std::string_view data) = 0;
  // Sends the last chunk.
  virtual boost::asio::awaitable<Status> EndStream() = 0;
  // True once any byte of the response was handed to the socket.
  virtual bool started() const = 0;
  // Closes the connection at once, mid-response if need be (the client sees it broken off).
  virtual void Abort() = 0;
  // Calls `fn` once, on the handler's executor, when the client closes or resets its connection
  // before this response is finished; at once (inside this call) when it was already seen to go.
  // Replaces an earlier `fn`; an empty one stops the callbacks. The callback is dropped when the
  // handler returns. The first call asks for the watch, which starts 20 ms later if the request
  // is still being handled (one timer per connection, re-armed lazily): a readiness wait on the
  // socket (one epoll_ctl re-arming it, which also reports an end that is already there; then a
  // one-byte peek that consumes nothing). A handler that never asks, or a request answered within
  // the 20 ms, pays for no watch; a client's end is heard at most 20 ms late. A client that
  // half-closes its sending side while still reading counts as gone (as in nginx). One that
  // pipelines its next request is no longer watched.
  virtual void OnClientGone(std::function<void()> fn) = 0;
  // True once the client was seen to go: by the watch above, or by a write that failed because
  // the connection was closed or reset (not by a write timeout).
  virtual bool client_gone() const = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Answers `request` through `writer`. If it returns without answering, the server sends 500.
  virtual boost::asio::awaitable<void> Handle(HttpRequest& request, ResponseWriter& writer) = 0;
};

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;               // 0: an ephemeral port, see HttpServer::port()
  size_t body_limit = 4 << 20;     // bytes; larger bodies get 413
  size_t header_limit = 64 << 10;  // bytes
  double idle_timeout_s = 60;      // wait for the next request's header
  double read_timeout_s = 30;      // read one request's body
  double write_timeout_s = 30;     // each write to the client
  // Open client connections; 0: ConnectionCapFor(the open-file limit when Start() runs).
  size_t max_connections = 0;
  // Builds the body of errors the server answers itself; default: plain text.
  std::function<HttpResponse(int status, std::string_view message)> error_response;
};

class HttpServer {
 public:
  HttpServer(IoRuntime& io, HttpServerOptions options, std::shared_ptr<HttpHandler> handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting (the runtime's threads do the work). Error when the address or
  // port cannot be bound.
  Status Start();
  // The bound port (after Start).
  uint16_t port() const;
  // Stops accepting, closes idle connections, lets in-flight requests finish (connections close
  // after their response) and waits up to `timeout_s` for every connection to end. True when all
  // ended in time. Must not be called from the runtime's threads.
  bool Drain(double timeout_s);
  // Requests being handled now.
  int64_t active_requests() const;
  int64_t open_connections() const;
  // Connections waiting for a request's head (idle keep-alive, or a head under way): the ones
  // that make room at the cap.
  int64_t waiting_connections() const;
  // The connection cap in force (after Start).
  size_t max_connections() const;
  // Connections closed to make room for new ones, and connections refused (503) at the cap.
  int64_t evicted_connections() const;
  int64_t refused_connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Raises the process's soft open-file limit to its hard limit, as Go's runtime and nginx's
// `worker_rlimit_nofile` do, so a server holds as many connections as the system allows it; a
// hard limit of "unlimited" raises it to the kernel's per-process maximum (fs.nr_open). Returns
// the soft limit in force afterwards, and the one before in `*before` if given.
uint64_t RaiseOpenFileLimit(uint64_t* before = nullptr);
// The default connection cap for an open-file limit: (limit - 64) / 2, that is 64 descriptors
// kept for listeners, engines' health and state connections and files, and two per connection
// (a proxied request holds a client and an upstream descriptor); at least 16.
size_t ConnectionCapFor(uint64_t open_file_limit);

}  // namespace gimbal::net
