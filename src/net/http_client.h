// HttpClient: an asynchronous HTTP/1.1 client with a keep-alive connection pool per host.
//
// Requests are coroutines run on the caller's executor (its strand). Open() returns once the
// response header has arrived and hands back a ClientStream whose body is read piece by piece as
// it arrives (for server-sent events); Send() reads the whole body. A connection goes back to the
// pool when its response was read to the end and both sides allow keep-alive; a stream dropped
// early closes its connection (the server sees the client go away). A request that fails on a
// reused connection before any response byte arrived is retried once on a fresh connection. A
// ClientCancel lets the issuing coroutine abandon a request at any point (connecting, waiting for
// the header, reading the body): its connection is closed, so the server sees the client go.
//
// Per connection the client keeps its read buffers and parser, so a pooled keep-alive request
// allocates little beyond the header strings; a body piece is held in storage as large as the
// pieces read (a stream waiting for its next event holds a few hundred bytes). Requests issued
// from the io_context's own executor (a runtime with one thread) also share their connection's
// timeout timer, so they arm their timeouts with no timer operation.
//
// Thread-safe: any number of coroutines on any threads may use one client.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // before Asio 1.74 awaitable.hpp, which uses std::exchange unincluded

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "core/status.h"
#include "net/http_types.h"

namespace gimbal::net {

struct HttpClientOptions {
  double connect_timeout_s = 5;
  double write_timeout_s = 30;
  double header_timeout_s = 300;     // from the request's end to the response header
  double read_timeout_s = 120;       // between two body pieces
  size_t max_body_bytes = 64 << 20;  // Send() only
  size_t max_idle_per_host = 256;
  double idle_ttl_s = 30;  // pooled connections idle longer are closed, not reused
};

struct ClientRequest {
  std::string method = "GET";
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
  // Complete "Name: value\r\n" lines written as they are, before `headers`: fixed fields a caller
  // sends with every request, prebuilt once instead of per request (a view: the text must outlive
  // the request). Never Host, Content-Length, Transfer-Encoding or Connection (the client frames
  // the request itself).
  std::string_view fixed_header_lines;
  Headers headers;
  std::string body;
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
};

// Abandons a request from the coroutine that issued it. Not thread-safe: use it only on that
// coroutine's executor (e.g. from a ResponseWriter::OnClientGone callback of the same
// connection). Must outlive the Open() it was given to and the ClientStream that returned.
class ClientCancel {
 public:
  // Closes the attached request's connection: what the request awaits fails at once (Open() and
  // Next() with kUnavailable), and a later Open() with this token fails without connecting.
  void Cancel() {
    cancelled_ = true;
    if (close_) close_(arg_);
  }
  bool cancelled() const { return cancelled_; }

  // For HttpClient: the connection Cancel() closes, while one is in use.
  void Attach(void (*close)(void*), void* arg) {
    close_ = close;
    arg_ = arg;
  }
  void Detach() { close_ = nullptr; }

 private:
  bool cancelled_ = false;
  void (*close_)(void*) = nullptr;
  void* arg_ = nullptr;
};

// A response being received. Use from one coroutine at a time.
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  virtual int status() const = 0;
  virtual const Headers& headers() const = 0;
  // The next piece of the body as it arrived; std::nullopt at the end. kUnavailable when the
  // connection broke, kDeadlineExceeded when no byte arrived within read_timeout_s.
  virtual boost::asio::awaitable<Result<std::optional<std::string>>> Next() = 0;
  // As Next(), without a copy: the view is valid until the next call or the stream's end.
  virtual boost::asio::awaitable<Result<std::optional<std::string_view>>> NextView() = 0;
};

// Appends the rest of `stream`'s body to `out`: ok at its end, the stream's error, or
// kResourceExhausted ("<what> (<limit> bytes)") before `out` would pass `limit` bytes. With
// `total_s` > 0, kDeadlineExceeded when a piece arrives more than total_s after the call (the
// stream's per-read timeout alone let a body trickle in a byte at a time for ever).
boost::asio::awaitable<Status> ReadBody(ClientStream& stream, size_t limit, std::string& out,
                                        std::string_view what, double total_s = 0);

class HttpClient {
 public:
  HttpClient(boost::asio::io_context& ctx, HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `req` and waits for the response header. kUnavailable when the host cannot be reached
  // or `cancel` was cancelled; kDeadlineExceeded when it sends no response head within
  // header_timeout_s. `req` is read while the returned
  // awaitable runs (co_await it at once; it is not copied, so a caller can retry with it).
  boost::asio::awaitable<Result<std::unique_ptr<ClientStream>>> Open(
      const ClientRequest& req, ClientCancel* cancel = nullptr);
  // Sends `req` and reads the whole response (body up to max_body_bytes). With
  // `total_timeout_s` > 0, kDeadlineExceeded when the whole answer has not arrived by then (the
  // per-read timeouts alone let an answer trickle in for as long as each piece comes in time).
  boost::asio::awaitable<Result<ClientResponse>> Send(ClientRequest req,
                                                      double total_timeout_s = 0);
  // Closes every pooled idle connection.
  void CloseIdle();
  // Idle connections held now (for tests).
  size_t idle_connections() const;

  struct Pool;

 private:
  boost::asio::awaitable<Result<ClientResponse>> SendWith(const ClientRequest& req,
                                                          ClientCancel* cancel);

  boost::asio::io_context& ctx_;
  HttpClientOptions opts_;
  std::shared_ptr<Pool> pool_;
};

}  // namespace gimbal::net
